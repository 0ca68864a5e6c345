"""The opening handshake as a step of its own, on a stream the application opened.

:func:`client_handshake` and :func:`server_handshake` drive the sans-I/O
:mod:`rapidws.protocol.opening` objects over a ``(StreamReader,
StreamWriter)`` pair: TCP, TLS, a Unix socket, a socketpair.  The stream
stays open whatever the outcome, and what followed the HTTP head is put
back in the reader, so that :func:`~rapidws.attach` with
``handshake=False`` (or another protocol) reads it first::

    outcome = await rapidws.client_handshake(reader, writer, "ws://host/chat")
    if isinstance(outcome, Accepted):
        ws = await rapidws.attach(reader, writer, handshake=False,
                                  subprotocol=outcome.subprotocol, extensions=outcome.extensions)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from ..exceptions import InvalidHandshake, InvalidMessage
from ..http.uri import WebSocketURI, parse_uri
from ..io.transport import closed_in_handshake
from ..protocol.auth import build_authorization_basic
from ..protocol.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from ..protocol.handshake import (
    Accept,
    Accepted,
    ClientHandshake,
    HeadersLike,
    Redirect,
    Rejected,
    SelectSubprotocol,
    ServerHandshake,
)
from ..protocol.headers import Headers
from ..protocol.http11 import Request, Response
from ..protocol.opening import ClientOpening, ServerOpening

__all__ = ["PendingRequest", "client_handshake", "server_handshake"]

_READ = 65536
T = TypeVar("T")


def _unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put ``data`` back at the front of ``reader``'s buffer.

    StreamReader has no public way to do it; its ``_buffer`` bytearray has
    been there since asyncio began.
    """
    if data:
        reader._buffer[:0] = data  # type: ignore[attr-defined]


async def _read_some(reader: asyncio.StreamReader) -> bytes:
    data = await reader.read(_READ)
    if not data:
        raise closed_in_handshake()
    return data


async def _with_timeout(what: str, timeout: float | None, coro: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(
            f"{what}: no complete opening handshake within {timeout} seconds"
        ) from None


def with_credentials(
    wsuri: WebSocketURI, additional_headers: HeadersLike | None
) -> HeadersLike | None:
    """``additional_headers``, after ``Authorization: Basic`` for ``ws://user:pass@host/``.

    As websockets: the URI's credentials go as HTTP Basic (RFC 7617).
    """
    if wsuri.user_info is None:
        return additional_headers
    headers = Headers()
    headers["Authorization"] = build_authorization_basic(*wsuri.user_info)
    if additional_headers is not None:
        headers.update(additional_headers)
    return headers


def make_client_handshake(
    uri: str,
    *,
    subprotocols: Sequence[str] | None = None,
    compression: str | None = "deflate",
    additional_headers: HeadersLike | None = None,
    origin: str | None = None,
    user_agent_header: str | None = "rapidws",
) -> ClientHandshake:
    """The client's handshake for ``uri`` with ``connect``'s handshake options."""
    if compression not in ("deflate", None):
        raise ValueError(f"unsupported compression: {compression}")
    wsuri = parse_uri(uri)
    return ClientHandshake(
        host=wsuri.host_header,
        path=wsuri.resource_name,
        subprotocols=subprotocols,
        extensions=enable_client_permessage_deflate(None) if compression else None,
        additional_headers=with_credentials(wsuri, additional_headers),
        origin=origin,
        user_agent=user_agent_header,
    )


def make_server_handshake(
    *,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    compression: str | None = "deflate",
    server_header: str | None = "rapidws",
    require_subprotocol: bool = False,
    origins: Sequence[str | re.Pattern[str] | None] | None = None,
) -> ServerHandshake:
    """The server's handshake with ``serve``'s handshake options."""
    if compression not in ("deflate", None):
        raise ValueError(f"unsupported compression: {compression}")
    return ServerHandshake(
        subprotocols=subprotocols,
        extensions=enable_server_permessage_deflate(None) if compression else None,
        server_header=server_header,
        select_subprotocol=select_subprotocol,
        require_subprotocol=require_subprotocol,
        origins=origins,
    )


async def client_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    uri: str,
    *,
    subprotocols: Sequence[str] | None = None,
    compression: str | None = "deflate",
    additional_headers: HeadersLike | None = None,
    origin: str | None = None,
    user_agent_header: str | None = "rapidws",
    timeout: float | None = 10,
    max_header_bytes: int = 65536,
) -> Accepted | Redirect | Rejected:
    """Send the request for ``uri`` and read the server's answer.

    Returns :class:`~rapidws.protocol.handshake.Accepted` (``subprotocol``,
    ``extensions``), :class:`~rapidws.protocol.handshake.Redirect`
    (``status_code``, ``location``) or
    :class:`~rapidws.protocol.handshake.Rejected` (``status_code``,
    ``headers``, ``body``).  An invalid response raises
    :class:`~rapidws.exceptions.InvalidHandshake`; no answer within
    ``timeout`` seconds, :class:`TimeoutError`.
    """
    opening = ClientOpening(
        make_client_handshake(
            uri,
            subprotocols=subprotocols,
            compression=compression,
            additional_headers=additional_headers,
            origin=origin,
            user_agent_header=user_agent_header,
        ),
        max_header_bytes=max_header_bytes,
    )
    writer.write(opening.data_to_send())

    async def run() -> Accepted | Redirect | Rejected:
        outcome = None
        while outcome is None:
            outcome = opening.receive_data(await _read_some(reader))
        _unread(reader, opening.trailing)
        return outcome

    return await _with_timeout("client_handshake", timeout, run())


class PendingRequest:
    """A request read by :func:`server_handshake`, to answer with one of the methods here.

    Each writes its response to the stream (``await writer.drain()`` to
    wait for it to go) and leaves the stream open.
    """

    def __init__(self, opening: ServerOpening, writer: asyncio.StreamWriter) -> None:
        self._opening = opening
        self._writer = writer
        assert opening.request is not None
        self.request: Request = opening.request

    def accept(
        self, *, subprotocol: str | None = None, headers: HeadersLike | None = None
    ) -> Accept:
        """Switch to WebSocket: the 101 goes out; attach with what the result gives.

        Raises :class:`~rapidws.exceptions.InvalidHandshake` if the request is
        not a valid upgrade: answer it with :meth:`fail`.
        """
        accept = self._opening.accept(subprotocol=subprotocol, headers=headers)
        self._writer.write(self._opening.data_to_send())
        return accept

    def reject(self, status: int, text: str, headers: HeadersLike | None = None) -> Response:
        """Answer with ``status`` and a plain-text body."""
        response = self._opening.reject(status, text, headers)
        self._writer.write(self._opening.data_to_send())
        return response

    def redirect(self, status: int, location: str, headers: HeadersLike | None = None) -> Response:
        """Answer with a redirect to ``location``."""
        response = self._opening.redirect(status, location, headers)
        self._writer.write(self._opening.data_to_send())
        return response

    def fail(self, exc: InvalidHandshake) -> Response:
        """Answer an invalid request with the status ``exc`` calls for."""
        response = self._opening.fail(exc)
        self._writer.write(self._opening.data_to_send())
        return response


async def server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    compression: str | None = "deflate",
    server_header: str | None = "rapidws",
    timeout: float | None = 10,
    max_header_bytes: int = 65536,
) -> PendingRequest:
    """Read a request's head and return it, to answer with accept, reject or redirect.

    A malformed head is answered here (400, 431...) and raises
    :class:`~rapidws.exceptions.InvalidHandshake`; no whole head within
    ``timeout`` seconds raises :class:`TimeoutError`.
    """
    opening = ServerOpening(
        make_server_handshake(
            subprotocols=subprotocols,
            select_subprotocol=select_subprotocol,
            compression=compression,
            server_header=server_header,
        ),
        max_header_bytes=max_header_bytes,
    )

    async def run() -> PendingRequest:
        try:
            while opening.receive_data(await _read_some(reader)) is None:
                pass
        except InvalidHandshake as exc:
            if not isinstance(exc, InvalidMessage) or "closed" not in str(exc):
                opening.fail(exc)
                writer.write(opening.data_to_send())
            raise
        _unread(reader, opening.trailing)
        return PendingRequest(opening, writer)

    return await _with_timeout("server_handshake", timeout, run())

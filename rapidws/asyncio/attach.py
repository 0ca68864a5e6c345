"""WebSocket on a byte stream the application opened: :func:`attach`, and back.

As libdill's ``ws_attach_client`` / ``ws_attach_server`` and ``ws_detach``:
the stream may be TCP, TLS, a Unix socket or a socketpair, opened by
``asyncio.open_connection``, ``asyncio.start_server`` or anything else that
gives a ``(StreamReader, StreamWriter)`` pair.  :func:`attach` runs the
opening handshake on it (or none: both sides start OPEN at once) and returns
a connection with the same API, options and engine as :func:`~rapidws.serve`
and :func:`~rapidws.connect` give.  ``await ws.detach()`` runs the closing
handshake and hands the stream back, still open, for another protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..exceptions import ConnectionClosed
from ..io.transport import BaseConnection
from ..io.transport import logger as default_logger
from ..listener import Listener, ListenerConnection
from ..protocol.engine import SERVER
from ..protocol.extensions.base import Extension
from ..protocol.handshake import HeadersLike, ServerHandshake
from ..protocol.http11 import Request, Response
from ..protocol.pipeline import Stage
from .client import ClientConnection
from .connection import Connection
from .hooks import ProcessRequest, ProcessResponse, answer
from .opening import make_client_handshake, make_server_handshake
from .server import Handlers, _per_subprotocol, for_subprotocol
from .streams import (
    Streams,
    is_text_stream,
    open_streams,
    stream_connection_class,
    stream_handler,
)
from .timeouts import within

__all__ = ["AttachedServerConnection", "attach"]


class AttachedServerConnection(Connection):
    """The server side of an attached stream (no server: the caller drives it)."""

    side = SERVER

    def __init__(
        self,
        handshake: ServerHandshake,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handshake = handshake
        self._process_request_hook = process_request
        self._process_response_hook = process_response
        self.username: str | None = None  # see basic_auth

    def process_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        if self._process_request_hook is None and self._process_response_hook is None:
            return self._accept_request(request)
        return answer(
            self,
            request,
            self._accept_request,
            self._process_request_hook,
            self._process_response_hook,
            default_logger,
        )

    def respond(self, status: int, text: str) -> Response:
        """A plain-text HTTP response for ``process_request`` to return."""
        assert isinstance(self.handshake, ServerHandshake)
        return self.handshake.reject(status, text)


async def attach(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    side: str = "client",
    handshake: bool = True,
    uri: str | None = None,
    listener: Listener | None = None,
    subprotocol: str | None = None,
    extensions: Sequence[Extension] = (),
    subprotocols: Sequence[str] | None = None,
    compression: str | None = "deflate",
    additional_headers: HeadersLike | None = None,
    origin: str | None = None,
    user_agent_header: str | None = "rapidws",
    select_subprotocol: Any = None,
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    handler: Handlers | None = None,
    server_header: str | None = "rapidws",
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    max_size: int | None = 2**20,
    max_queue: int | tuple[int, int | None] | None = 16,
    write_limit: int | tuple[int, int | None] = 2**15,
    max_fragment_size: int | None = None,
    mode: str | None = None,
    frames: bool = False,
    stages: Sequence[Stage | Callable[[], Stage]] | None = None,
    stream: bool | str = False,
    timeout: float | None = None,
) -> Connection | ListenerConnection | Streams:
    """Run WebSocket on an established stream, as its ``side`` (``"client"`` or ``"server"``).

    With ``handshake=True`` (the default) the HTTP opening handshake runs on
    the stream first: the client sends its request for ``uri`` (which gives
    the request target and ``Host``), the server answers as :func:`~rapidws.serve`
    would (``subprotocols``, ``select_subprotocol``, ``process_request``,
    ``compression``...).  With ``handshake=False`` both sides are OPEN at once,
    with ``subprotocol`` and ``extensions`` (negotiated some other way) as given.

    A server side given ``handler=`` (a coroutine function, or a mapping of
    subprotocols to them as for :func:`~rapidws.serve`) runs the chosen one
    on the connection, closes it when the handler returns, and returns the
    closed connection.

    Returns the async API's connection, or with ``listener=`` a
    :class:`~rapidws.ListenerConnection` driving that listener, or with
    ``stream=True`` (or ``"text"``) a ``(reader, writer)`` pair of byte
    streams (see :mod:`rapidws.asyncio.streams`).  Bytes the
    reader had buffered are the connection's first.  Other options are those
    of :func:`~rapidws.connect` / :func:`~rapidws.serve`.

    ``timeout`` bounds the opening handshake (as ``open_timeout``, with the
    error of a deadline): past it, or if ``attach`` is cancelled meanwhile,
    the stream is aborted and :class:`TimeoutError` (``"attach() timed out
    after ..."``) or the cancellation raised.
    """
    if side not in ("client", "server"):
        raise ValueError(f"side must be 'client' or 'server', not {side!r}")
    transport: Any = writer.transport
    if transport.is_closing() or reader.at_eof():
        raise ConnectionError("attach: the stream is closed")
    options: dict[str, Any] = {
        "open_timeout": open_timeout if handshake else None,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "close_timeout": close_timeout,
        "max_size": max_size,
        "max_queue": max_queue,
        "write_limit": write_limit,
        "max_fragment_size": max_fragment_size,
        "mode": mode,
        "frames": frames or bool(stream),
        "stages": stages,
    }
    if stream and listener is not None:
        raise ValueError("attach: stream=True and listener= do not mix")
    if stream:
        is_text_stream(stream)  # a bad value fails here, before the handshake
    conn: BaseConnection
    if side == "client":
        if handshake and uri is None:
            raise ValueError("attach(side='client') needs uri= for the opening handshake")
        client_handshake = make_client_handshake(
            uri or "ws://localhost/",
            subprotocols=subprotocols,
            compression=compression,
            additional_headers=additional_headers,
            origin=origin,
            user_agent_header=user_agent_header,
        )
        if listener is not None:
            conn = ListenerConnection(listener, client_handshake, **options)
        else:
            client_class = stream_connection_class(ClientConnection) if stream else ClientConnection
            conn = client_class(client_handshake, **options)
    else:
        require_subprotocol = False
        if handler is not None and not callable(handler):
            handler, chosen, require_subprotocol = _per_subprotocol(
                handler, subprotocols, select_subprotocol
            )
            subprotocols = chosen
        server_handshake = make_server_handshake(
            subprotocols=subprotocols,
            select_subprotocol=select_subprotocol,
            compression=compression,
            server_header=server_header,
            require_subprotocol=require_subprotocol,
        )
        if listener is not None:
            conn = ListenerConnection(listener, server_handshake, **options)
        else:
            server_class = AttachedServerConnection
            if stream:
                server_class = stream_connection_class(server_class)
            conn = server_class(server_handshake, process_request, process_response, **options)
    # What the reader holds already is the connection's first input.
    # (StreamReader has no public way to take its buffer without awaiting.)
    pending: bytearray = reader._buffer  # type: ignore[attr-defined]
    buffered = bytes(pending)
    pending.clear()
    conn._stream = (reader, writer, transport.get_protocol())
    transport.set_protocol(conn)
    if handshake:
        conn.connection_made(transport)
    else:
        conn.subprotocol = subprotocol
        conn.extensions = list(extensions)
        conn._use_transport(transport)
        conn._open(b"", b"")
    if buffered:
        conn.data_received(buffered)
    transport.resume_reading()  # the stream's protocol may have paused it
    if conn._opened.done():
        conn._opened.result()  # the handshake failed on the buffered bytes: raise
    else:
        try:
            # Shielded: the future is the connection's, not this call's to cancel.
            if timeout is None:
                await asyncio.shield(conn._opened)
            else:
                await within(asyncio.shield(conn._opened), timeout, "attach")
        except (asyncio.CancelledError, TimeoutError):
            conn._abort()  # nobody owns a half-opened stream
            raise
    if handler is not None and side == "server" and isinstance(conn, Connection):
        if stream:  # the handler takes (reader, writer)
            if callable(handler):
                handler = stream_handler(handler, stream)  # type: ignore[arg-type]
            else:
                handler = {k: stream_handler(v, stream) for k, v in handler.items()}  # type: ignore[arg-type]
        await _run(conn, handler)
        return conn
    if stream:
        assert isinstance(conn, Connection)
        return open_streams(conn, stream)
    return conn


async def _run(conn: Connection, handler: Handlers) -> None:
    """Run ``handler`` (the subprotocol's, for a mapping) on ``conn``, then close it."""
    chosen: Any = handler if callable(handler) else for_subprotocol(handler, conn.subprotocol)
    try:
        await chosen(conn)
    except ConnectionClosed:
        pass  # the peer closed: the handler's end, not a failure
    except Exception:
        default_logger.error("connection handler failed", exc_info=True)
        conn.fail(1011, "internal error")
        await conn.wait_closed()
        raise
    await conn.close()

"""The opening handshake over a byte stream, sans I/O: bytes in, outcome and bytes out.

As soketto's ``handshake::Client`` / ``handshake::Server`` and wsproto's
``H11Handshake``: the handshake is a step of its own, on any stream, and
what follows the HTTP head in the same read (the first WebSocket frames)
is never lost: it is :attr:`trailing`, for whatever runs the connection
next (``rapidws.attach(..., handshake=False)``, or an
:class:`~rapidws.protocol.engine.Engine` of your own)::

    opening = ClientOpening(ClientHandshake(host="example.com", path="/chat"))
    send(opening.data_to_send())
    while (outcome := opening.receive_data(recv())) is None:
        pass
    # Accepted (subprotocol, extensions), Redirect(status_code, location) or
    # Rejected(status_code, headers, body); opening.trailing follows the head.

    opening = ServerOpening(ServerHandshake(subprotocols=["chat"]))
    while (request := opening.receive_data(recv())) is None:
        pass
    accept = opening.accept()          # or opening.reject(...) / opening.redirect(...)
    send(opening.data_to_send())
"""

from __future__ import annotations

from ..exceptions import InvalidHandshake, InvalidState
from .handshake import (
    Accept,
    Accepted,
    ClientHandshake,
    HeadersLike,
    Redirect,
    Reject,
    Rejected,
    ServerHandshake,
)
from .http11 import Request, RequestParser, Response, ResponseParser

__all__ = ["ClientOpening", "ServerOpening"]


class ServerOpening:
    """A server's side of one opening handshake.

    :meth:`receive_data` takes the bytes read so far and gives the request
    once its head is whole (``None`` before); a malformed head raises
    :class:`~rapidws.exceptions.InvalidHandshake`, which :meth:`fail` answers
    (400, 431...).  Then exactly one of :meth:`accept`, :meth:`reject`,
    :meth:`redirect` or :meth:`fail` gives the answer, whose bytes
    :meth:`data_to_send` returns.
    """

    def __init__(
        self, handshake: ServerHandshake | None = None, *, max_header_bytes: int = 65536
    ) -> None:
        self.handshake = handshake or ServerHandshake()
        self._parser: RequestParser | None = RequestParser(max_header_bytes=max_header_bytes)
        self._buffer = bytearray()
        self.request: Request | None = None
        self.response: Response | None = None
        #: The bytes after the request's head: the WebSocket stream's first.
        self.trailing = b""
        self._out = b""

    def receive_data(self, data: bytes) -> Request | None:
        """Add ``data``; return the request once its head is whole."""
        if self.request is not None:
            self.trailing += data
            return self.request
        assert self._parser is not None
        self._buffer += data
        parsed = self._parser.parse(self._buffer)
        if parsed is None:
            return None
        self.request, consumed = parsed
        self.trailing = bytes(self._buffer[consumed:])
        self._buffer = bytearray()
        self._parser = None
        return self.request

    def accept(
        self, *, subprotocol: str | None = None, headers: HeadersLike | None = None
    ) -> Accept:
        """Accept the request: the 101 response and the negotiated settings.

        A request that is not a valid WebSocket upgrade raises the
        :class:`~rapidws.exceptions.InvalidHandshake` that says why; answer
        it with :meth:`fail`.
        """
        request = self._request()
        result = self.handshake.accept(request, subprotocol=subprotocol, headers=headers)
        if isinstance(result, Reject):
            raise result.exception
        self._answer(result.response)
        return result

    def reject(self, status: int, text: str, headers: HeadersLike | None = None) -> Response:
        """Answer with any status (a plain-text body, ``Content-Length`` computed)."""
        response = self.handshake.reject(status, text, headers)
        self._answer(response)
        return response

    def redirect(self, status: int, location: str, headers: HeadersLike | None = None) -> Response:
        """Answer with a redirect (301, 302, 303, 307 or 308) to ``location``."""
        response = self.handshake.redirect(status, location, headers)
        self._answer(response)
        return response

    def fail(self, exc: InvalidHandshake) -> Response:
        """Answer a failed handshake with the status ``exc`` calls for."""
        result: Reject = self.handshake.fail(exc)
        self._answer(result.response)
        return result.response

    def data_to_send(self) -> bytes:
        """The answer's bytes, once; then ``b""``."""
        out, self._out = self._out, b""
        return out

    def _request(self) -> Request:
        if self.request is None:
            raise InvalidState("no whole request yet")
        return self.request

    def _answer(self, response: Response) -> None:
        if self.response is not None:
            raise InvalidState("the request is answered already")
        self.response = response
        self._out = response.serialize()


class ClientOpening:
    """A client's side of one opening handshake.

    :meth:`data_to_send` gives the request; :meth:`receive_data` takes the
    bytes read so far and gives the outcome once the response is whole:
    :class:`~rapidws.protocol.handshake.Accepted`,
    :class:`~rapidws.protocol.handshake.Redirect` or
    :class:`~rapidws.protocol.handshake.Rejected` (``None`` before).  An
    invalid response raises :class:`~rapidws.exceptions.InvalidHandshake`.
    """

    def __init__(self, handshake: ClientHandshake, *, max_header_bytes: int = 65536) -> None:
        self.handshake = handshake
        self._parser: ResponseParser | None = ResponseParser(max_header_bytes=max_header_bytes)
        self._buffer = bytearray()
        self._out = handshake.request.serialize()
        self.outcome: Accepted | Redirect | Rejected | None = None
        #: The bytes after the response (its head, and body if any): the WebSocket stream's first.
        self.trailing = b""

    def data_to_send(self) -> bytes:
        """The request's bytes, once; then ``b""``."""
        out, self._out = self._out, b""
        return out

    def receive_data(self, data: bytes) -> Accepted | Redirect | Rejected | None:
        """Add ``data``; return the outcome once the response is whole."""
        if self.outcome is not None:
            self.trailing += data
            return self.outcome
        assert self._parser is not None
        self._buffer += data
        parsed = self._parser.parse(self._buffer)
        if parsed is None:
            return None
        response, consumed = parsed
        self.trailing = bytes(self._buffer[consumed:])
        self._buffer = bytearray()
        self._parser = None
        self.outcome = self.handshake.check(response)
        return self.outcome

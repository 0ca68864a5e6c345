"""The callback API: a :class:`Listener` per connection, no awaiting on the data path.

For the last microsecond, compare picows' listener: the engine calls
``on_message(conn, opcode, data)`` as each message completes, and
``conn.send(...)`` writes at once.  Framing, limits, the close handshake and
keepalive are the same engine and transport layer as the async API.

Oasis-style events are all here: ``on_open``, ``on_message``, ``on_error``
(an exception raised by a callback, or the peer's protocol error) and
``on_close`` (once the TCP connection is gone, with the close code).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .asyncio.client import connect
from .asyncio.server import Server, for_subprotocol, serve
from .exceptions import InvalidMessage, ProtocolError
from .io.transport import _STREAM_CLOSE, BaseConnection
from .protocol.engine import CLIENT, OP_BINARY, OP_TEXT, OPEN, SERVER
from .protocol.frames import Frame, _new_frame
from .protocol.handshake import ClientHandshake, ServerHandshake
from .protocol.http11 import Request, Response

__all__ = [
    "Listener",
    "ListenerConnection",
    "connect_listener",
    "serve_listener",
]

logger = logging.getLogger("rapidws")


class Listener:
    """Callbacks for one connection; override the ones you need."""

    def on_open(self, conn: ListenerConnection) -> None:
        """The opening handshake succeeded."""

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        """A whole message: ``opcode`` 1 with ``str`` data, or 2 with ``bytes``."""

    def on_ping(self, conn: ListenerConnection, payload: bytes) -> None:
        """A ping arrived (it is already answered)."""

    def on_pong(self, conn: ListenerConnection, payload: bytes) -> None:
        """A pong arrived."""

    def on_frame(self, conn: ListenerConnection, frame: Frame) -> None:
        """With ``frames=True``: each frame as it arrives, data and control, instead of
        messages (a ping is answered already, a close too)."""

    def on_rtt(self, conn: ListenerConnection, seconds: float) -> None:
        """A round-trip time, measured by an ``AutoPing`` stage."""

    def on_error(self, conn: ListenerConnection, exc: BaseException) -> None:
        """A callback raised, or the peer broke the protocol."""

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        """The connection is closed; ``code`` is the peer's (1006 if none came)."""


class ListenerConnection(BaseConnection):
    """A connection driven by a :class:`Listener`."""

    def __init__(
        self,
        listener: Listener | None,
        handshake: ServerHandshake | ClientHandshake,
        max_queue: Any = None,  # no message queue here: messages go to on_message
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.listener = listener or Listener()
        self.handshake = handshake
        self.side = CLIENT if isinstance(handshake, ClientHandshake) else SERVER
        if isinstance(handshake, ClientHandshake):
            self.request = handshake.request

    # -- sending (synchronous: writes go to the transport at once) -------------

    def send(
        self,
        data: str | bytes | bytearray | memoryview,
        compress: bool = True,
        max_fragment_size: int | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        ``max_fragment_size`` overrides the connection's for this message.
        """
        engine = self.engine
        if engine is None or engine.state != OPEN:
            raise self._closed_error()
        engine.send_message(
            data, not compress, -1 if max_fragment_size is None else max_fragment_size
        )

    def send_frame(
        self,
        frame: Frame | int,
        payload: bytes | bytearray | memoryview = b"",
        fin: bool = True,
    ) -> None:
        """Send one frame: a :class:`~rapidws.Frame` as it is (data or control, any
        fragment, RSV bits only for a negotiated extension that owns them), or
        ``opcode, payload, fin`` for a data frame through the extensions
        (``TEXT``/``BINARY`` start a message, ``CONT`` continues it).
        """
        engine = self.engine
        if engine is None or engine.state != OPEN:
            raise self._closed_error()
        if isinstance(frame, Frame):
            opcode, data, final, rsv1, rsv2, rsv3 = frame
            rsv = (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0)
            engine.send_frame(opcode, data, final, rsv)
        else:
            engine.send_data(frame, payload, fin)

    def ping(self, data: bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; the future gives the round-trip time in seconds."""
        return self._send_ping(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``on_close`` follows when TCP closes."""
        engine = self.engine
        self._stream_end = _STREAM_CLOSE  # an attached stream closes too (see on_close)
        if self._ws_closed and self.transport is not None:
            self.transport.close()
        elif engine is not None and engine.state == OPEN:
            engine.send_close(code, reason)
            self._start_close_timer()
        elif engine is None and self.transport is not None:
            self.transport.close()

    @property
    def write_paused(self) -> bool:
        """Whether the write buffer is over its high-water mark."""
        return self._paused_writing

    async def drain(self) -> None:
        """Wait until the write buffer drops below its low-water mark."""
        await self._drain()

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await asyncio.shield(self._lost)

    async def detach(
        self, timeout: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Run the closing handshake and give back the stream :func:`~rapidws.attach` took.

        As :meth:`rapidws.Connection.detach`.
        """
        return await self._detach(timeout)

    # -- engine sink -> listener ------------------------------------------------

    def _opened_hook(self) -> None:
        self._call(self.listener.on_open, self)

    def on_message(self, message: str | bytes) -> None:
        try:
            self.listener.on_message(self, OP_TEXT if type(message) is str else OP_BINARY, message)
        except Exception as exc:
            self._callback_failed(exc)

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        # Frame.from_wire without its Python call, for the usual frame without RSV bits.
        if rsv:
            frame = Frame.from_wire(opcode, payload, fin, rsv)
        else:
            frame = _new_frame(Frame, (opcode, payload, fin, False, False, False))
        try:
            self.listener.on_frame(self, frame)
        except Exception as exc:
            self._callback_failed(exc)

    def on_ping(self, payload: bytes) -> None:
        self._call(self.listener.on_ping, self, payload)

    def _rtt_hook(self, seconds: float) -> None:
        self._call(self.listener.on_rtt, self, seconds)

    def on_pong(self, payload: bytes) -> None:
        super().on_pong(payload)
        self._call(self.listener.on_pong, self, payload)

    def on_fail(self, exc: ProtocolError) -> bool:
        deferred = super().on_fail(exc)
        self._call(self.listener.on_error, self, exc)
        return deferred

    def _ws_closed_hook(self) -> None:
        # An attached stream stays open: on_close comes now, and may detach or close it.
        engine = self.engine
        assert engine is not None
        code = engine.close_rcvd_code
        self._call(
            self.listener.on_close, self, 1006 if code == -1 else code, engine.close_rcvd_reason
        )

    def _lost_hook(self) -> None:
        if self.engine is not None and not self._ws_closed:  # open, on_close not called yet
            code = self.close_code
            reason = self.close_reason or ""
            self._call(self.listener.on_close, self, 1006 if code is None else code, reason)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:
            self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        """A listener callback raised: log it, tell on_error, fail with 1011.

        Nothing more is delivered, not even the rest of the read being
        handled (as for a handler of the async API that raises).
        """
        logger.error("listener callback failed", exc_info=exc)
        try:
            self.listener.on_error(self, exc)
        except Exception:
            logger.error("listener on_error failed", exc_info=True)
        self.fail(1011, "internal error")


ListenerFactory = Callable[[Request], "Listener | Response | None"]


class _ServerListenerConnection(ListenerConnection):
    def __init__(
        self,
        server: Server,
        factory: ListenerFactory | Mapping[str | None, ListenerFactory],
        **kwargs: Any,
    ) -> None:
        super().__init__(None, **kwargs)
        self.server = server
        self.factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._register(self)

    def process_request(self, request: Request) -> Response | None:
        factory = self.factory
        if callable(factory):
            chosen = factory(request)
            if isinstance(chosen, Listener):
                self.listener = chosen
                return self._accept_request(request)
        else:
            # Factories per subprotocol: the handshake picks the subprotocol first.
            accepted = self._accept_request(request)
            if accepted.status_code != 101:
                return accepted
            chosen = for_subprotocol(factory, self.subprotocol)(request)
            if isinstance(chosen, Listener):
                self.listener = chosen
                return accepted
        assert isinstance(self.handshake, ServerHandshake)
        response = chosen or self.handshake.reject(404, "Not Found")
        self.handshake_exc = InvalidMessage(f"request answered with HTTP {response.status_code}")
        return response

    def _lost_hook(self) -> None:
        super()._lost_hook()
        self.server._unregister(self)


class serve_listener(serve):
    """Serve the callback API: ``factory(request)`` returns a :class:`Listener`
    for each connection, or a :class:`~rapidws.protocol.http11.Response` to
    answer with (``None``: 404).  ``factory`` may be a mapping of subprotocols
    to factories, as :func:`~rapidws.serve` takes handlers per subprotocol.
    Options are those of :func:`~rapidws.serve`.
    """

    def __init__(
        self,
        factory: ListenerFactory | Mapping[str | None, ListenerFactory],
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(factory if not callable(factory) else _no_handler, host, port, **kwargs)  # type: ignore[arg-type]
        self.listener_factory: Any = factory if callable(factory) else self.handler

    def _factory(self) -> Any:
        return _ServerListenerConnection(
            self.server, self.listener_factory, handshake=self.handshake, **self.options
        )


async def _no_handler(ws: Any) -> None:
    raise RuntimeError("serve_listener connections have no handler")


async def connect_listener(
    factory: Callable[[], Listener], uri: str, **kwargs: Any
) -> tuple[ListenerConnection, Listener]:
    """Open a client connection driven by ``factory()``; options as :func:`~rapidws.connect`."""
    listener = factory()
    # A partial, not a closure: a compiled coroutine's closure would keep
    # its locals (the connection among them) in a reference cycle.
    make = functools.partial(ListenerConnection, listener)
    conn = await connect(uri, create_connection=make, **kwargs)  # type: ignore[arg-type]
    return conn, listener  # type: ignore[return-value]

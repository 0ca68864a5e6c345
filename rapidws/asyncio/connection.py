"""The async message API, shaped like ``websockets.asyncio``.

:class:`Connection` is the object a server handler receives and
:func:`~rapidws.asyncio.client.connect` returns: ``recv``/``send``,
``async for``, ``ping``, ``close``.  It only adapts the engine's callbacks
to awaitables; framing, limits and the close handshake live in the engine
and the transport layer.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import Any

from ..exceptions import ConcurrencyError, ConnectionClosedOK, InvalidState, ProtocolError
from ..io.transport import READS_PAUSED_FOR_QUEUE, BaseConnection, State
from ..protocol.engine import OP_BINARY, OP_CONT, OP_TEXT, OPEN
from ..protocol.frames import Frame

__all__ = ["Connection", "Data", "State"]

Data = str | bytes
DataLike = str | bytes | bytearray | memoryview


class Connection(BaseConnection):
    """A WebSocket connection, server or client side.

    ``max_queue`` bounds how many received messages wait unread: past it,
    reading from the socket pauses until ``recv`` catches up (a tuple gives
    the high and low water marks).
    """

    def __init__(self, *, max_queue: int | tuple[int, int | None] | None = 16, **kwargs: Any):
        super().__init__(**kwargs)
        if max_queue is None:
            self.max_queue_high, self.max_queue_low = 0, 0
        elif isinstance(max_queue, int):
            self.max_queue_high, self.max_queue_low = max_queue, max_queue // 4
        else:
            high, low = max_queue
            self.max_queue_high, self.max_queue_low = high, high // 4 if low is None else low
        self._messages: collections.deque[Data] = collections.deque()
        self._recv_waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._send_lock: asyncio.Lock | None = None  # held while a fragmented send runs
        self._fail_after_drain = False
        self._rtt_waiter: asyncio.Future[float] | None = None  # see wait_rtt

    # ------------------------------------------------------------- receiving

    def on_message(self, message: str | bytes) -> None:
        self._messages.append(message)
        self._defer_flush = True  # the handler may answer in this loop iteration
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        high = self.max_queue_high
        if high and not self._paused_reading and len(self._messages) >= high:
            self._paused_reading = True
            self._pause_reading(READS_PAUSED_FOR_QUEUE)

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        # frames=True: frames wait in the message queue, under the same limits.
        self.on_message(Frame.from_wire(opcode, payload, fin, rsv))  # type: ignore[arg-type]

    def on_fail(self, exc: ProtocolError) -> bool:
        """Let the application read, and answer, what came before the bad frame.

        The close frame goes out once the messages received before it are
        read (or after ``close_timeout`` if they are not).
        """
        if not self._messages:
            return super().on_fail(exc)
        self._failure = exc
        self._fail_after_drain = True
        if self.close_timeout is not None:
            self.loop.call_later(self.close_timeout, self._flush_failure)
        return True

    def _lost_hook(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ws_closed_hook(self) -> None:
        self._lost_hook()  # a receiver waiting gets ConnectionClosed

    async def recv(self, decode: bool | None = None) -> Data:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        ``decode=False`` returns text as UTF-8 ``bytes``; ``decode=True``
        decodes binary messages as UTF-8.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once the connection is
        closed and every message received before has been returned.
        """
        while not self._messages:
            waiter = self._new_waiter()
            try:
                await waiter
            finally:
                self._recv_waiter = None
        message = self._take_message()
        if decode is not None:
            if decode and type(message) is bytes:
                return message.decode("utf-8")
            if not decode and type(message) is str:
                return message.encode("utf-8")
        return message

    def _rtt_hook(self, seconds: float) -> None:
        waiter = self._rtt_waiter
        self._rtt_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(seconds)

    async def wait_rtt(self) -> float:
        """The next round-trip time an ``AutoPing`` stage measures, in seconds."""
        waiter = self._rtt_waiter
        if waiter is None:
            waiter = self._rtt_waiter = self.loop.create_future()
        if self._lost.done():
            raise self._closed_error()
        seconds: float = await asyncio.shield(waiter)
        return seconds

    async def recv_frame(self) -> Frame:
        """With ``frames=True``: the next frame, data or control, as it came.

        A ping is answered already and a close frame too.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once the connection is
        closed and every frame received before has been returned.
        """
        if not self.frame_mode:
            raise InvalidState("recv_frame() needs a connection opened with frames=True")
        frame = await self.recv()
        assert isinstance(frame, Frame)
        return frame

    async def frames(self) -> AsyncIterator[Frame]:
        """With ``frames=True``: iterate over frames until the connection closes."""
        while True:
            try:
                yield await self.recv_frame()
            except ConnectionClosedOK:
                return

    async def send_frame(self, frame: Frame) -> None:
        """Send one frame as it is: data or control, any fragment (see ``Engine.send_frame``).

        RSV bits only for a negotiated extension that owns them, else
        :class:`ValueError`.  Waits while the write buffer is over ``write_limit``.
        """
        engine = self.engine
        if engine is None:
            raise InvalidState("the opening handshake is not complete")
        if engine.state != OPEN:
            raise self._closed_error()
        engine.send_frame(frame.opcode, frame.payload, frame.fin, frame.rsv)
        if self._paused_writing:
            await self._drain()

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over messages until the connection closes; a normal close ends quietly."""
        return self

    async def __anext__(self) -> Data:
        # Not an async generator, nor a wrapper around recv: one coroutine
        # per message, no generator, ``asend`` or inner coroutine object.
        while not self._messages:
            try:
                waiter = self._new_waiter()
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
            try:
                await waiter
            finally:
                self._recv_waiter = None
        return self._take_message()

    def _new_waiter(self) -> asyncio.Future[None]:
        """What a receiver awaits while no message is queued; raise if none can come."""
        if self._recv_waiter is not None:
            raise ConcurrencyError("recv is already running in another coroutine")
        if self._wbuf is not None:
            # The receiving task's step ends here: what it wrote since it was woken goes now.
            self._flush()
        if self._lost.done() or self._ws_closed:
            raise self._closed_error()
        waiter = self._recv_waiter = self.loop.create_future()
        return waiter

    def _take_message(self) -> Data:
        """The next queued message; reading resumes once the queue is low."""
        messages = self._messages
        message: Data = messages.popleft()
        if self._fail_after_drain and not messages:
            self._fail_after_drain = False
            self.loop.call_soon(self._flush_failure)
        if self._paused_reading and len(messages) <= self.max_queue_low:
            self._paused_reading = False
            self._resume_reading(READS_PAUSED_FOR_QUEUE)
        return message

    # --------------------------------------------------------------- sending

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        compress: bool = True,
        max_fragment_size: int | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of them sends one fragmented message,
        a frame per item.  Wait while the write buffer is over ``write_limit``.
        ``compress=False`` sends this message uncompressed even when
        permessage-deflate is on.  ``max_fragment_size`` overrides the
        connection's for this message: no frame's payload on the wire is
        larger.  On a ``mode="text"`` (``"binary"``) connection, a message of
        the other type raises :class:`TypeError` before anything is sent.
        """
        engine = self.engine
        if engine is None:
            raise InvalidState("the opening handshake is not complete")
        lock = self._send_lock
        if lock is not None and lock.locked():
            async with lock:
                pass
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            if engine.state != OPEN:
                raise self._closed_error()
            # The answer to the last message received goes now, rather
            # than with a flush scheduled for it.
            answers_last = self._lazy_cork and not self._messages
            if answers_last:
                self._lazy_cork = False
            engine.send_message(
                message, not compress, -1 if max_fragment_size is None else max_fragment_size
            )
            if answers_last:
                self._flush()
        elif isinstance(message, dict):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__(), True, not compress)
        elif isinstance(message, Iterable):
            await self._send_fragments(iter(message), False, not compress)
        else:
            raise TypeError("data must be str, bytes-like or an iterable of them")
        if self._paused_writing:
            await self._drain()

    async def _send_fragments(self, fragments: Any, is_async: bool, raw: bool) -> None:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        async with self._send_lock:
            engine = self.engine
            assert engine is not None
            opcode = -1
            kind: type | None = None
            previous: DataLike | None = None
            while True:
                try:
                    fragment = await fragments.__anext__() if is_async else next(fragments)
                except (StopIteration, StopAsyncIteration):
                    break
                if isinstance(fragment, str):
                    this_kind: type = str
                elif isinstance(fragment, (bytes, bytearray, memoryview)):
                    this_kind = bytes
                else:
                    raise TypeError("fragments must be str or bytes-like")
                if kind is None:
                    kind = this_kind
                    opcode = OP_TEXT if kind is str else OP_BINARY
                elif this_kind is not kind:
                    raise TypeError("all fragments must be of the same type")
                if previous is not None:
                    self._send_fragment(opcode, previous, False, raw)
                    opcode = OP_CONT
                    if self._paused_writing:
                        await self._drain()
                previous = fragment
            if previous is None:
                return  # an empty iterable sends nothing
            self._send_fragment(opcode, previous, True, raw)

    def _send_fragment(self, opcode: int, fragment: DataLike, fin: bool, raw: bool) -> None:
        engine = self.engine
        assert engine is not None
        if engine.state != OPEN:
            raise self._closed_error()
        payload = fragment.encode("utf-8") if isinstance(fragment, str) else fragment
        engine.send_data(opcode, payload, fin, raw)

    async def ping(self, data: str | bytes | None = None) -> Awaitable[float]:
        """Send a ping; return an awaitable that gives the round-trip time in seconds.

        Without ``data``, four random bytes are sent.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self._send_ping(data)

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        engine = self.engine
        if engine is None or engine.state != OPEN:
            raise self._closed_error()
        engine.send_pong(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake and wait until the TCP connection is closed."""
        await self._close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await asyncio.shield(self._lost)

    async def detach(
        self, timeout: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Run the closing handshake and give back the stream :func:`~rapidws.attach` took.

        The stream stays open for another protocol: the returned reader
        gives first the bytes that came after the peer's close frame.
        ``timeout`` (default ``close_timeout``) bounds the wait for the
        peer's close frame; past it the stream is aborted and
        :class:`TimeoutError` raised.
        """
        return await self._detach(timeout)

    def __repr__(self) -> str:
        names = {State.CONNECTING: "CONNECTING", State.OPEN: "OPEN", State.CLOSING: "CLOSING"}
        state = names.get(self.state, "CLOSED")
        return f"<{type(self).__name__} {state} {self.remote_address}>"

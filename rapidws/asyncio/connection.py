"""The async message API, shaped like ``websockets.asyncio``.

:class:`Connection` is the object a server handler receives and
:func:`~rapidws.asyncio.client.connect` returns: ``recv``/``send``,
``async for``, ``ping``, ``close``.  It only adapts the engine's callbacks
to awaitables; framing, limits and the close handshake live in the engine
and the transport layer.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import uuid
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import ConcurrencyError, ConnectionClosedOK, InvalidState, ProtocolError
from ..io.transport import READS_PAUSED_FOR_QUEUE, BaseConnection, State
from ..protocol.engine import OP_BINARY, OP_CONT, OP_TEXT, OPEN
from ..protocol.frames import Frame
from .timeouts import timed_out, within

if TYPE_CHECKING:
    from .halves import Receiver, Sender

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
        self._id: uuid.UUID | None = None  # made when first asked for
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None  # likewise
        self._halves: tuple[Sender, Receiver] | None = None  # see split
        self._byte_stream = False  # stream mode: see on_frame and streams.py

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier of the connection (a random UUID), for logs."""
        if self._id is None:
            self._id = uuid.uuid4()
        return self._id

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """The ``rapidws`` logger, adapted with this connection (``websocket``) and its ``id``."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                logging.getLogger("rapidws"),
                {"websocket": weakref.proxy(self), "id": self.id},
            )
        return self._logger

    def split(self) -> tuple[Sender, Receiver]:
        """The connection's sending and receiving halves, for two tasks (see :mod:`.halves`).

        Every call returns the same two objects.
        """
        if self._halves is None:
            from .halves import Receiver, Sender

            self._halves = (Sender(self), Receiver(self))
        return self._halves

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
        if self._byte_stream:
            # Stream mode (streams.py): a data frame waits as (opcode, payload,
            # fin); the engine has answered control frames.  Here, not in an
            # override, so the engine's call stays a C call.
            if opcode < 8:
                self.on_message((opcode, payload, fin))  # type: ignore[arg-type]
            return
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

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> Data:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        ``decode=False`` returns text as UTF-8 ``bytes``; ``decode=True``
        decodes binary messages as UTF-8.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once the connection is
        closed and every message received before has been returned.

        Past ``timeout`` seconds without a message, raise :class:`TimeoutError`;
        the connection is intact.  Cancelling ``recv`` (a timeout included)
        loses nothing: a message is taken from the queue only when ``recv``
        returns it, so the next ``recv`` gets the one this one did not.
        """
        if timeout is not None:
            return await within(self.recv(decode), timeout, "recv")
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

    async def recv_frame(self, timeout: float | None = None) -> Frame:
        """With ``frames=True``: the next frame, data or control, as it came.

        A ping is answered already and a close frame too.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once the connection is
        closed and every frame received before has been returned.
        ``timeout`` as for :meth:`recv`.
        """
        if not self.frame_mode:
            raise InvalidState("recv_frame() needs a connection opened with frames=True")
        frame = await self.recv(None, timeout)
        assert isinstance(frame, Frame)
        return frame

    async def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Receive the next message as an async iterator over its fragments.

        Messages are reassembled by the engine before they are queued (which
        is what enforces ``max_size`` and UTF-8 as they arrive), so a message
        comes as one piece.  With ``frames=True`` the pieces are the frames
        as they came: text decoded incrementally (a character may span two
        frames), control frames skipped (answered already), until the final
        frame.  ``decode`` as for :meth:`recv`.  Cancelling before the first
        piece loses nothing; cancelling a ``frames=True`` stream midway
        leaves the rest of its message to be received frame by frame.
        """
        if not self.frame_mode:
            yield await self.recv(decode)
            return
        decoder: codecs.IncrementalDecoder | None = None
        started = False
        while True:
            frame = await self.recv()
            assert isinstance(frame, Frame)
            if frame.opcode >= 8:
                continue  # a control frame, answered already
            if not started:
                started = True
                text = frame.opcode == OP_TEXT if decode is None else decode
                if text:
                    decoder = codecs.getincrementaldecoder("utf-8")()
            if decoder is not None:
                yield decoder.decode(frame.payload, frame.fin)
            else:
                yield frame.payload
            if frame.fin:
                return

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
        if self._wbuf is None and messages:
            # More messages wait for this task: its replies to them are corked
            # together, as after a read (see ``_feed``), and leave when it
            # answers the last one or waits for the next (or with the flush
            # its first write schedules).  Without this, a flush that ran
            # between the read and the task's step (one scheduled in the
            # previous step) would leave a write per reply.
            self._wbuf = []
            self._lazy_cork = True
        return message

    # --------------------------------------------------------------- sending

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        compress: bool = True,
        max_fragment_size: int | None = None,
        *,
        text: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of them sends one fragmented message,
        a frame per item.  Wait while the write buffer is over ``write_limit``.
        ``compress=False`` sends this message uncompressed even when
        permessage-deflate is on.  ``max_fragment_size`` overrides the
        connection's for this message: no frame's payload on the wire is
        larger.  On a ``mode="text"`` (``"binary"``) connection, a message of
        the other type raises :class:`TypeError` before anything is sent.
        ``text=True`` sends bytes-like data (UTF-8 already) as a text message,
        ``text=False`` a ``str`` as binary.

        A message is written whole at once, before any wait: cancelling
        ``send``, or its ``timeout`` expiring (:class:`TimeoutError`), only
        cuts short the wait for the write buffer to drain, and the message
        still goes, the connection intact.  A fragmented message that cannot
        be finished (cancelled, timed out or failed between two fragments)
        fails the connection with 1011: no other message may come between
        its fragments (RFC 6455 5.4).
        """
        if timeout is not None or text is not None:
            await self._send_with(message, compress, max_fragment_size, text, timeout)
            return
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

    async def _send_with(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        compress: bool,
        max_fragment_size: int | None,
        text: bool | None,
        timeout: float | None,
    ) -> None:
        """``send`` with ``text=`` or ``timeout=``: off the default path."""
        if timeout is not None:
            await within(
                self._send_with(message, compress, max_fragment_size, text, None),
                timeout,
                "send",
            )
            return
        if text is None:
            await self.send(message, compress, max_fragment_size)
        elif isinstance(message, str):
            if text:
                await self.send(message, compress, max_fragment_size)
            else:
                await self.send(message.encode("utf-8"), compress, max_fragment_size)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            if not text:
                await self.send(message, compress, max_fragment_size)
            else:
                await self._send_text_bytes(message, not compress, max_fragment_size)
        elif isinstance(message, dict):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__(), True, not compress, text)
            if self._paused_writing:
                await self._drain()
        elif isinstance(message, Iterable):
            await self._send_fragments(iter(message), False, not compress, text)
            if self._paused_writing:
                await self._drain()
        else:
            raise TypeError("data must be str, bytes-like or an iterable of them")

    async def _send_text_bytes(
        self, message: bytes | bytearray | memoryview, raw: bool, max_fragment_size: int | None
    ) -> None:
        """Send UTF-8 bytes as a text message (``send(..., text=True)``), not checked."""
        engine = self.engine
        if engine is None:
            raise InvalidState("the opening handshake is not complete")
        lock = self._send_lock
        if lock is not None and lock.locked():
            async with lock:
                pass
        if engine.state != OPEN:
            raise self._closed_error()
        limit = self.max_fragment_size if max_fragment_size is None else max_fragment_size
        if limit:  # the engine cuts text it encodes itself
            engine.send_message(bytes(message).decode("utf-8"), raw, limit)
        else:
            engine.send_data(OP_TEXT, message, True, raw)
        self._flush_if_answer()
        if self._paused_writing:
            await self._drain()

    def _flush_if_answer(self) -> None:
        """After a send off the default path: flush now if writes are corked for a reply."""
        if self._lazy_cork and not self._messages:
            self._lazy_cork = False
            self._flush()

    async def _send_fragments(
        self, fragments: Any, is_async: bool, raw: bool, text: bool | None = None
    ) -> None:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        async with self._send_lock:
            engine = self.engine
            assert engine is not None
            opcode = -1
            kind: type | None = None
            previous: DataLike | None = None
            started = False  # a fragment is on the wire: the message must end
            try:
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
                        as_text = kind is str if text is None else text
                        opcode = OP_TEXT if as_text else OP_BINARY
                    elif this_kind is not kind:
                        raise TypeError("all fragments must be of the same type")
                    if previous is not None:
                        self._send_fragment(opcode, previous, False, raw)
                        started = True
                        opcode = OP_CONT
                        if self._paused_writing:
                            await self._drain()
                    previous = fragment
                if previous is None:
                    return  # an empty iterable sends nothing
                self._send_fragment(opcode, previous, True, raw)
            except BaseException:
                if started and self.engine is not None and self.engine.state == OPEN:
                    # Half a message is out: nothing else may follow it (RFC 6455 5.4).
                    self.fail(1011, "fragmented message interrupted")
                raise

    def _send_fragment(self, opcode: int, fragment: DataLike, fin: bool, raw: bool) -> None:
        engine = self.engine
        assert engine is not None
        if engine.state != OPEN:
            raise self._closed_error()
        payload = fragment.encode("utf-8") if isinstance(fragment, str) else fragment
        engine.send_data(opcode, payload, fin, raw)

    async def ping(
        self, data: str | bytes | None = None, timeout: float | None = None
    ) -> Awaitable[float]:
        """Send a ping; return an awaitable that gives the round-trip time in seconds.

        Without ``data``, four random bytes are sent.  With ``timeout``, the
        awaitable raises :class:`TimeoutError` if no pong came in that many
        seconds (the connection stays open).
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        waiter = self._send_ping(data)
        if timeout is not None:
            handle = self.loop.call_later(timeout, self._ping_expired, waiter, timeout)
            waiter.add_done_callback(lambda _: handle.cancel())
        return waiter

    def _ping_expired(self, waiter: asyncio.Future[float], timeout: float) -> None:
        if waiter.done():
            return
        for data, (pending, _) in list(self._pings.items()):
            if pending is waiter:
                del self._pings[data]
        waiter.set_exception(timed_out("ping", timeout))
        waiter.exception()  # retrieved: the caller may not wait for it

    async def drain(self, timeout: float | None = None) -> None:
        """Write what is corked, then wait while the write buffer is over ``write_limit``.

        Past ``timeout`` seconds, raise :class:`TimeoutError`; what is
        buffered stays buffered, the connection intact.
        """
        if self._wbuf is not None:
            self._flush()
        if not self._paused_writing:
            return
        if timeout is None:
            await self._drain()
        else:
            await within(self._drain(), timeout, "drain")

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        engine = self.engine
        if engine is None or engine.state != OPEN:
            raise self._closed_error()
        engine.send_pong(data)

    def close(
        self, code: int = 1000, reason: str = "", timeout: float | None = None
    ) -> Coroutine[Any, Any, None]:
        """Run the closing handshake and wait until the TCP connection is closed.

        The close frame goes when ``close`` is called, before the returned
        coroutine runs; so cancelling the wait (or never starting it) does
        not stop the closing handshake, which goes on in the background
        (bounded by ``close_timeout``), and :meth:`wait_closed` still
        completes.  Past ``timeout`` seconds (default: only ``close_timeout``
        bounds it), the TCP connection is aborted and :class:`TimeoutError`
        raised.
        """
        self._start_close(code, reason)
        return self._wait_close(timeout)

    async def _wait_close(self, timeout: float | None) -> None:
        if timeout is None:
            await asyncio.shield(self._lost)
            return
        try:
            await within(asyncio.shield(self._lost), timeout, "close")
        except TimeoutError:
            self._abort()
            raise

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
        :class:`TimeoutError` raised (``"detach() timed out after ..."``).
        """
        return await self._detach(timeout)

    def __repr__(self) -> str:
        names = {State.CONNECTING: "CONNECTING", State.OPEN: "OPEN", State.CLOSING: "CLOSING"}
        state = names.get(self.state, "CLOSED")
        return f"<{type(self).__name__} {state} {self.remote_address}>"

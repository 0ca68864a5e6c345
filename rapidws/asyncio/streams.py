"""Byte streams over WebSocket, shaped like ``asyncio.StreamReader``/``StreamWriter``.

Seastar's model: a handler gets ``(reader, writer)``.  ``await reader.read(n)``
gives the payload bytes (unmasked, decompressed; a text message's as UTF-8)
across message boundaries, as from TCP, and ``b""`` once the peer closed;
``writer.write(data)`` + ``await writer.drain()`` send.  Who wants message
boundaries has them: ``await reader.read_message()``.

It runs on the engine's frame path (``frames=True``): each data frame is
queued as it arrives, under ``max_queue``, and never reassembled into a
message, so a connection holds at most about ``max_queue`` frames of
``max_size`` bytes whatever the size of a message: a 1 GiB upload streams
through.  In stream mode ``max_size`` bounds each frame (decompressed), not
the message.  permessage-deflate stays negotiable: the engine inflates each
frame before it reaches the queue.

The rules, in one place:

* ``read(n)`` returns up to ``n`` bytes of one frame at a time (at least
  one byte); ``b""`` once the peer closed the connection normally (1000 or
  1001), even mid-message.  After an error (a protocol violation, which
  the engine answers with RFC 6455's close code, or a connection lost
  without a closing handshake) every read raises the connection's
  :class:`~rapidws.exceptions.ConnectionClosedError`, once the data that
  came before it has been read.
* ``read_message()`` returns the next whole message (``str`` for text,
  ``bytes`` for binary), or the rest of the one a ``read`` started (as
  ``bytes``); ``None`` at the end of the stream;
  :class:`asyncio.IncompleteReadError` if the peer closed mid-message.
* ``write(data)`` sends one binary message per call (a text message on a
  ``text`` stream, whose ``write`` takes ``str``); an empty ``data`` sends
  nothing.  ``writelines`` sends one message, a frame per item.
* ``writer.close(code=1000, reason="")`` starts the closing handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..exceptions import ConnectionClosed, ConnectionClosedOK
from ..protocol.engine import OP_BINARY, OP_CONT, OP_TEXT, OPEN
from .connection import Connection

__all__ = [
    "StreamHandler",
    "WebSocketStreamReader",
    "WebSocketStreamWriter",
    "is_text_stream",
    "open_connection",
    "open_streams",
    "stream_connection_class",
]

C = TypeVar("C", bound=Connection)
Streams = tuple["WebSocketStreamReader", "WebSocketStreamWriter"]
StreamHandler = Callable[["WebSocketStreamReader", "WebSocketStreamWriter"], Awaitable[Any]]

_LIMIT = 2**16  # readuntil's default limit, as asyncio's
_MAX_READ = 2**62  # what read(n) takes of a larger n (a frame is never that large)


class _StreamFrames:
    """Mixed into a connection class: data frames queue for a stream reader.

    As ``(opcode, payload, fin)`` tuples (see ``Connection.on_frame``),
    under ``max_queue`` as messages are.  ``max_size`` bounds each frame
    (the engine's rule for frames), not the message, which may be endless.
    """

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conn: Any = self
        conn._byte_stream = True


_CLASSES: dict[type, type] = {}


def stream_connection_class(base: type[C]) -> type[C]:
    """The subclass of connection class ``base`` that stream mode uses (made once)."""
    cls = _CLASSES.get(base)
    if cls is None:
        cls = _CLASSES[base] = type(
            f"Stream{base.__name__}",
            (_StreamFrames, base),
            {"__module__": __name__, "__doc__": f"{base.__name__} in stream mode."},
        )
    return cls


def is_text_stream(stream: bool | str) -> bool:
    """Whether ``stream=`` (True, ``"binary"`` or ``"text"``) asks for a text stream."""
    if stream is True or stream == "binary":
        return False
    if stream == "text":
        return True
    raise ValueError(f"stream must be True, 'binary' or 'text', not {stream!r}")


def open_streams(connection: Connection, stream: bool | str = True) -> Streams:
    """The reader and writer over ``connection``, opened in stream mode.

    ``stream="text"``: the writer sends text messages and takes ``str``.
    """
    text = is_text_stream(stream)
    if not isinstance(connection, _StreamFrames):
        raise TypeError("open_streams needs a connection opened in stream mode (stream=True)")
    return WebSocketStreamReader(connection), WebSocketStreamWriter(connection, text)


def stream_handler(handler: StreamHandler, stream: bool | str) -> Callable[[Any], Awaitable[Any]]:
    """A :func:`~rapidws.serve` handler calling ``handler(reader, writer)``."""
    is_text_stream(stream)  # a bad value fails in serve(), not per connection

    async def run(connection: Connection) -> None:
        reader, writer = open_streams(connection, stream)
        await handler(reader, writer)

    return run


class WebSocketStreamReader:
    """Reads a WebSocket connection's payload as a byte stream (see the module's rules).

    ``limit`` bounds what :meth:`readuntil` and :meth:`readline` buffer
    looking for the separator, as asyncio's ``limit``.
    """

    # The compiled build's fields (see streams.pxd).
    __slots__ = ("_chunk", "_conn", "_eof", "_exc", "_fin", "_limit", "_partial", "_pos", "_text")

    def __init__(self, connection: Connection, limit: int = _LIMIT) -> None:
        self._conn = connection
        self._limit = limit
        self._chunk = b""  # the current frame's payload
        self._pos = 0  # what of it was read
        self._fin = True  # the current frame ends its message
        self._text = False  # the current message is text
        self._partial = False  # some of the current message was read by read()
        self._eof = False  # the peer closed normally; nothing more comes
        self._exc: ConnectionClosed | None = None  # the connection failed

    @property
    def websocket(self) -> Connection:
        """The connection underneath: ``close_code``, ``subprotocol``, ``ping``..."""
        return self._conn

    async def _fill(self) -> bool:
        """Make the next data frame current; False at the end of the stream."""
        if self._eof:
            return False
        if self._exc is not None:
            raise self._exc
        conn = self._conn
        try:
            # As Connection.recv, without its coroutine (see read).
            while not conn._messages:
                waiter = conn._new_waiter()
                try:
                    await waiter
                finally:
                    conn._recv_waiter = None
        except ConnectionClosedOK:
            self._eof = True
            return False
        except ConnectionClosed as exc:
            self._exc = exc
            raise
        self._take(conn._take_message())  # type: ignore[arg-type]
        return True

    def _take(self, frame: tuple[int, bytes, bool]) -> None:
        """Make ``frame``, from the connection's queue (see _StreamFrames), current."""
        opcode, payload, fin = frame
        if opcode != OP_CONT:
            self._text = opcode == OP_TEXT
            self._partial = False
        self._chunk = payload
        self._pos = 0
        self._fin = fin

    def at_eof(self) -> bool:
        """Whether the peer closed and everything received was read."""
        return self._eof and self._pos >= len(self._chunk)

    def exception(self) -> ConnectionClosed | None:
        """The error that ended the stream, if it did not end normally."""
        return self._exc

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (at least one), or everything until the end if ``n`` < 0.

        ``b""`` at the end of the stream.  Never more than one frame at a time.
        """
        if n < 0:
            parts: list[bytes] = []
            while True:
                chunk = await self.read(1 << 30)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        if n == 0:
            return b""
        while self._pos >= len(self._chunk):
            # _fill, inlined, and Connection.recv with it: no coroutine to
            # create, and to resume through, per frame; none at all while
            # frames are queued.
            if self._eof:
                return b""
            if self._exc is not None:
                raise self._exc
            conn = self._conn
            try:
                while not conn._messages:
                    waiter = conn._new_waiter()
                    try:
                        await waiter
                    finally:
                        conn._recv_waiter = None
            except ConnectionClosedOK:
                self._eof = True
                return b""
            except ConnectionClosed as exc:
                self._exc = exc
                raise
            self._take(conn._take_message())  # type: ignore[arg-type]
        return self._slice(n if n < _MAX_READ else _MAX_READ)

    def _slice(self, n: int) -> bytes:
        """Up to ``n`` (> 0) of the current frame's bytes, some of which are unread."""
        chunk = self._chunk
        pos = self._pos
        self._partial = True
        size = len(chunk)
        if pos == 0 and n >= size:
            self._pos = size
            return chunk  # the whole frame, no copy
        end = pos + n if n < size - pos else size
        self._pos = end
        return chunk[pos:end]

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`asyncio.IncompleteReadError` at the end."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        parts: list[bytes] = []
        need = n
        while need:
            chunk = await self.read(need)
            if not chunk:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(chunk)
            need -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """The bytes up to and including ``separator``.

        :class:`asyncio.IncompleteReadError` at the end of the stream (with
        what came); :class:`asyncio.LimitOverrunError` when ``limit`` bytes
        came without it (they stay readable).
        """
        if not separator:
            raise ValueError("Separator should be at least one-byte string")
        buf = bytearray()
        while True:
            chunk, pos = self._chunk, self._pos
            if pos < len(chunk):
                start = max(0, len(buf) - len(separator) + 1)
                buf += chunk if pos == 0 else memoryview(chunk)[pos:]
                self._partial = True
                index = buf.find(separator, start)
                if 0 <= index <= self._limit:
                    end = index + len(separator)
                    # The rest lies in the current frame: the separator ends past its start.
                    self._pos = len(chunk) - (len(buf) - end)
                    del buf[end:]
                    return bytes(buf)
                if index > self._limit or len(buf) > self._limit:
                    self._chunk, self._pos = bytes(buf), 0  # readable again
                    if index < 0:
                        message = "Separator is not found, and chunk exceed the limit"
                    else:
                        message = "Separator is found, but chunk is longer than limit"
                    raise asyncio.LimitOverrunError(message, len(buf) if index < 0 else index)
                self._pos = len(chunk)
            if not await self._fill():
                raise asyncio.IncompleteReadError(bytes(buf), None)

    async def readline(self) -> bytes:
        """A line ending in ``b"\\n"``; at the end of the stream, what came (maybe ``b""``).

        :class:`ValueError` for a line over ``limit`` (it is dropped, as far as it came).
        """
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            # As asyncio: drop the line, through its end if it came.
            end = self._chunk.find(b"\n")
            self._pos = len(self._chunk) if end < 0 else end + 1
            raise ValueError(exc.args[0]) from None

    async def read_message(self) -> str | bytes | None:
        """The next message, ``str`` for text; the rest of the current one as ``bytes``
        if ``read`` took some of it; ``None`` at the end of the stream.

        :class:`asyncio.IncompleteReadError` if the peer closed mid-message.
        """
        if self._fin and self._pos >= len(self._chunk) and not await self._fill():
            return None
        whole = not self._partial
        chunk, pos = self._chunk, self._pos
        parts = [chunk if pos == 0 else chunk[pos:]]
        self._pos = len(chunk)
        while not self._fin:
            if not await self._fill():
                raise asyncio.IncompleteReadError(b"".join(parts), None)
            parts.append(self._chunk)
            self._pos = len(self._chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if whole and self._text:
            return data.decode("utf-8")  # valid: the engine checked it (RFC 6455 8.1)
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate over lines, as ``asyncio.StreamReader`` does."""
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line

    def __repr__(self) -> str:
        state = "eof" if self._eof else "failed" if self._exc is not None else "open"
        return f"<WebSocketStreamReader {state} {self._conn!r}>"


class WebSocketStreamWriter:
    """Writes to a WebSocket connection as a byte stream (see the module's rules)."""

    # The compiled build's fields (see streams.pxd).
    __slots__ = ("_close_task", "_conn", "_drained", "text")

    def __init__(self, connection: Connection, text: bool = False) -> None:
        self._conn = connection
        #: Whether ``write`` sends text messages (and takes ``str``).
        self.text = text
        self._close_task: asyncio.Task[None] | None = None
        # What drain() returns when there is nothing to wait for: awaiting a
        # done future costs less than a coroutine, on every write.
        self._drained: asyncio.Future[None] = connection.loop.create_future()
        self._drained.set_result(None)

    @property
    def websocket(self) -> Connection:
        """The connection underneath: ``close_code``, ``subprotocol``, ``ping``..."""
        return self._conn

    @property
    def transport(self) -> asyncio.BaseTransport | None:
        """The TCP (or TLS) transport underneath."""
        return self._conn.transport

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send ``data`` as one message (binary; text on a ``text`` stream).

        Does not wait: follow with ``await drain()``.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once closing.
        """
        if type(data) is bytes and not self.text:
            pass
        elif self.text:
            if not isinstance(data, str):
                raise TypeError(f"a text stream writes str, not {type(data).__name__}")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"write() takes bytes-like data, not {type(data).__name__}"
                " (for str, open the stream with stream='text')"
            )
        if not data:
            return
        conn = self._conn
        engine = conn.engine
        if engine is None or engine.state != OPEN or self._close_task is not None:
            raise conn._closed_error()
        # As Connection.send: the answer to the last frame received goes now,
        # not with a flush scheduled for it.
        answers_last = conn._lazy_cork and not conn._messages
        if answers_last:
            conn._lazy_cork = False
        engine.send_message(data, False, -1)
        if answers_last:
            conn._flush()

    def writelines(self, data: Iterable[bytes | bytearray | memoryview | str]) -> None:
        """Send the items as one message, a frame each (no join)."""
        items = [item for item in data if item]
        if not items:
            return
        if len(items) == 1:
            self.write(items[0])
            return
        for item in items:
            if self.text != isinstance(item, str) or not isinstance(
                item, (str, bytes, bytearray, memoryview)
            ):
                raise TypeError(f"this stream does not write {type(item).__name__}")
        conn = self._conn
        engine = conn.engine
        if engine is None or engine.state != OPEN or self._close_task is not None:
            raise conn._closed_error()
        opcode = OP_TEXT if self.text else OP_BINARY
        last = len(items) - 1
        for i, item in enumerate(items):
            payload = item.encode("utf-8") if isinstance(item, str) else item
            engine.send_data(opcode if i == 0 else OP_CONT, payload, i == last, False)

    def drain(self) -> Awaitable[None]:
        """Wait while the write buffer is over ``write_limit`` (the peer is slow).

        Raise :class:`~rapidws.exceptions.ConnectionClosed` if the
        connection is lost, as asyncio raises ``ConnectionResetError``.
        """
        conn = self._conn
        if conn._paused_writing or conn._lost.done():
            return self._drain()
        return self._drained

    async def _drain(self) -> None:
        conn = self._conn
        if conn._paused_writing:
            await conn._drain()
        if conn._lost.done():
            raise conn._closed_error()

    def can_write_eof(self) -> bool:
        """False: WebSocket has no half-close; :meth:`close` ends both directions."""
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("WebSocket has no half-close: use close()")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` (1000: normal closure)."""
        if self._close_task is None:
            self._close_task = self._conn.loop.create_task(self._conn.close(code, reason))

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the connection is closing or closed."""
        engine = self._conn.engine
        return (
            self._close_task is not None
            or engine is None
            or engine.state != OPEN
            or self._conn._lost.done()
        )

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        await self._conn.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra info (``peername``, ``sslcontext``...)."""
        transport = self._conn.transport
        if transport is None:
            return default
        return transport.get_extra_info(name, default)

    def __repr__(self) -> str:
        return f"<WebSocketStreamWriter {self._conn!r}>"


async def open_connection(uri: str, *, text: bool = False, **options: Any) -> Streams:
    """Connect to ``uri`` in stream mode; return ``(reader, writer)``.

    As :func:`asyncio.open_connection` for WebSocket: ``options`` are
    :func:`~rapidws.connect`'s.  ``text=True``: the writer sends text.
    """
    from .client import ClientConnection, connect

    base = options.pop("create_connection", None) or ClientConnection
    options["frames"] = True
    connection = await connect(uri, create_connection=stream_connection_class(base), **options)
    return open_streams(connection, "text" if text else True)

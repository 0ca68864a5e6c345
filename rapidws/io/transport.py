"""The asyncio transport layer: one :class:`asyncio.Protocol` per connection.

:class:`BaseConnection` drives the opening handshake, then feeds received
bytes to the sans-I/O :class:`~rapidws.protocol.engine.Engine` and writes
what it produces.  It owns the parts that need a clock or a socket: the
handshake deadline, the wait for the TCP close after the closing handshake,
keepalive pings, write backpressure and pausing reads.  The APIs subclass
it and implement the engine's sink callbacks (``on_message`` and friends).

In the compiled build, on rapidws's own transport for plain TCP
(:class:`~rapidws.io.sockets.SocketTransport`), the transport reads into the
shared buffer with ``recv(2)`` and hands the bytes to :func:`_feed`, and the
connection writes to the socket with ``send(2)`` / ``sendmsg(2)`` while the
transport holds nothing; what the socket does not take goes through the
transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from .. import _cython_shim as cython

    PyBUF_WRITE: int
    PyBytes_AS_STRING: Callable[[bytes], Any]
    PyBytes_FromStringAndSize: Callable[[None, int], bytes]
    PyMemoryView_FromMemory: Callable[[Any, int, int], memoryview]
    iovec: Any
    msghdr: Any
    recv: Callable[[int, Any, int, int], int]
    send: Callable[[int, Any, int, int], int]
    sendmsg: Callable[[int, Any, int], int]
    MSG_NOSIGNAL: int
    memset: Callable[[Any, int, int], Any]
    _DIRECT_READ_MIN: int
else:
    try:
        import cython
        from cython.cimports.cpython.buffer import PyBUF_WRITE
        from cython.cimports.cpython.bytes import PyBytes_AS_STRING, PyBytes_FromStringAndSize
        from cython.cimports.cpython.memoryview import PyMemoryView_FromMemory
        from cython.cimports.libc.string import memset
        from cython.cimports.posix.uio import iovec
        from cython.cimports.rapidws.io._socket import MSG_NOSIGNAL, msghdr, recv, send, sendmsg
        from cython.cimports.rapidws.protocol.engine import _DIRECT_READ_MIN
    except (ImportError, AttributeError):
        from .. import _cython_shim as cython

from ..exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidRedirect,
    InvalidState,
    InvalidStatus,
    ProtocolError,
    closed_exception,
)
from ..protocol.engine import CLIENT, CLOSED, OPEN, SERVER, Engine, SinkBase
from ..protocol.extensions.base import Extension
from ..protocol.handshake import Accept, Accepted, ClientHandshake, Redirect, ServerHandshake
from ..protocol.http11 import Request, RequestParser, Response, ResponseParser
from .deadlines import Deadlines

__all__ = [
    "PLAIN_HTTP",
    "PLAIN_HTTP_ALL",
    "READS_PAUSED_FOR_QUEUE",
    "READS_PAUSED_FOR_WRITES",
    "BaseConnection",
    "State",
]

logger = logging.getLogger("rapidws")

#: Corked writes at least this long are passed on as they are, not copied into a join.
_WRITE_ALONE = 16384
#: Without gathering writes, corked pieces up to this much in all are joined
#: (above it, the copy costs more than the sends it saves, and large buffers
#: come fresh from the OS, page faults included).
_JOIN_UP_TO = 262144

#: Size of the read buffer, as much as asyncio reads at once.
_READ_SIZE = 262144

#: Pieces handed to one ``sendmsg`` call.
_IOV_MAX = 64

#: After an HTTP error response, a server reads and drops up to this many bytes,
#: for up to this many seconds, before it closes (see _linger).
LINGER_BYTES = 1 << 20
LINGER_SECONDS = 5.0

# Why reading from the peer is paused: a bit each (BaseConnection._read_pauses).
#: The peer does not read what we write (server side, see pause_writing).
READS_PAUSED_FOR_WRITES = 1
#: Received messages wait unread (the async API's ``max_queue``).
READS_PAUSED_FOR_QUEUE = 2
#: An attached stream's closing handshake is over: what follows is not ours.
READS_PAUSED_FOR_DETACH = 4
# BaseConnection.plain_http: which requests go to _plain_request first.
#: Requests that are no WebSocket handshake (a handshake goes straight on).
PLAIN_HTTP = 1
#: Every request (a router picks the handler of handshakes too).
PLAIN_HTTP_ALL = 2
#: The reason of the 1011 close frame sent when a keepalive ping is not answered in time.
KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
#: An asynchronous ``process_request`` or ``process_response`` hook is running.
READS_PAUSED_FOR_HOOK = 8
#: A plain HTTP handler is behind on a request body it streams (rapidws.http.server).
READS_PAUSED_FOR_BODY = 16

# What becomes of an attached stream after the closing handshake.
_STREAM_KEPT = 0  # nothing asked yet: it stays open, for detach() or close()
_STREAM_CLOSE = 1  # close() was called: close it


def _fd_read(fd: int, buffer: bytes) -> int:
    """``recv(2)`` from socket ``fd`` into ``buffer`` (``_READ_SIZE`` at most; compiled only)."""
    return recv(fd, PyBytes_AS_STRING(buffer), _READ_SIZE, 0)


def _direct_read(conn: BaseConnection, fd: int) -> int:
    """``recv(2)`` from socket ``fd`` straight into the buffer of the large frame
    ``conn``'s engine is gathering (see ``Engine.direct_room``): what ``recv``
    returned, or -2 when the engine takes no direct read (compiled build only).
    Feed what came with ``_feed(conn, None, n, False)``."""
    engine = conn.engine
    # Engine.direct_room(), inline: this runs before every read.
    if engine is None or engine._frame_buf is None or engine._frame_left < _DIRECT_READ_MIN:
        return -2
    return recv(fd, engine.direct_address(), engine._frame_left, 0)


def _fd_write(fd: int, data: bytes) -> int:
    """``send(2)`` of ``data`` to socket ``fd``: bytes sent, or -1 (compiled build only)."""
    return send(fd, PyBytes_AS_STRING(data), len(data), MSG_NOSIGNAL)


def _fd_writev(fd: int, pieces: list[bytes], start: int, stop: int) -> int:
    """``sendmsg(2)`` of ``pieces[start:stop]`` (at most ``_IOV_MAX``), as :func:`_fd_write`."""
    iov = cython.declare(iovec[64])  # runs compiled only
    count = 0
    while start < stop:
        piece = pieces[start]
        iov[count].iov_base = PyBytes_AS_STRING(piece)
        iov[count].iov_len = len(piece)
        count += 1
        start += 1
    msg = cython.declare(msghdr)
    memset(cython.address(msg), 0, cython.sizeof(msghdr))
    msg.msg_iov = iov
    msg.msg_iovlen = count
    return sendmsg(fd, cython.address(msg), MSG_NOSIGNAL)


class _ReadBuffer:
    """The read buffer that a thread's connections share, one read at a time.

    Reads are handled as they arrive, so one buffer serves every connection
    of a thread (each thread that reads gets its own): nothing is allocated
    per read, and idle connections hold no buffer.  In the compiled build it
    is a ``bytes`` object written through a memoryview and lent to the
    engine, which parses and unmasks straight out of it; the pure build
    copies each read out first.  A read that comes while a previous one is
    still being handled (a callback closing a TLS connection may flush
    pending input) gets a buffer of its own.
    """

    __slots__ = ("busy", "data", "view")

    def __init__(self) -> None:
        self.busy = False  # a read in it is being handled
        self.data: Any
        self.view: memoryview
        if cython.compiled:
            self.data = PyBytes_FromStringAndSize(cython.NULL, _READ_SIZE)
            self.view = PyMemoryView_FromMemory(
                PyBytes_AS_STRING(self.data), _READ_SIZE, PyBUF_WRITE
            )
        else:
            self.data = bytearray(_READ_SIZE)
            self.view = memoryview(self.data)


_THREAD = threading.local()


def _read_buffer() -> _ReadBuffer:
    """This thread's read buffer."""
    try:
        buffer: _ReadBuffer = _THREAD.read_buffer
    except AttributeError:
        buffer = _THREAD.read_buffer = _ReadBuffer()
    return buffer


class _Flusher:
    """Flushes, in one callback per loop iteration, the connections that wait on a reply.

    When received messages wake a handler, the connection's writes stay
    corked until the handler has had its step, so that its replies join
    the same write.  Every connection of a loop in that state is flushed
    by the same scheduled callback instead of one callback each.
    """

    # No reference to the loop: it is the key of a weak mapping to this.
    __slots__ = ("_pending", "_scheduled")

    def __init__(self) -> None:
        self._pending: list[BaseConnection] = []
        self._scheduled = False

    def add(self, conn: BaseConnection) -> None:
        self._pending.append(conn)
        if not self._scheduled:
            self._scheduled = True
            conn.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for conn in pending:
            _flush_writes(conn)


_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _FLUSHERS.get(loop)
    if flusher is None:
        flusher = _FLUSHERS[loop] = _Flusher()
    return flusher


class Cancellable(Protocol):
    """A pending timer: an :class:`asyncio.TimerHandle` or a :class:`~.deadlines.Deadline`."""

    def cancel(self) -> None: ...


class State:
    """Connection states, with the names and values of ``websockets.State``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class BaseConnection(SinkBase, asyncio.BufferedProtocol):
    """An asyncio protocol that runs one WebSocket connection.

    Subclasses set :attr:`handshake` and :attr:`side`, implement the sink
    callback ``on_message`` and may extend the others (``on_ping``,
    ``on_pong``, ``on_close``, ``on_fail``), :meth:`process_request` and the
    ``_opened_hook`` / ``_lost_hook`` notifications.
    """

    # This layer's attributes: C fields in the compiled build (an extension
    # type, see transport.pxd), slots in the pure one, where they are more
    # than CPython's key-sharing instance dicts hold (30), which would cost
    # each connection a dict of its own.  Subclasses keep a ``__dict__``.
    __slots__ = (
        "_call_later",
        "_close_timer",
        "_defer_flush",
        "_direct_read",
        "_drain_waiters",
        "_failure",
        "_fd",
        "_flusher",
        "_hold_writes",
        "_hs_buf",
        "_hs_hook",
        "_hs_parser",
        "_keepalive_timer",
        "_lazy_cork",
        "_linger_left",
        "_lost",
        "_lost_cause",
        "_open_timer",
        "_opened",
        "_paused_writing",
        "_pings",
        "_pipe",
        "_private_buf",
        "_rbuf",
        "_read_pauses",
        "_scatter_writes",
        "_shared_wbuf",
        "_stream",
        "_stream_end",
        "_tr_buffered",
        "_wbuf",
        "_ws_closed",
        "_ws_closed_waiter",
        "close_timeout",
        "engine",
        "extensions",
        "frame_mode",
        "handshake_exc",
        "latency",
        "loop",
        "max_fragment_size",
        "max_handshake_size",
        "max_size",
        "mode",
        "open_timeout",
        "ping_interval",
        "ping_timeout",
        "request",
        "response",
        "stages",
        "subprotocol",
        "transport",
        "write_high",
        "write_low",
    )

    side: int = SERVER
    #: The opening handshake: a ServerHandshake or a ClientHandshake.
    handshake: ServerHandshake | ClientHandshake | None = None
    #: Server side: requests may have bodies, and :meth:`_plain_request` sees
    #: those that are no WebSocket handshake (``PLAIN_HTTP``) or all of them
    #: (``PLAIN_HTTP_ALL``, for a router); 0: none.
    plain_http = 0

    def __init__(
        self,
        *,
        max_size: int | None = 2**20,
        write_limit: int | tuple[int, int | None] = 2**15,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_fragment_size: int | None = None,
        max_handshake_size: int = 65536,
        deadlines: Deadlines | None = None,
        mode: str | None = None,
        frames: bool = False,
        stages: Any = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        # A server's connections share its timers; a lone connection uses the loop's.
        self._call_later: Callable[[float, Callable[[], Any]], Cancellable] = (
            self.loop.call_later if deadlines is None else deadlines.call_later
        )
        self.max_size = max_size
        if isinstance(write_limit, int):
            self.write_high, self.write_low = write_limit, None
        else:
            self.write_high, self.write_low = write_limit
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_fragment_size = max_fragment_size
        self.max_handshake_size = max_handshake_size
        if mode not in (None, "text", "binary"):
            raise ValueError(f"mode must be None, 'text' or 'binary', not {mode!r}")
        self.mode = mode  # text-only or binary-only (see Engine)
        self.frame_mode = frames  # frames go up one by one, not as messages (see Engine)
        # Pipeline stages (rapidws.protocol.pipeline); None: the engine alone, no pipe.
        self.stages = None if stages is None else list(stages)
        self._pipe: Any = None
        self.transport: asyncio.Transport | None = None
        self.engine: Engine | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.extensions: list[Extension] = []
        self.latency: float = 0.0
        self.handshake_exc: BaseException | None = None
        self._hs_buf = bytearray()
        self._hs_parser: RequestParser | ResponseParser | None = None
        self._hs_hook: asyncio.Task[None] | None = None  # an async hook answering the request
        self._linger_left = 0  # bytes still dropped after a failed handshake
        self._opened: asyncio.Future[None] = self.loop.create_future()
        self._lost: asyncio.Future[None] = self.loop.create_future()
        self._lost_cause: BaseException | None = None  # why the TCP connection is gone
        self._failure: ProtocolError | None = None
        self._paused_writing = False
        self._read_pauses = 0  # READS_PAUSED_* bits
        # Writes made while a batch of received bytes is processed, sent as one.
        self._wbuf: list[bytes] | None = None
        # The list _write_shared corks in, kept for the next broadcast (see there).
        self._shared_wbuf: list[bytes] | None = None
        # A buffer of this connection's own, lent for a read the shared one could not take.
        self._private_buf: bytearray | None = None
        self._direct_read = False  # get_buffer lent the engine's frame buffer
        self._rbuf: _ReadBuffer | None = None  # the thread's, once connected
        self._defer_flush = False
        # A batch (rapidws.asyncio.halves) holds writes corked until it ends.
        self._hold_writes = False
        # Corked for a handler that a read woke, with no flush scheduled: its
        # first write schedules one, unless the API sends at once (see _feed).
        self._lazy_cork = False
        self._flusher: _Flusher | None = None  # this loop's, once a handler needs it
        self._scatter_writes = False  # whether transport.writelines avoids a join
        # The socket's file descriptor while writes may go straight to it, else -1.
        self._fd = -1
        self._tr_buffered = False  # the transport may hold unsent bytes
        self._drain_waiters: list[asyncio.Future[None]] = []
        # A stream the application opened (see attach): its reader, writer and
        # protocol, given back by detach.  None for connections rapidws opened.
        self._stream: tuple[Any, Any, Any] | None = None
        self._stream_end = _STREAM_KEPT
        self._ws_closed = False  # attached: the closing handshake is over, the stream open
        self._ws_closed_waiter: asyncio.Future[None] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._open_timer: Cancellable | None = None
        self._close_timer: Cancellable | None = None
        self._keepalive_timer: Cancellable | None = None

    # ------------------------------------------------------------- properties

    @property
    def state(self) -> int:
        """CONNECTING, OPEN, CLOSING or CLOSED (see :class:`State`)."""
        if self._lost.done():
            return State.CLOSED
        engine = self.engine
        if engine is None:
            return State.CONNECTING
        return State.OPEN if engine.state == OPEN else State.CLOSING

    @property
    def remote_address(self) -> Any:
        """The peer's address, as given by the socket."""
        return self.transport.get_extra_info("peername") if self.transport else None

    @property
    def local_address(self) -> Any:
        """This side's address, as given by the socket."""
        return self.transport.get_extra_info("sockname") if self.transport else None

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The peer's TLS certificate, as :meth:`ssl.SSLSocket.getpeercert` gives it
        (``None`` without TLS, or when the peer sent none)."""
        transport = self.transport
        if transport is None:
            return None
        cert: dict[str, Any] | None = transport.get_extra_info("peercert")
        return cert or None

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame once closed (1006 if none came)."""
        if not self._lost.done():
            return None
        engine = self.engine
        if engine is None or engine.close_rcvd_code == -1:
            return 1006
        return engine.close_rcvd_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the peer's close frame once closed."""
        if not self._lost.done():
            return None
        engine = self.engine
        return engine.close_rcvd_reason if engine is not None else ""

    # --------------------------------------------------------- asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._use_transport(transport)
        if self.open_timeout is not None:
            self._open_timer = self._call_later(self.open_timeout, self._open_timed_out)
        if self.side == CLIENT:
            self.send_request()

    def _use_transport(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't subclass asyncio.Transport: no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self._scatter_writes = sys.version_info >= (3, 12) or not type(
            transport
        ).__module__.startswith("asyncio.")
        transport.set_write_buffer_limits(self.write_high, self.write_low)
        self._rbuf = _read_buffer()

    def get_buffer(self, sizehint: int) -> memoryview:
        engine = self.engine
        if cython.compiled and engine is not None and engine.direct_room():
            # A large frame in progress: read into its own buffer (see Engine.direct_room).
            self._direct_read = True
            view: memoryview = engine.direct_view()
            return view
        shared = self._rbuf or _read_buffer()  # the loop thread's
        if not shared.busy:
            self._private_buf = None
            return shared.view
        self._private_buf = bytearray(65536)
        return memoryview(self._private_buf)

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct_read:
            self._direct_read = False
            _feed(self, None, nbytes, False)
            return
        private = self._private_buf
        if private is not None:
            self._private_buf = None
            _feed(self, bytes(memoryview(private)[:nbytes]), nbytes, False)
            return
        shared = self._rbuf or _read_buffer()
        shared.busy = True
        try:
            if cython.compiled:
                _feed(self, shared.data, nbytes, True)
            else:
                _feed(self, bytes(shared.view[:nbytes]), nbytes, False)
        finally:
            shared.busy = False

    def data_received(self, data: bytes) -> None:
        """Bytes from a transport that does not use :meth:`get_buffer`."""
        _feed(self, data, len(data), False)

    def eof_received(self) -> bool | None:
        if self.engine is not None:
            self.engine.receive_eof()
        elif not self._opened.done():
            self._handshake_failed(closed_in_handshake())
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._fd = -1  # the transport closes the socket after this call
        if self.engine is not None:
            self.engine.release()  # breaks the engine-connection cycle
        self._lost_cause = self._failure or exc
        for handle in (self._open_timer, self._close_timer, self._keepalive_timer, self._hs_hook):
            if handle is not None:
                handle.cancel()
        if not self._opened.done():
            self._opened.set_exception(self.handshake_exc or closed_in_handshake())
            self._opened.exception()  # mark retrieved: connect() may not be waiting
        if self._pings:
            closed = self._closed_error()
            for waiter, _ in self._pings.values():
                if not waiter.done():
                    waiter.set_exception(closed)
                    waiter.exception()
            self._pings.clear()
        self._wake_drain_waiters()
        self._lost.set_result(None)
        if self._pipe is not None:
            self._pipe.closed()
        self._lost_hook()

    def _pause_reading(self, reason: int) -> None:
        """Stop reading from the peer for ``reason`` (a ``READS_PAUSED_*`` bit)."""
        if not self._read_pauses and self.transport is not None:
            self.transport.pause_reading()
        self._read_pauses |= reason

    def _resume_reading(self, reason: int) -> None:
        """``reason`` no longer holds; read again once no other does."""
        if not self._read_pauses & reason:
            return
        self._read_pauses &= ~reason
        if not self._read_pauses and self.transport is not None:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        """The write buffer went over its high-water mark: the peer does not keep up.

        Flow control then covers what the engine writes on its own too.
        Pings are answered only once writing resumes, the latest alone (see
        :meth:`Engine.hold_pongs`).  A server also stops reading from the
        peer, whatever filled the buffer (pongs, close replies, the
        application's sends), so what a connection holds stays bounded by
        its limits.  A client keeps reading: if both ends of a connection
        stopped reading while their writes wait, neither would drain.
        """
        self._paused_writing = True
        engine = self.engine
        if engine is not None:
            engine.hold_pongs(True)
        if self.side == SERVER:
            self._pause_reading(READS_PAUSED_FOR_WRITES)

    def resume_writing(self) -> None:
        self._paused_writing = False
        engine = self.engine
        if engine is not None:
            engine.hold_pongs(False)
        self._resume_reading(READS_PAUSED_FOR_WRITES)
        self._wake_drain_waiters()

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._paused_writing and not self._lost.done():
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    # ---------------------------------------------------------------- engine sink

    def on_message(self, message: str | bytes) -> None:
        """A whole message arrived; each API decides what to do with it."""
        raise NotImplementedError

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        """With ``frames=True``: a frame arrived; each API decides what to do with it."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        buf = self._wbuf
        if buf is not None:
            buf.append(data)
            if self._lazy_cork:
                self._lazy_cork = False
                _schedule_flush(self)
            return
        if self.transport is not None:
            _send_now(self, data)

    def _flush(self) -> None:
        """Send what was written while corked (see :func:`_flush_writes`)."""
        _flush_writes(self)

    def _write_shared(self, data: bytes, cork: bool) -> None:
        """:meth:`write` for :func:`rapidws.broadcast`: ``data`` is shared by many connections.

        ``cork``: wait for the end of this loop iteration, flushed with the
        loop's other corked connections (see :class:`_Flusher`), so that
        what is broadcast meanwhile leaves in one write; up to the
        high-water mark: past it, what is corked goes at once, and flow
        control sees it.
        """
        buf = self._wbuf
        if buf is None:
            if cork:
                # The list of the last broadcast, reused: allocating one per
                # connection per broadcast would set off the garbage
                # collector every few hundred.  Its pieces were sent (the
                # flush reads it before it sends): it may still hold the
                # last one, a reference and no more.
                buf = self._shared_wbuf
                if buf is None:
                    buf = self._shared_wbuf = [data]
                elif len(buf) == 1:
                    buf[0] = data
                else:
                    del buf[:]
                    buf.append(data)
                self._wbuf = buf
                _schedule_flush(self)
            elif self.transport is not None:
                _send_now(self, data)
            return
        if cork and (len(buf) + 1) * len(data) > self.write_high:
            _flush_writes(self)
        self.write(data)

    def write_eof(self) -> None:
        """Server side, the closing handshake is over: close TCP first (RFC 6455 7.1.1).

        After a clean closing handshake the peer sends nothing more, so the
        socket is closed once what was written has gone.  After a failure
        the peer may still be sending: half-close instead, and read (and
        drop) until it closes, so that no reset discards the close frame.
        Either way the close timer aborts a peer that does not let go.
        """
        self._unhold()
        self._flush()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        engine = self.engine
        if self._stream is not None and engine is not None and engine.failure is None:
            return  # an attached stream stays open (see on_close)
        clean = engine is not None and engine.failure is None and engine.close_rcvd_code != -1
        if not clean and transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self._start_close_timer()

    # ------------------------------------------------------------- handshake

    def send_request(self) -> None:
        """Client only: write the opening handshake request."""
        assert isinstance(self.handshake, ClientHandshake)
        self.write(self.handshake.request.serialize())

    def process_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        """Server only: accept the request and return the 101 response (or a rejection).

        Subclasses may return an awaitable that gives the response later (an
        asynchronous hook), or ``None`` once they failed the handshake themselves.
        """
        return self._accept_request(request)

    def _plain_request(self, request: Request, rest: bytes) -> bool:
        """Server only, with ``plain_http``: whether a plain HTTP path took ``request``.

        ``rest`` is what came after the head.  Here, none does: every request
        is a WebSocket handshake.
        """
        return False

    def _accept_request(self, request: Request) -> Response:
        """The handshake's own answer to ``request``: the 101, or an error response."""
        assert isinstance(self.handshake, ServerHandshake)
        result = self.handshake.accept(request, connection=self)
        if isinstance(result, Accept):
            self.subprotocol = result.subprotocol
            self.extensions = result.extensions
        else:
            self.handshake_exc = result.exception
        return result.response

    def process_response(self, response: Response) -> None:
        """Client only: check the response; raise InvalidHandshake to fail."""
        assert isinstance(self.handshake, ClientHandshake)
        result = self.handshake.check(response)
        if isinstance(result, Accepted):
            self.subprotocol = result.subprotocol
            self.extensions = result.extensions
        elif isinstance(result, Redirect):
            raise InvalidRedirect(response)
        else:
            raise InvalidStatus(response)

    def error_response(self, exc: InvalidHandshake) -> Response | None:
        """Server only: the HTTP response answering a failed handshake."""
        if isinstance(self.handshake, ServerHandshake):
            return self.handshake.fail(exc).response
        return None

    def _server_handshake_data(self) -> None:
        if self._hs_hook is not None:
            return  # the request is being answered; later bytes wait in _hs_buf
        parser = self._hs_parser
        if parser is None:
            parser = self._hs_parser = RequestParser(
                max_header_bytes=self.max_handshake_size, bodies=self.plain_http != 0
            )
        assert isinstance(parser, RequestParser)
        parsed = parser.parse(self._hs_buf)
        if parsed is None:
            return
        self._hs_parser = None
        request, consumed = parsed
        rest = bytes(self._hs_buf[consumed:])
        self._hs_buf = bytearray()
        self.request = request
        plain = self.plain_http
        if (
            plain
            and (plain == PLAIN_HTTP_ALL or not parser.upgrade_only)
            and self._plain_request(request, rest)
        ):
            return  # the plain HTTP path took it
        response = self.process_request(request)
        if response is None:
            return  # process_request failed the handshake itself
        if not isinstance(response, Response):
            # An awaitable (an async hook): answer once it is done.  Reading
            # pauses meanwhile; what came after the head waits in _hs_buf.
            self._hs_buf = bytearray(rest)
            self._pause_reading(READS_PAUSED_FOR_HOOK)
            self._hs_hook = self.loop.create_task(self._answer_later(response))
            return
        self._answer(response, rest)

    async def _answer_later(self, pending: Awaitable[Response | None]) -> None:
        """Answer the request with what an asynchronous ``process_request`` gives."""
        response = await pending
        self._hs_hook = None
        if self._opened.done() or self._lost.done():
            return  # timed out or gone meanwhile
        if response is None:
            return  # the hook failed the handshake itself
        rest = bytes(self._hs_buf)
        self._hs_buf = bytearray()
        self._resume_reading(READS_PAUSED_FOR_HOOK)
        self._answer(response, rest)

    def _answer(self, response: Response, rest: bytes) -> None:
        """Send the handshake's answer: open with a 101, else fail the handshake."""
        self.response = response
        if response.status_code != 101:
            self.write(response.serialize())
            exc = self.handshake_exc
            if not isinstance(exc, InvalidHandshake):
                exc = InvalidMessage(f"request rejected with HTTP {response.status_code}")
            self._handshake_failed(exc, respond=False)
            return
        self._open(response.serialize(), rest)

    def _client_handshake_data(self) -> None:
        parser = self._hs_parser
        if parser is None:
            parser = self._hs_parser = ResponseParser(max_header_bytes=self.max_handshake_size)
        assert isinstance(parser, ResponseParser)
        parsed = parser.parse(self._hs_buf)
        if parsed is None:
            return
        self._hs_parser = None
        response, consumed = parsed
        rest = bytes(self._hs_buf[consumed:])
        self._hs_buf = bytearray()
        self.response = response
        self.process_response(response)  # raises on rejection
        self._open(b"", rest)

    def _open(self, response_bytes: bytes, rest: bytes) -> None:
        """The handshake succeeded: start the engine and feed it early bytes."""
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        options: dict[str, Any] = {
            "max_size": self.max_size,
            "extensions": self.extensions,
            "max_fragment_size": self.max_fragment_size,
            "mode": self.mode,
            "frames": self.frame_mode,
        }
        if self.stages is None:
            self.engine = Engine(self.side, self, **options)
        else:
            from .pipeline import open_pipeline

            self.engine = open_pipeline(self, self.stages, **options)
        if response_bytes:
            self.write(response_bytes)
        if self.ping_interval is not None:
            self._keepalive_timer = self._call_later(self.ping_interval, self._keepalive)
        self._opened.set_result(None)
        self._opened_hook()
        if self._pipe is not None:
            self._pipe.opened()
        if rest:
            self.engine.receive_data(rest)

    def _handshake_failed(self, exc: InvalidHandshake, *, respond: bool = True) -> None:
        if self._opened.done():
            return
        self.handshake_exc = exc
        answered = not respond  # the caller wrote the response
        if respond:
            response = self.error_response(exc)
            if response is not None:
                self.write(response.serialize())
                answered = True
        self._hs_buf = bytearray()
        self._opened.set_exception(exc)
        self._opened.exception()
        transport = self.transport
        if transport is None:
            return
        if self.side == SERVER and answered and transport.can_write_eof():
            self._linger(transport)
            return
        transport.close()
        # A peer that never reads must not pin us: abort after a delay.
        self._start_close_timer()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Let an HTTP error response arrive whole, then close.

        Closing a socket with unread bytes makes the kernel send a reset,
        which can destroy the response before the client reads it (a client
        still sending its headers when the 431 goes out, say).  So the
        server half-closes after the response, then reads and drops what the
        client still sends until it closes, for at most :data:`LINGER_BYTES`
        and :data:`LINGER_SECONDS`; past either it aborts.
        """
        transport.write_eof()
        self._linger_left = LINGER_BYTES
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self._call_later(LINGER_SECONDS, self._abort)

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if not self._opened.done():
            self.handshake_exc = TimeoutError(
                f"timed out during the opening handshake after {self.open_timeout:g} s"
            )
            self._opened.set_exception(self.handshake_exc)
            self._opened.exception()
            if self.transport is not None:
                self._abort()

    def _opened_hook(self) -> None:
        """Called once the connection is open."""

    def _lost_hook(self) -> None:
        """Called once the TCP connection is gone."""

    # ---------------------------------------------------------------- closing

    def _start_close_timer(self) -> None:
        """Abort the TCP connection if the peer does not close it in time.

        Closing ends a batch: the close frame must not wait behind it.
        """
        self._unhold()
        if self._close_timer is None and not self._lost.done() and self.close_timeout is not None:
            self._close_timer = self._call_later(self.close_timeout, self._abort)

    def _unhold(self) -> None:
        """End a batch (see :meth:`rapidws.asyncio.halves.Sender.batch`): what it holds goes now."""
        if self._hold_writes:
            self._hold_writes = False
            if self._lost.done():
                self._wbuf = None  # nowhere to go
                return
            _flush_writes(self)

    def _abort(self) -> None:
        self._fd = -1  # an aborted transport drops writes
        if self.transport is not None:
            self.transport.abort()

    def on_close(self, code: int, reason: str) -> None:
        """The peer's close frame arrived; wait for the TCP close.

        An attached stream outlives the WebSocket on it: reading stops (what
        follows is for whoever uses the stream next), and the stream waits
        for :meth:`_detach`, or is closed if :meth:`_close` asked for it;
        left alone for ``close_timeout``, it is closed.
        """
        if self._stream is None:
            self._start_close_timer()
            return
        self._pause_reading(READS_PAUSED_FOR_DETACH)
        self._ws_closed = True
        waiter = self._ws_closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._ws_closed_hook()
        if self._stream_end == _STREAM_CLOSE and self.transport is not None:
            self.transport.close()
        self._start_close_timer()

    def _ws_closed_hook(self) -> None:
        """An attached connection's closing handshake is over; its stream stays open."""

    def on_fail(self, exc: ProtocolError) -> bool:
        """The peer broke the protocol; send the close frame on the next tick.

        Messages received before the offending frame are already queued;
        a handler woken by them runs first, so a reply it sends at once
        (an echo, say) goes out before the close frame.
        """
        self._failure = exc
        self.loop.call_soon(self._flush_failure)
        return True

    def _flush_failure(self) -> None:
        engine = self.engine
        if engine is not None:
            engine.flush_failure()
        self._start_close_timer()

    def fail(self, code: int, reason: str = "") -> None:
        """Close at once with ``code`` (e.g. 1011), without waiting for the peer."""
        engine = self.engine
        if engine is not None and engine.state != CLOSED:
            engine.fail(code, reason)
            self._failure = engine.failure
            self._start_close_timer()
        elif self.transport is not None and engine is None:
            self.transport.close()

    async def _close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake and wait for the TCP connection to close."""
        self._start_close(code, reason)
        await asyncio.shield(self._lost)

    def _start_close(self, code: int, reason: str) -> None:
        """Start the closing handshake now (what :meth:`_close` waits for)."""
        engine = self.engine
        self._stream_end = _STREAM_CLOSE
        if engine is None:
            if self.transport is not None:
                self.transport.close()
        elif engine.state == OPEN:
            engine.send_close(code, reason)
            self._start_close_timer()
        elif self._ws_closed and self.transport is not None:
            # An attached stream, kept open until now.  Our answer to the
            # peer's close frame may still be corked (or held by a batch): it goes first.
            self._unhold()
            self._flush()
            self.transport.close()

    async def _detach(self, timeout: float | None) -> tuple[Any, Any]:
        """Run the closing handshake and give the attached stream back, still open.

        Bytes that came after the peer's close frame are readable first from
        the returned reader.  ``timeout`` (default ``close_timeout``) bounds
        the wait for the peer's close frame: past it, the stream is aborted
        and :class:`TimeoutError` raised.
        """
        stream = self._stream
        engine = self.engine
        if stream is None:
            raise InvalidState("only a connection made by attach() can detach")
        if engine is None:
            raise InvalidState("the opening handshake is not complete")
        self._unhold()
        if engine.state == OPEN:
            engine.send_close(1000, "")
            self._flush()
        if not self._ws_closed and not self._lost.done():
            waiter = self._ws_closed_waiter = self.loop.create_future()
            limit = self.close_timeout if timeout is None else timeout
            try:
                await asyncio.wait_for(asyncio.shield(waiter), limit)
            except TimeoutError:
                self._abort()
                raise TimeoutError(
                    f"detach() timed out after {limit} s: no close frame from the peer"
                ) from None
        if self._lost.done() or not self._ws_closed:
            raise self._closed_error()
        reader, writer, protocol = stream
        transport = self.transport
        assert transport is not None
        rest = engine.after_close
        self._stream = None
        self._flush()
        transport.set_protocol(protocol)
        self.connection_lost(None)  # for this connection, it is over
        if rest:
            reader.feed_data(rest)
        transport.resume_reading()
        return reader, writer

    # -------------------------------------------------------------- keepalive

    def _send_ping(self, data: bytes | None) -> asyncio.Future[float]:
        """Send a ping; the future resolves with the round-trip time."""
        engine = self.engine
        if engine is None or engine.state != OPEN or self._lost.done():
            raise self._closed_error()
        if data is None:
            data = os.urandom(4)
            while data in self._pings:
                data = os.urandom(4)
        elif data in self._pings:
            raise ValueError("already waiting for a pong with the same data")
        engine.send_ping(data)
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pings[data] = (waiter, self.loop.time())
        return waiter

    def on_ping(self, payload: bytes) -> None:
        """The engine answered a ping."""

    def on_pong(self, payload: bytes) -> None:
        pings = self._pings
        if payload not in pings:
            return
        now = self.loop.time()
        # A pong acknowledges its ping and every ping sent before it.
        for data in list(pings):
            waiter, sent_at = pings.pop(data)
            latency = now - sent_at
            if not waiter.done():
                waiter.set_result(latency)
            if data == payload:
                self.latency = latency
                break

    def _report_rtt(self, seconds: float) -> None:
        """A round-trip time measured by a stage (``AutoPing``)."""
        self.latency = seconds
        self._rtt_hook(seconds)

    def _rtt_hook(self, seconds: float) -> None:
        """Tell the application of a round-trip time."""

    def _keepalive(self) -> None:
        self._keepalive_timer = None
        engine = self.engine
        if engine is None or engine.state != OPEN or self._lost.done():
            return
        waiter = self._send_ping(None)
        if self.ping_timeout is not None:
            self.loop.call_later(self.ping_timeout, self._keepalive_expired, waiter)
        assert self.ping_interval is not None
        self._keepalive_timer = self._call_later(self.ping_interval, self._keepalive)

    def _keepalive_expired(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.done() and not self._lost.done():
            logger.info("keepalive ping timed out; closing the connection")
            self.fail(1011, KEEPALIVE_TIMEOUT_REASON)

    def _closed_error(self) -> ConnectionClosed:
        """A new exception to raise on a closed connection.

        Not cached: a raised exception holds its traceback, whose frames hold
        the connection, which would make a reference cycle.
        """
        engine = self.engine
        closed = closed_exception(1006, "", None, None) if engine is None else engine.closed_error()
        if self._lost.done():
            closed.__cause__ = self._lost_cause
        return closed


def closed_in_handshake() -> InvalidMessage:
    """The peer closed before the opening handshake was complete.

    The cause is an :class:`EOFError`, as in websockets, whose
    ``process_exception`` deems such a failure transient.
    """
    exc = InvalidMessage("connection closed during the opening handshake")
    exc.__cause__ = EOFError("the connection closed before a whole HTTP message came")
    return exc


# -- the data path, as functions: C calls in the compiled build ------------------


def _feed(conn: BaseConnection, data: bytes | None, end: int, borrowed: bool) -> None:
    """Handle ``data[:end]``; ``borrowed``: it is only valid during this call.
    ``data`` is ``None`` when ``end`` bytes were read into the engine's frame buffer."""
    engine = conn.engine
    if engine is not None:
        # Cork: the replies to everything in ``data`` (echoes from
        # callbacks, pongs, the close frame) leave in one write.  If
        # writes are corked already with a flush scheduled, it takes these too.
        if conn._lazy_cork:
            conn._lazy_cork = False  # corked, nothing written yet, nothing scheduled
            flush_scheduled = False
        else:
            flush_scheduled = conn._wbuf is not None
            if not flush_scheduled:
                conn._wbuf = []
        if borrowed:
            engine.receive_borrowed(data, end)  # type: ignore[arg-type]
        elif data is None:
            engine.receive_direct(end)  # read into the frame's buffer (_direct_read)
        else:
            engine.receive_data(data)
        if flush_scheduled:
            return
        if conn._defer_flush:
            # A task was woken: it runs in this loop iteration, and what it
            # sends joins the same write.  With nothing written yet, no flush
            # is scheduled: the task's first write schedules one, or the API
            # flushes at once when the task answers the last message queued
            # or waits for the next one.
            conn._defer_flush = False
            if conn._wbuf:
                _schedule_flush(conn)
            else:
                conn._lazy_cork = True
        else:
            _flush_writes(conn)
        return
    if conn._opened.done():
        # The handshake failed: what follows is dropped, up to a bound (see _linger).
        conn._linger_left -= end
        if conn._linger_left < 0:
            conn._abort()
        return
    assert data is not None  # direct reads need an engine
    conn._hs_buf += memoryview(data)[:end]
    try:
        if conn.side == SERVER:
            conn._server_handshake_data()
        else:
            conn._client_handshake_data()
    except InvalidHandshake as exc:
        conn._handshake_failed(exc)


def _schedule_flush(conn: BaseConnection) -> None:
    """Flush ``conn``'s corked writes later in this loop iteration, with the loop's others."""
    flusher = conn._flusher
    if flusher is None:
        flusher = conn._flusher = _flusher(conn.loop)
    flusher.add(conn)


def _writes_direct(conn: BaseConnection) -> bool:
    """Whether a write may go straight to the socket now: the transport holds nothing."""
    if conn._fd < 0:
        return False
    if conn._tr_buffered:
        transport = conn.transport
        assert transport is not None
        if transport.get_write_buffer_size():
            return False  # it goes behind what the transport holds
        conn._tr_buffered = False
    return True


def _send_now(conn: BaseConnection, data: bytes) -> None:
    """Write ``data`` now: straight to the socket when the transport holds nothing."""
    transport = conn.transport
    assert transport is not None
    if _writes_direct(conn):
        sent = _fd_write(conn._fd, data)
        if sent == len(data):
            return
        # The rest (all of it on EAGAIN or an error) goes the transport's
        # way: it buffers it, or meets the error and closes.  A view, not a
        # copy: a large payload's rest is most of it, and ``data`` is bytes.
        conn._tr_buffered = True
        if sent > 0:
            transport.write(memoryview(data)[sent:])
            return
    transport.write(data)


def _send_list(conn: BaseConnection, pieces: list[bytes]) -> None:
    """Write ``pieces`` in order, with ``sendmsg`` where they go straight to the socket."""
    transport = conn.transport
    assert transport is not None
    if not _writes_direct(conn):
        if conn._scatter_writes:
            transport.writelines(pieces)
        else:
            for piece in pieces:
                transport.write(piece)
        return
    fd = conn._fd
    start = 0
    count = len(pieces)
    while start < count:
        stop = min(start + _IOV_MAX, count)
        sent = _fd_writev(fd, pieces, start, stop)
        start = _sent_through(pieces, start, sent if sent > 0 else 0)
        if start < stop:  # a short write: the transport takes the rest
            conn._tr_buffered = True
            transport.writelines(pieces[start:])
            return


def _sent_through(pieces: list[Any], start: int, sent: int) -> int:
    """Index of the first of ``pieces`` (from ``start``) not wholly in ``sent`` bytes.

    A piece sent in part is replaced by its rest: a view, not a copy (a
    large payload's rest is most of it).  Used by both ways of writing to
    the socket: the connection's own and :class:`~rapidws.io.sockets.SocketTransport`'s.
    """
    while start < len(pieces) and sent >= len(pieces[start]):
        sent -= len(pieces[start])
        start += 1
    if sent:
        pieces[start] = memoryview(pieces[start])[sent:]
    return start


def _flush_writes(conn: BaseConnection) -> None:
    """Send what was written while corked, in one call.

    Small pieces are joined; large ones (a big payload behind its header)
    are not copied: they go together in one ``sendmsg`` where writes go
    straight to the socket, or through ``writelines`` where the transport
    gathers (uvloop, aiofastnet, asyncio from Python 3.12); on older
    asyncio, whose ``writelines`` joins, they go one by one.
    """
    if conn._hold_writes:
        return  # a batch holds them (see BaseConnection._unhold)
    buf = conn._wbuf
    conn._wbuf = None
    conn._lazy_cork = False
    if not buf or conn.transport is None:
        return
    if len(buf) == 1:
        _send_now(conn, buf[0])
        return
    if not conn._scatter_writes:
        total = 0
        for piece in buf:
            total += len(piece)
        if total <= _JOIN_UP_TO:  # one copy and one send beat a send per piece
            _send_now(conn, b"".join(buf))
            return
    pieces: list[bytes] = []
    small: list[bytes] = []
    alone = _WRITE_ALONE  # a C integer in the compiled build: no lookup per piece
    for piece in buf:
        if len(piece) >= alone:
            if small:
                pieces.append(b"".join(small) if len(small) > 1 else small[0])
                small = []
            pieces.append(piece)
        else:
            small.append(piece)
    if small:
        pieces.append(b"".join(small) if len(small) > 1 else small[0])
    if len(pieces) == 1:
        _send_now(conn, pieces[0])
    else:
        _send_list(conn, pieces)

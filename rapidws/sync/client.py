"""A blocking WebSocket client on the same engine: :func:`connect`.

Shaped like ``websockets.sync.client``: ``with connect(uri) as ws:``, then
``ws.send()``, ``ws.recv(timeout=)``, ``for message in ws``, ``ws.ping()``,
``ws.close()``, from any number of threads.  The opening handshake is
:class:`~rapidws.protocol.opening.ClientOpening` and everything after it is
the sans-I/O :class:`~rapidws.protocol.engine.Engine` (framing, masking,
UTF-8, limits, the close handshake); this module only moves bytes between it
and a blocking socket.

Threads, and why this design.  ``websockets.sync`` runs a reader thread per
connection that parses every frame and hands each message over to the
thread blocked in ``recv``: two thread wake-ups per message.  Here the
thread that calls :meth:`~ClientConnection.recv` with no message queued
reads the socket itself, under a read lock, and feeds the engine: the
message is parsed in the thread that wants it, with no hand-off.  A
background thread (the *keeper*) still reads, but only while the
application is not receiving: when no thread has called ``recv`` for
:data:`IDLE` seconds, it waits for the socket to be readable and feeds the
engine, so that pings are answered (RFC 6455 5.5.2, the engine's own pong),
the peer's close frame is answered, and messages are queued up to
``max_queue`` (past it, it stops reading: TCP flow control holds the peer
back, and memory stays bounded).  While the application receives, the
keeper wakes every :data:`IDLE` seconds to see whether it still does, and
sleeps until the timers of ``ping_interval`` while one ``recv`` waits long
(that ``recv`` wakes it when it returns).

Spinning.  Before it sleeps in the kernel, a thread waiting in ``recv``
polls the socket without blocking for up to ``spin`` seconds (50 µs by
default): falling asleep and being woken costs more than a loopback or LAN
server takes to answer, so a request/response exchange then runs without a
wake-up.  A few misses in a row (a slower or remote server) turn spinning
off, and it is retried every 64th wait; ``spin=0`` never spins.  TLS
sockets do not spin.  ``benchmarks/sync_client.py`` measures both against
``websockets.sync.client`` on one echo server: here (2 cores) it used a
third less CPU per round trip with or without spinning (about 23 against
36 µs); the round trips per second were 2.9 times websockets' with
spinning on a quiet machine (1.25 times without), 2.4 times with a busy
loop on each core (1.7 times without); see the README for loads that come
and go.

Locks: sends and every engine call run under one lock (``_lock``), so
frames of different messages never interleave and the engine is used by
one thread at a time; the socket is read by one thread at a time
(``_read_lock``); one thread at a time may wait in ``recv`` (another one
gets :class:`~rapidws.exceptions.ConcurrencyError`, as with websockets).
A send blocks while the peer does not read, and meanwhile received bytes
wait to be fed to the engine.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket
import ssl as ssl_module
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from ..asyncio.options import option_names, unexpected_keyword
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidRedirect,
    InvalidStatus,
    ProtocolError,
    SecurityError,
    TLSAlert,
)
from ..http.uri import parse_uri
from ..protocol.engine import CLIENT, CLOSED, OP_BINARY, OP_CONT, OP_TEXT, OPEN, Engine, SinkBase
from ..protocol.extensions.base import ClientExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_client_permessage_deflate
from ..protocol.handshake import Accepted, ClientHandshake, HeadersLike, Redirect
from ..protocol.http11 import Request, Response
from ..protocol.opening import ClientOpening

__all__ = ["IDLE", "ClientConnection", "connect"]

#: Seconds without a thread in ``recv`` before the keeper thread reads the socket.
IDLE = 0.05

_READ = 65536
#: Spinning reads stop after this many in a row found nothing (see ``_spin_read``).
_SPIN_MISSES = 4
#: Writes at least this long go out apart rather than joined to what precedes them.
_JOIN_LIMIT = 16384

# Connection states, with the values of ``websockets.State`` (and ``rapidws.State``).
CONNECTING = 0
CLOSING = 2

Data = str | bytes
DataLike = str | bytes | bytearray | memoryview


class ClientConnection(SinkBase):
    """An open client connection, as :func:`connect` returns it.

    Every method may be called from any thread; see the module docstring.
    """

    def __init__(
        self,
        sock: socket.socket,
        opening: ClientOpening,
        accepted: Accepted,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = 2**20,
        max_queue: int | tuple[int, int | None] | None = 16,
        max_fragment_size: int | None = None,
        mode: str | None = None,
        spin: float = 5e-05,
    ) -> None:
        self.id = uuid.uuid4()
        self._sock = sock
        self.request: Request = opening.handshake.request
        self.response: Response = accepted.response
        self.subprotocol: str | None = accepted.subprotocol
        self.extensions = accepted.extensions
        self.local_address: Any = sock.getsockname()
        try:
            self.remote_address: Any = sock.getpeername()
        except OSError:
            self.remote_address = None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        # The keeper stops reading at the high-water mark, reads again at the low one.
        if max_queue is None:
            self._queue_high = self._queue_low = 0
        elif isinstance(max_queue, int):
            self._queue_high, self._queue_low = max_queue, max_queue // 4
        else:
            high, low = max_queue
            self._queue_high, self._queue_low = high, high // 4 if low is None else low
        self._queue_full = False
        #: The latest round-trip time measured by a ping, in seconds.
        self.latency = 0.0
        self._tls = isinstance(sock, ssl_module.SSLSocket)
        self._spin = 0.0 if self._tls else spin  # TLS: no MSG_DONTWAIT on SSL sockets
        self._spin_misses = 0
        self._waits = 0
        self._messages: collections.deque[Data] = collections.deque()
        self._out: list[bytes] = []  # what the engine wrote, sent under _lock
        self._lock = threading.Lock()  # the engine and socket writes
        self._sent = threading.Condition(self._lock)  # a fragmented send ended
        self._sending: threading.Thread | None = None  # the thread sending fragments
        self._read_lock = threading.Lock()  # one reader of the socket at a time
        self._recv_mutex = threading.Lock()  # one thread in recv at a time
        self._poll = select.poll()  # for readers, under _read_lock
        self._poll.register(sock, select.POLLIN)
        self._in_recv = False
        self._keeper_asleep = False  # the keeper waits for the thread in recv to return
        self._recv_count = 0  # bumped by every recv, for the keeper
        self._wanted = False  # ping() or close() wants the keeper to read now
        self._closing = False  # close() was called
        self._close_deadline: float | None = None  # abort if TCP is still open then
        self._done = False  # the TCP connection is closed
        self._closed_event = threading.Event()
        self._failure: ProtocolError | None = None
        self._lost_cause: BaseException | None = None
        self._pings: dict[bytes, tuple[threading.Event, float, bool]] = {}
        self._keepalive_event: threading.Event | None = None
        self._ping_due: float | None = None  # when the next keepalive ping goes
        self._pong_due: float | None = None  # when its pong is late
        self._cond = threading.Condition()  # the keeper waits on it
        self.engine = Engine(
            CLIENT,
            self,
            max_size=max_size,
            extensions=accepted.extensions,
            max_fragment_size=max_fragment_size,
            mode=mode,
        )
        if opening.trailing:
            with self._lock:
                self.engine.receive_data(opening.trailing)
                self._flush_quietly()
            self._check_closed()
        self._keeper = threading.Thread(
            target=self._keep, name=f"rapidws.sync keeper {self.id}", daemon=True
        )
        self._keeper.start()

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> int:
        """OPEN (1), CLOSING (2) or CLOSED (3), as ``websockets.State``."""
        if self._done:
            return CLOSED
        return OPEN if self.engine.state == OPEN else CLOSING

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame once closed (1006 if none came)."""
        if not self._done:
            return None
        code = self.engine.close_rcvd_code
        return 1006 if code == -1 else code

    @property
    def close_reason(self) -> str | None:
        """The reason of the peer's close frame once closed."""
        if not self._done:
            return None
        return self.engine.close_rcvd_reason

    # ----------------------------------------------------------- engine sink

    def write(self, data: bytes) -> None:
        self._out.append(data)

    def write_eof(self) -> None:
        pass  # server side only

    def on_message(self, message: str | bytes) -> None:
        # While closing, messages past the queue's bound are dropped: the
        # peer may keep sending until it sees our close frame, and nobody
        # may be reading.
        if self._closing and self._queue_high and len(self._messages) >= self._queue_high:
            return
        self._messages.append(message)

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        raise NotImplementedError  # frames=True is not an option here

    def on_ping(self, payload: bytes) -> None:
        pass  # the engine answered it

    def on_pong(self, payload: bytes) -> None:
        pings = self._pings
        if payload not in pings:
            return
        now = time.monotonic()
        # A pong acknowledges its ping and every ping sent before it.
        for data in list(pings):
            event, sent_at, _ = pings.pop(data)
            event.set()
            if data == payload:
                self.latency = now - sent_at
                break

    def on_close(self, code: int, reason: str) -> None:
        pass  # the engine keeps the codes; we wait for the server's TCP close

    def on_fail(self, exc: ProtocolError) -> None:
        self._failure = exc  # the engine sends the close frame at once

    # ------------------------------------------------------------ receiving

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        Block up to ``timeout`` seconds (``None``: no limit; 0 or less: only
        what has arrived already), then raise :class:`TimeoutError`: the
        connection stays usable.  ``decode=False`` returns text as UTF-8
        ``bytes``, ``decode=True`` decodes binary as UTF-8.  Raise
        :class:`~rapidws.exceptions.ConnectionClosedOK` after a normal close
        (:class:`~rapidws.exceptions.ConnectionClosedError` otherwise) once
        every message received before has been returned, and
        :class:`~rapidws.exceptions.ConcurrencyError` if another thread is
        in ``recv`` already.
        """
        if not self._recv_mutex.acquire(False):
            raise ConcurrencyError(
                "cannot call recv while another thread is already running recv or recv_streaming"
            )
        try:
            messages = self._messages
            if not messages:
                self._wait_message(timeout)
            message = messages.popleft()
            self._recv_count += 1
        finally:
            self._recv_mutex.release()
        if decode is not None:
            if decode and type(message) is bytes:
                return message.decode("utf-8")
            if not decode and type(message) is str:
                return message.encode("utf-8")
        return message

    def recv_streaming(self, decode: bool | None = None) -> Iterator[Data]:
        """Receive the next message as an iterator of pieces.

        The engine reassembles fragmented messages (and checks them against
        ``max_size``) before delivering them, so there is a single piece:
        the whole message, as :meth:`recv` returns it.
        """
        yield self.recv(decode=decode)

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages until the connection closes; a normal close ends quietly."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def _wait_message(self, timeout: float | None) -> None:
        """Read until a message is queued; the caller holds _recv_mutex."""
        messages = self._messages
        deadline = None if timeout is None else time.monotonic() + timeout
        read_lock = self._read_lock
        self._in_recv = True
        try:
            while not messages:
                if self._done:
                    self._join_keeper()
                    raise self._closed_error()
                if deadline is None:
                    read_lock.acquire()
                elif not read_lock.acquire(True, max(deadline - time.monotonic(), 0.0)):
                    raise TimeoutError(f"no message within {timeout} seconds")
                try:
                    if messages or self._done:
                        continue
                    if deadline is None:
                        self._read(None)
                    elif not self._read(max(deadline - time.monotonic(), 0.0)):
                        raise TimeoutError(f"no message within {timeout} seconds")
                finally:
                    read_lock.release()
        finally:
            self._in_recv = False
            if self._keeper_asleep:  # this recv waited long: the keeper may read again
                with self._cond:
                    self._cond.notify_all()

    def _read(self, timeout: float | None) -> bool:
        """Read once from the socket and feed the engine; False if nothing came in time.

        The caller holds ``_read_lock``.  Once the engine is closed, reads
        are bounded by ``close_timeout``: past it the connection is closed
        from this side (RFC 6455 7.1.1 lets the client close TCP when the
        server does not).
        """
        sock = self._sock
        deadline = self._close_deadline
        closing_wait = False
        if deadline is not None:
            left = deadline - time.monotonic()
            if timeout is None or left <= timeout:
                timeout = left
                closing_wait = True
        data: bytes | None = None
        if self._spin and not closing_wait and (timeout is None or timeout > 0):
            data = self._spin_read(sock)
        if data is None:
            if (
                timeout is not None
                and not (self._tls and sock.pending())  # type: ignore[attr-defined]
                and not self._poll.poll(max(timeout, 0.0) * 1000)
            ):
                if closing_wait:
                    self._finish(None)  # close_timeout is over
                    return True
                return False
            try:
                data = sock.recv(_READ)
            except (BlockingIOError, ssl_module.SSLWantReadError):
                return False
            except OSError as exc:
                self._finish(exc)
                return True
        if not data:
            self._finish(None)
            return True
        with self._lock:
            engine = self.engine
            engine.receive_data(data)
            if self._out:
                self._flush_quietly()  # a broken socket shows as the end of input next
            if engine.state == CLOSED and self._close_deadline is None:
                self._start_close_deadline()
        return True

    def _spin_read(self, sock: socket.socket) -> bytes | None:
        """Poll the socket without sleeping for up to ``spin`` seconds; None if nothing came.

        Falling asleep in the kernel and being woken costs more than a
        loopback or LAN round trip's worth of polling: a server that answers
        within ``spin`` is read at once.  Spinning turns itself off after a
        few misses (a slow or remote server), and tries again now and then.
        """
        self._waits += 1
        if self._spin_misses >= _SPIN_MISSES and self._waits & 63:
            return None
        end = time.perf_counter() + self._spin
        recv = sock.recv
        while True:
            try:
                data = recv(_READ, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() >= end:
                    self._spin_misses += 1
                    return None
                continue
            except OSError:
                return None  # the blocking read that follows reports it
            self._spin_misses = 0
            return data

    def _start_close_deadline(self) -> None:
        timeout = self.close_timeout
        self._close_deadline = time.monotonic() + (1e9 if timeout is None else timeout)

    def _check_closed(self) -> None:
        if self.engine.state == CLOSED and self._close_deadline is None:
            self._start_close_deadline()

    def _finish(self, cause: BaseException | None) -> None:
        """The TCP connection is over (the caller holds ``_read_lock``): close the socket."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._lost_cause = self._failure or self._lost_cause or cause
            self.engine.release()  # the codes stay; the engine-connection cycle goes
            self._out.clear()
            sock = self._sock
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the keeper's poll
            sock.close()
            pings, self._pings = self._pings, {}
        for event, _, ack_on_close in pings.values():
            if ack_on_close:
                event.set()
        self._closed_event.set()
        with self._cond:
            self._cond.notify_all()

    def _abort(self) -> None:
        """Cut the TCP connection: the thread reading sees its end and finishes."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    # -------------------------------------------------------------- sending

    def send(self, message: DataLike | Iterable[DataLike], text: bool | None = None) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        ``text=True`` sends bytes (UTF-8 already) as text, ``text=False`` a
        ``str`` as binary.  An iterable of them sends one fragmented message,
        a frame per item.  Blocks while the peer does not read.  Raise
        :class:`~rapidws.exceptions.ConnectionClosed` once the connection is
        closing or closed.
        """
        if isinstance(message, str):
            if text is False:
                self._send_one(message.encode("utf-8"), OP_BINARY)
            else:
                self._send_one(message, OP_TEXT)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self._send_one(message, OP_TEXT if text else OP_BINARY)
        elif isinstance(message, Mapping):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, Iterable):
            self._send_fragments(iter(message), text)
        else:
            raise TypeError("data must be str, bytes-like or an iterable of them")

    def _send_one(self, message: DataLike, opcode: int) -> None:
        with self._lock:
            if self._sending is not None:
                self._wait_fragments()
            engine = self.engine
            if engine.state != OPEN or self._done:
                raise self._closed_error()
            if opcode == OP_TEXT and not isinstance(message, str):
                if engine.max_fragment_size:
                    engine.send_message(bytes(message).decode("utf-8"))
                else:
                    engine.send_data(OP_TEXT, message, True)
            else:
                engine.send_message(message)
            self._flush_locked()

    def _wait_fragments(self) -> None:
        """Wait (holding ``_lock``) until the fragmented message in progress is sent."""
        if self._sending is threading.current_thread():
            raise ConcurrencyError("cannot send while this thread is sending a fragmented message")
        while self._sending is not None:
            self._sent.wait()

    def _send_fragments(self, fragments: Iterator[DataLike], text: bool | None) -> None:
        try:
            fragment = next(fragments)
        except StopIteration:
            return  # an empty iterable sends nothing
        kinds: tuple[type, ...]
        if isinstance(fragment, str):
            kinds = (str,)
            opcode = OP_BINARY if text is False else OP_TEXT
        elif isinstance(fragment, (bytes, bytearray, memoryview)):
            kinds = (bytes, bytearray, memoryview)
            opcode = OP_TEXT if text else OP_BINARY
        else:
            raise TypeError("fragments must be str or bytes-like")
        with self._lock:
            if self._sending is not None:
                self._wait_fragments()
            self._sending = threading.current_thread()
        started = False
        try:
            for following in fragments:
                if not isinstance(following, kinds):
                    raise TypeError("all fragments must be of the same type")
                self._send_fragment(opcode, fragment, False)
                started = True
                opcode = OP_CONT
                fragment = following
            self._send_fragment(opcode, fragment, True)
        except BaseException:
            with self._lock:
                engine = self.engine
                if started and engine.state == OPEN and not self._done:
                    # Half a message cannot be taken back (RFC 6455 5.4).
                    engine.fail(1011, "error in fragmented message")
                    self._flush_quietly()
                    self._check_closed()
            self._kick()
            raise
        finally:
            with self._lock:
                self._sending = None
                self._sent.notify_all()

    def _send_fragment(self, opcode: int, fragment: DataLike, fin: bool) -> None:
        payload = fragment.encode("utf-8") if isinstance(fragment, str) else fragment
        with self._lock:
            engine = self.engine
            if engine.state != OPEN or self._done:
                raise self._closed_error()
            engine.send_data(opcode, payload, fin)
            self._flush_locked()

    def _flush_locked(self) -> None:
        """Send what the engine wrote; the caller holds ``_lock``."""
        out = self._out
        if not out:
            return
        if len(out) == 1:
            data = out[0]
        elif len(out) == 2 and len(out[1]) >= _JOIN_LIMIT:
            data = b""
            self._sendall(out[0])
            data = out[1]
        else:
            data = b"".join(out)
        out.clear()
        self._sendall(data)

    def _sendall(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._out.clear()
            if self._lost_cause is None:
                self._lost_cause = exc
            self._abort()
            raise self._closed_error() from exc

    def _flush_quietly(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            self._flush_locked()

    def ping(self, data: DataLike | None = None, *, ack_on_close: bool = False) -> threading.Event:
        """Send a ping; return an event set when its pong arrives.

        Without ``data``, four random bytes are sent.  With
        ``ack_on_close=True`` the event is set also when the connection
        closes (check :attr:`state` then).  :attr:`latency` holds the
        round-trip time of the latest ping answered.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif data is not None and not isinstance(data, bytes):
            raise TypeError("data must be str or bytes-like")
        event = threading.Event()
        with self._lock:
            engine = self.engine
            if engine.state != OPEN or self._done:
                raise self._closed_error()
            if data is not None and data in self._pings:
                raise ConcurrencyError("already waiting for a pong with the same data")
            while data is None or data in self._pings:
                data = os.urandom(4)
            engine.send_ping(data)
            self._pings[data] = (event, time.monotonic(), ack_on_close)
            self._flush_locked()
        self._kick()
        return event

    def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._lock:
            engine = self.engine
            if engine.state != OPEN or self._done:
                raise self._closed_error()
            engine.send_pong(bytes(data))
            self._flush_locked()

    # -------------------------------------------------------------- closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake (RFC 6455 7.1.2) and wait until TCP is closed.

        Waits up to ``close_timeout`` for the server's close frame and TCP
        close, then closes the socket from this side; a send stuck that long
        (the server does not read) is cut.  Idempotent; callable while
        another thread is in ``recv`` (which then raises
        :class:`~rapidws.exceptions.ConnectionClosed`).
        """
        timeout = self.close_timeout
        if not self._lock.acquire(True, -1 if timeout is None else timeout):
            # A send is stuck: the server does not read.  Cut the connection
            # (its sendall fails) rather than wait for ever.
            self._abort()
            self._lock.acquire()
        try:
            self._closing = True
            engine = self.engine
            if not self._done and engine.state == OPEN:
                if self._sending is not None:
                    engine.fail(1011, "close during fragmented message")
                else:
                    engine.send_close(code, reason)
                self._start_close_deadline()
                self._flush_quietly()
        finally:
            self._lock.release()
        self._kick()
        self._wait_done()
        self._join_keeper()

    def _wait_done(self) -> None:
        """Read (or let the thread reading read) until the TCP connection is over."""
        read_lock = self._read_lock
        while not self._done:
            deadline = self._close_deadline
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if left is None:
                read_lock.acquire()
            elif not read_lock.acquire(True, left):
                self._abort()  # wakes the thread that reads; it finishes
                read_lock.acquire()
            try:
                if not self._done:
                    self._read(left)
            finally:
                read_lock.release()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; return whether it is."""
        return self._closed_event.wait(timeout)

    def _join_keeper(self) -> None:
        if self._keeper is not threading.current_thread():
            self._keeper.join()

    def _closed_error(self) -> ConnectionClosed:
        """A new exception for an operation on a closing or closed connection."""
        closed = self.engine.closed_error()
        closed.__cause__ = self._failure or self._lost_cause
        return closed

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(1011)

    def __repr__(self) -> str:
        names = {OPEN: "OPEN", CLOSING: "CLOSING"}
        return f"<{type(self).__name__} {names.get(self.state, 'CLOSED')} {self.remote_address}>"

    # ----------------------------------------------------------- the keeper

    def _kick(self) -> None:
        """Ask the keeper to read now, if no thread is receiving."""
        self._wanted = True
        with self._cond:
            self._cond.notify_all()

    def _keep(self) -> None:
        """The keeper thread: reads while the application is not receiving; keepalive."""
        poller = select.poll()  # its own: a poll object is for one thread at a time
        poller.register(self._sock, select.POLLIN)
        cond = self._cond
        seen = self._recv_count
        if self.ping_interval is not None:
            self._ping_due = time.monotonic() + self.ping_interval
        while not self._done:
            now = time.monotonic()
            wait = self._keepalive(now)
            wanted = self._wanted
            self._wanted = False
            busy = self._in_recv or (self._recv_count != seen and not wanted)
            if self._closing or not self._queue_high:
                full = False
            elif self._queue_full:
                full = len(self._messages) > self._queue_low
            else:
                full = len(self._messages) >= self._queue_high
            self._queue_full = full
            if busy or full:
                # The same recv still waiting IDLE later: sleep until it returns
                # (it wakes the keeper) or a timer is due, not IDLE at a time.
                deep = self._in_recv and self._recv_count == seen and not full
                seen = self._recv_count
                with cond:
                    if deep:
                        self._keeper_asleep = True
                        if self._in_recv and not self._done and not self._wanted:
                            cond.wait(wait)
                        self._keeper_asleep = False
                    elif not self._done and not self._wanted:
                        cond.wait(IDLE if wait is None else min(IDLE, wait))
                continue
            # Idle: wait for the socket (bounded, so that timers run).
            limit = 1.0 if wait is None else min(wait, 1.0)
            if not poller.poll(limit * 1000) or self._done:
                continue
            if not self._read_lock.acquire(True, IDLE):
                continue
            try:
                if not self._done and not self._in_recv:
                    self._read(0.0)
            finally:
                self._read_lock.release()

    def _keepalive(self, now: float) -> float | None:
        """Keepalive (``ping_interval``, ``ping_timeout``): send a ping when one is
        due, fail the connection when its pong is late; return the seconds until
        the next thing to do (None: nothing)."""
        pong_due = self._pong_due
        if pong_due is not None:
            event = self._keepalive_event
            if event is not None and event.is_set():
                self._pong_due = pong_due = None
            elif now >= pong_due:
                self._ping_due = self._pong_due = None
                with self._lock:
                    if self.engine.state == OPEN and not self._done:
                        # RFC 6455 7.1.7: _Fail the WebSocket Connection_, 1011.
                        self.engine.fail(1011, "keepalive ping timeout")
                        self._flush_quietly()
                        self._check_closed()
                self._wanted = True
                return None
        ping_due = self._ping_due
        if ping_due is not None and now >= ping_due and pong_due is None:
            # (one keepalive ping at a time: the next waits for this one's pong)
            try:
                self._keepalive_event = self.ping()
            except ConnectionClosed:
                self._ping_due = None
                return None
            assert self.ping_interval is not None
            self._ping_due = ping_due = now + self.ping_interval
            if self.ping_timeout is not None:
                self._pong_due = pong_due = now + self.ping_timeout
        dues = [due for due in (ping_due, pong_due) if due is not None and due > now]
        return max(min(dues) - now, 0.0) if dues else None


# ------------------------------------------------------------------ connect


class _Deadline:
    """The time left of ``open_timeout``; past it, TimeoutError names the limit."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.error()
        return left

    def error(self) -> TimeoutError:
        return TimeoutError(
            f"rapidws.sync.connect: no open connection within open_timeout={self.timeout} seconds"
        )


def _open_socket(
    wsuri: Any, sock: socket.socket | None, unix: str | None, deadline: _Deadline
) -> socket.socket:
    if sock is not None:
        return sock
    if unix is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect(unix)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((wsuri.host, wsuri.port), timeout=deadline.left())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _handshake(
    sock: socket.socket, handshake: ClientHandshake, deadline: _Deadline
) -> tuple[ClientOpening, Accepted | Redirect]:
    opening = ClientOpening(handshake)
    sock.settimeout(deadline.left())
    sock.sendall(opening.data_to_send())
    while True:
        sock.settimeout(deadline.left())
        try:
            data = sock.recv(_READ)
        except ssl_module.SSLError as exc:
            # TLS 1.3: a server that refuses the client's certificate says so
            # after the client's TLS handshake (RFC 8446 4.4.2.4), in an alert.
            if "ALERT_" not in (exc.reason or ""):
                raise
            raise TLSAlert.from_ssl_error(exc) from exc
        if not data:
            raise InvalidMessage("connection closed during the opening handshake")
        outcome = opening.receive_data(data)
        if outcome is None:
            continue
        if isinstance(outcome, (Accepted, Redirect)):
            return opening, outcome
        raise InvalidStatus(outcome.response)


def connect(
    uri: str,
    *,
    sock: socket.socket | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    unix: str | None = None,
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    compression: str | None = "deflate",
    additional_headers: HeadersLike | None = None,
    user_agent_header: str | None = "rapidws",
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    max_size: int | None = 2**20,
    max_queue: int | tuple[int, int | None] | None = 16,
    max_fragment_size: int | None = None,
    mode: str | None = None,
    max_redirects: int = 10,
    spin: float = 5e-05,
    **unknown: Any,
) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``) and return it.

    Use it as ``with connect(uri) as ws:`` (closed at the end) or call
    :meth:`ClientConnection.close` yourself.  Options have the names and
    defaults of :func:`rapidws.connect`: ``subprotocols``,
    ``additional_headers``, ``user_agent_header``, ``origin``,
    ``compression`` (``"deflate"``: permessage-deflate, or ``None``),
    ``extensions``, ``open_timeout`` (connecting, TLS and the handshake),
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``max_fragment_size``, ``mode``, ``max_redirects``,
    ``ssl`` and ``server_hostname``; plus ``sock`` (a connected socket to
    use), ``unix`` (a Unix socket's path) and ``spin`` (seconds ``recv``
    polls the socket before it sleeps; 0: never; see the module docstring).  Raise
    :class:`~rapidws.exceptions.InvalidURI`, :class:`OSError`,
    :class:`~rapidws.exceptions.InvalidHandshake` (``InvalidStatus`` for a
    refusal, ``TLSAlert`` for a refused client certificate) or :class:`TimeoutError`.
    """
    if unknown:
        name = next(iter(unknown))
        raise TypeError(unexpected_keyword("rapidws.sync.connect", name, option_names(connect)))
    if compression == "deflate":
        extensions = enable_client_permessage_deflate(extensions)
    elif compression is not None:
        raise ValueError(f"unsupported compression: {compression}")
    if mode not in (None, "text", "binary"):
        raise ValueError(f"mode must be None, 'text' or 'binary', not {mode!r}")
    deadline = _Deadline(open_timeout)
    for _ in range(max_redirects + 1):
        wsuri = parse_uri(uri)
        context: ssl_module.SSLContext | None = None
        if wsuri.secure:
            context = ssl if isinstance(ssl, ssl_module.SSLContext) else None
            if context is None:
                context = ssl_module.create_default_context()
        elif ssl not in (None, False):
            raise ValueError("ssl= needs a wss:// URI")
        handshake = ClientHandshake(
            host=wsuri.host_header,
            path=wsuri.resource_name,
            subprotocols=subprotocols,
            extensions=extensions,
            additional_headers=additional_headers,
            origin=origin,
            user_agent=user_agent_header,
        )
        conn_sock: socket.socket | None = None
        try:
            conn_sock = _open_socket(wsuri, sock, unix, deadline)
            if context is not None:
                conn_sock.settimeout(deadline.left())
                conn_sock = context.wrap_socket(
                    conn_sock, server_hostname=server_hostname or wsuri.host
                )
            opening, outcome = _handshake(conn_sock, handshake, deadline)
        except BaseException as exc:
            if conn_sock is not None:
                conn_sock.close()
            elif sock is not None:
                sock.close()
            if isinstance(exc, TimeoutError) and not str(exc).startswith("rapidws"):
                raise deadline.error() from None
            raise
        if isinstance(outcome, Accepted):
            conn_sock.settimeout(None)
            return ClientConnection(
                conn_sock,
                opening,
                outcome,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                close_timeout=close_timeout,
                max_size=max_size,
                max_queue=max_queue,
                max_fragment_size=max_fragment_size,
                mode=mode,
                spin=spin,
            )
        conn_sock.close()
        location = outcome.location
        if location.startswith(("http://", "https://")):
            location = "ws" + location[4:]
        new_uri = urllib.parse.urljoin(uri, location)
        if sock is not None or unix is not None or (wsuri.secure and not parse_uri(new_uri).secure):
            raise InvalidRedirect(outcome.response)
        uri = new_uri
    raise SecurityError(f"more than {max_redirects} redirects")

"""A transport of rapidws's own on a connected, non-blocking TCP socket.

:class:`SocketTransport` implements :class:`asyncio.Transport` on any loop
with ``add_reader`` / ``add_writer``: asyncio's own and uvloop.  It serves
plain TCP servers and clients (see :mod:`rapidws.io.listening`) where the
loop's own transports cannot be read from and written to directly: uvloop's
are compiled, their reads and writes go through libuv's handles.

For a rapidws connection (a :class:`~rapidws.io.transport.BaseConnection`)
the compiled build reads with ``recv(2)`` into the thread's shared buffer and
hands the bytes straight to the connection; the connection writes with
``send(2)`` while this transport holds nothing.  Any other protocol, and the
pure build, get asyncio's protocol calls (``get_buffer`` / ``buffer_updated``
or ``data_received``).  Close, abort, end of file, flow control and errors
behave as on asyncio's selector transports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .transport import _READ_SIZE, BaseConnection, _sent_through

if TYPE_CHECKING:
    from .. import _cython_shim as cython
    from .transport import _direct_read, _fd_read, _feed

    errno: int
    EAGAIN: int
    EINTR: int
else:
    try:
        import cython
        from cython.cimports.libc.errno import EAGAIN, EINTR, errno
        from cython.cimports.rapidws.io.transport import _direct_read, _fd_read, _feed
    except (ImportError, AttributeError):
        from .. import _cython_shim as cython

__all__ = ["SocketTransport"]

logger = logging.getLogger("rapidws")

#: Pieces of the write buffer handed to one ``sendmsg`` call.
_IOV_MAX = 64
_BUFFER_UPDATED_FAILED = "Fatal error: protocol.buffer_updated() call failed."
_READ_FAILED = "Fatal read error on socket transport"
_WRITE_FAILED = "Fatal write error on socket transport"
#: Writes after the connection is lost are dropped; warn once this many were.
_LOST_WRITES_WARNING = 5


class SocketTransport:
    """An :class:`asyncio.Transport` on a connected TCP socket (non-blocking).

    ``connection_made`` is called on the next loop iteration, then reading
    starts, as with the loop's own transports.  ``server`` (optional) is
    told of the connection: ``_attach()`` now, ``_detach()`` once it is lost.
    """

    __slots__ = (
        "__weakref__",
        "_buffer",
        "_buffer_size",
        "_closing",
        "_conn",
        "_conn_lost",
        "_eof",
        "_extra",
        "_fd",
        "_high",
        "_loop",
        "_low",
        "_paused",
        "_peername",
        "_protocol",
        "_protocol_buffered",
        "_protocol_connected",
        "_protocol_paused",
        "_server",
        "_sock",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        # ``sockname`` and ``peername`` are looked up when first asked for (an
        # idle connection keeps no dict), then kept for after the close.
        extra = dict(extra) if extra else {}
        self._peername: Any = extra.pop("peername", None)
        self._extra: dict[str, Any] | None = extra or None
        self._buffer: list[bytes | memoryview] = []
        self._buffer_size = 0
        self._high = 65536
        self._low = 16384
        self._closing = False
        self._conn_lost = 0
        self._eof = False
        self._paused = False  # reading
        self._protocol_paused = False  # writing
        self._protocol_connected = False
        self._conn: BaseConnection | None = None
        self._protocol: asyncio.BaseProtocol = protocol
        self._protocol_buffered = False
        self.set_protocol(protocol)
        self._server = server
        if server is not None:
            server._attach(self)
        loop.call_soon(self._connection_made)

    def _connection_made(self) -> None:
        self._protocol_connected = True
        self._protocol.connection_made(self)  # type: ignore[arg-type]
        if self._closing:
            return  # closed or aborted already: connection_lost follows
        conn = self._conn
        if conn is not None and cython.compiled and not self._eof:
            # The connection writes to the socket itself while this holds nothing.
            conn._fd = self._fd
        if not self._paused:
            self._loop.add_reader(self._fd, self._read_ready)

    # ------------------------------------------------------------- BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket``, ``sockname`` and ``peername``, as asyncio's transports give them."""
        if name == "peername":
            if self._peername is None and self._sock is not None:
                self._peername = self._address(True)
            return self._peername
        extra = self._extra
        if extra is not None and name in extra:
            return extra[name]
        if name == "socket":
            return self._sock
        if name == "sockname" and self._sock is not None:
            if extra is None:
                extra = self._extra = {}
            extra[name] = address = self._address(False)
            return address
        return default

    def _address(self, peer: bool) -> Any:
        sock = self._sock
        assert sock is not None
        try:
            return sock.getpeername() if peer else sock.getsockname()
        except OSError:
            return None

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close after what the buffer holds is sent; ``connection_lost(None)`` follows."""
        if self._closing:
            return
        self._closing = True
        self._stop_direct_writes()
        if not self._paused:
            self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._protocol_buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._conn = protocol if isinstance(protocol, BaseConnection) else None

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # ------------------------------------------------------------- ReadTransport

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        if self._protocol_connected:
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._protocol_connected:
            self._loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        """The socket is readable."""
        if self._conn_lost:
            return
        conn = self._conn
        if cython.compiled and conn is not None:
            shared = conn._rbuf
            if shared is not None and not shared.busy:
                # A large frame in progress is read into its own buffer; else the shared one.
                nbytes = _direct_read(conn, self._fd)
                direct = nbytes != -2
                if not direct:
                    nbytes = _fd_read(self._fd, shared.data)
                if nbytes > 0:
                    shared.busy = True
                    try:
                        if direct:
                            _feed(conn, None, nbytes, False)
                        else:
                            _feed(conn, shared.data, nbytes, True)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._fatal_error(
                            exc, "Fatal error: protocol.buffer_updated() call failed."
                        )
                    finally:
                        shared.busy = False
                elif nbytes == 0:
                    self._read_eof()
                else:
                    code = errno
                    if code != EAGAIN and code != EINTR:  # EWOULDBLOCK is EAGAIN on Linux
                        self._fatal_error(OSError(code, os.strerror(code)), _READ_FAILED)
                return
        self._read_protocol()

    def _read_protocol(self) -> None:
        """Read as asyncio does: into ``get_buffer()``, or new bytes for ``data_received``."""
        protocol: Any = self._protocol
        buffered = self._protocol_buffered
        sock = self._sock
        assert sock is not None
        if buffered:
            try:
                buf = protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
        try:
            if buffered:
                nbytes = sock.recv_into(buf)
            else:
                data = sock.recv(_READ_SIZE)
                nbytes = len(data)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, _READ_FAILED)
            return
        if not nbytes:
            self._read_eof()
            return
        try:
            if buffered:
                protocol.buffer_updated(nbytes)
            else:
                protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc,
                _BUFFER_UPDATED_FAILED
                if buffered
                else "Fatal error: protocol.data_received() call failed.",
            )

    def _read_eof(self) -> None:
        """The peer closed its side: the protocol keeps ours open or the transport closes."""
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Nothing more to read: stop polling, keep writing (as asyncio,
            # resume_reading() does not poll again).
            self._loop.remove_reader(self._fd)
        else:
            self.close()

    # ------------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now as far as the socket takes it; buffer the rest."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if data:
            self._write_pieces([data])

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send the pieces in order, together (``sendmsg``) while nothing is buffered."""
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        pieces = [piece for piece in list_of_data if piece]
        if pieces:
            self._write_pieces(pieces)

    def _write_pieces(self, pieces: list[bytes | bytearray | memoryview]) -> None:
        """Send non-empty ``pieces`` now as far as the socket takes them; buffer the rest."""
        if self._lost_write():
            return
        start = 0
        count = len(pieces)
        if not self._buffer:  # else they go behind what is buffered
            sock = self._sock
            assert sock is not None
            while start < count:
                stop = min(start + _IOV_MAX, count)
                try:
                    sent = sock.send(pieces[0]) if count == 1 else sock.sendmsg(pieces[start:stop])
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, _WRITE_FAILED)
                    return
                start = _sent_through(pieces, start, sent)
                if start < stop:
                    break  # a short write: the socket is full
            if start == count:
                return
            self._loop.add_writer(self._fd, self._write_ready)
        for piece in pieces[start:]:
            self._buffer_append(piece)

    def _lost_write(self) -> bool:
        """Whether the connection is lost: the write is dropped (asyncio warns the same way)."""
        if not self._conn_lost:
            return False
        if self._conn_lost >= _LOST_WRITES_WARNING:
            logger.warning("socket.send() raised exception.")
        self._conn_lost += 1
        return True

    def _buffer_append(self, data: bytes | bytearray | memoryview) -> None:
        # A caller may change a bytearray after writing it: buffer a copy.
        if type(data) is bytearray:
            data = bytes(data)
        self._buffer.append(data)  # type: ignore[arg-type]
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        """The socket is writable: send what the buffer holds."""
        if self._conn_lost:
            return
        buffer = self._buffer
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(buffer[0]) if len(buffer) == 1 else sock.sendmsg(buffer[:_IOV_MAX])
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, _WRITE_FAILED)  # it drops the buffer
            return
        self._buffer_size -= sent
        del buffer[: _sent_through(buffer, 0, sent)]
        self._maybe_resume_protocol()
        if buffer:
            return
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._conn_lost += 1
            self._call_connection_lost(None)
        elif self._eof:
            sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Shut down the sending side once the buffer is sent."""
        if self._closing or self._eof:
            return
        self._eof = True
        self._stop_direct_writes()
        if not self._buffer and self._sock is not None:
            self._sock.shutdown(socket.SHUT_WR)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """As asyncio's: ``high`` defaults to 64 KiB, ``low`` to a quarter of ``high``."""
        if high is None:
            high = 65536 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(exc, "protocol.pause_writing() failed")

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or self._buffer_size > self._low:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(exc, "protocol.resume_writing() failed")

    # ------------------------------------------------------------ closing

    def abort(self) -> None:
        """Close at once, dropping what the buffer holds; ``connection_lost(None)`` follows."""
        self._force_close(None)

    def _stop_direct_writes(self) -> None:
        """From now on, the connection's writes come through :meth:`write`."""
        if self._conn is not None:
            self._conn._fd = -1

    def _report(self, exc: BaseException, message: str) -> None:
        """Hand an error to the loop's exception handler."""
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(exc, message)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        self._stop_direct_writes()
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            if not self._paused:
                self._loop.remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            sock = self._sock
            if sock is not None:
                self._loop.remove_reader(self._fd)
                self._loop.remove_writer(self._fd)
                sock.close()
                self._sock = None
            # Break the transport-protocol cycle: both go by reference counting.
            self._conn = None
            self._protocol = None  # type: ignore[assignment]
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self)

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        return f"<SocketTransport fd={self._fd} {state}>"

# Types for the compiled build of transport.py (Cython pure-Python mode).

cimport cython

from rapidws.protocol.engine cimport Engine, SinkBase


cdef class BaseConnection


cdef class _ReadBuffer:
    cdef public bint busy
    cdef public object data
    cdef public object view


cdef class _Flusher:
    cdef list _pending
    cdef bint _scheduled

    cpdef add(self, BaseConnection conn)


# asyncio.BufferedProtocol is its second base, in transport.py.
cdef class BaseConnection(SinkBase):
    cdef public object _call_later
    cdef public object _close_timer
    cdef public bint _defer_flush
    cdef public bint _direct_read
    cdef public object _drain_waiters
    cdef public object _failure
    cdef public int _fd
    cdef public _Flusher _flusher
    cdef public bint _hold_writes
    cdef public object _hs_buf
    cdef public object _hs_hook
    cdef public object _hs_parser
    cdef public Py_ssize_t _linger_left
    cdef public object _keepalive_timer
    cdef public bint _lazy_cork
    cdef public object _lost
    cdef public object _lost_cause
    cdef public object _open_timer
    cdef public object _opened
    cdef public bint _paused_writing
    cdef public object _pings
    cdef public object _pipe
    cdef public object _private_buf
    cdef public _ReadBuffer _rbuf
    cdef public int _read_pauses
    cdef public bint _scatter_writes
    cdef public list _shared_wbuf
    cdef public object _stream
    cdef public int _stream_end
    cdef public bint _ws_closed
    cdef public object _ws_closed_waiter
    cdef public bint _tr_buffered
    cdef public list _wbuf
    cdef public object close_timeout
    cdef public Engine engine
    cdef public object extensions
    cdef public bint frame_mode
    cdef public object handshake_exc
    cdef public object latency
    cdef public object loop
    cdef public object max_fragment_size
    cdef public object max_handshake_size
    cdef public object max_size
    cdef public object mode
    cdef public object open_timeout
    cdef public object ping_interval
    cdef public object ping_timeout
    cdef public object request
    cdef public object response
    cdef public object stages
    cdef public object subprotocol
    cdef public object transport
    cdef public object write_high
    cdef public object write_low

    cpdef write(self, object data)
    @cython.locals(buf=list)
    cdef _write_shared(self, bytes data, bint cork)
    cpdef on_message(self, object message)
    cpdef on_frame(self, int opcode, bytes payload, bint fin, int rsv)

cdef Py_ssize_t _IOV_MAX

cdef Py_ssize_t _fd_write(int fd, bytes data)

@cython.locals(count=int, piece=bytes)
cdef Py_ssize_t _fd_writev(int fd, list pieces, Py_ssize_t start, Py_ssize_t stop)

cdef Py_ssize_t _fd_read(int fd, bytes buffer)

@cython.locals(engine=Engine)
cdef Py_ssize_t _direct_read(BaseConnection conn, int fd)

@cython.locals(engine=Engine, flush_scheduled=bint)
cdef _feed(BaseConnection conn, bytes data, Py_ssize_t end, bint borrowed)


@cython.locals(flusher=_Flusher)
cdef _schedule_flush(BaseConnection conn)

cdef bint _writes_direct(BaseConnection conn) except -1

@cython.locals(sent=Py_ssize_t)
cdef _send_now(BaseConnection conn, bytes data)

@cython.locals(fd=int, sent=Py_ssize_t, start=Py_ssize_t, stop=Py_ssize_t, count=Py_ssize_t)
cdef _send_list(BaseConnection conn, list pieces)

# cpdef: SocketTransport's own writes call it too.
cpdef Py_ssize_t _sent_through(list pieces, Py_ssize_t start, Py_ssize_t sent) except -1

@cython.locals(buf=list, total=Py_ssize_t, alone=Py_ssize_t)
cdef _flush_writes(BaseConnection conn)

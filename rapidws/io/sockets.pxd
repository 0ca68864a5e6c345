# Types for the compiled build of sockets.py (Cython pure-Python mode).

cimport cython

from rapidws.io.transport cimport BaseConnection, _ReadBuffer


cdef class SocketTransport:
    cdef object __weakref__
    cdef public list _buffer
    cdef public Py_ssize_t _buffer_size
    cdef public bint _closing
    cdef public BaseConnection _conn
    cdef public int _conn_lost
    cdef public bint _eof
    cdef public dict _extra
    cdef public int _fd
    cdef public Py_ssize_t _high
    cdef public object _loop
    cdef public Py_ssize_t _low
    cdef public bint _paused
    cdef public object _peername
    cdef public object _protocol
    cdef public bint _protocol_buffered
    cdef public bint _protocol_connected
    cdef public bint _protocol_paused
    cdef public object _server
    cdef public object _sock

    @cython.locals(
        conn=BaseConnection, shared=_ReadBuffer, nbytes=Py_ssize_t, code=int, direct=bint
    )
    cpdef _read_ready(self)

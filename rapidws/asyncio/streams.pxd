# Types for the compiled build of streams.py (Cython pure-Python mode).

cimport cython

from rapidws.asyncio.connection cimport Connection


cdef class WebSocketStreamReader:
    cdef public Connection _conn
    cdef public Py_ssize_t _limit
    cdef public bytes _chunk
    cdef public Py_ssize_t _pos
    cdef public bint _fin
    cdef public bint _text
    cdef public bint _partial
    cdef public bint _eof
    cdef public object _exc

    @cython.locals(opcode=int)
    cdef _take(self, tuple frame)
    @cython.locals(chunk=bytes, pos=Py_ssize_t, size=Py_ssize_t, end=Py_ssize_t)
    cdef bytes _slice(self, Py_ssize_t n)


cdef class WebSocketStreamWriter:
    cdef public Connection _conn
    cdef public bint text
    cdef public object _close_task
    cdef public object _drained

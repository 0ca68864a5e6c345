# Types for the compiled build of streams.py (Cython pure-Python mode).

from rapidws.asyncio.connection cimport Connection


cdef _queue(Connection conn, tuple frame)


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

    cdef _take(self, tuple frame)


cdef class WebSocketStreamWriter:
    cdef public Connection _conn
    cdef public bint text
    cdef public object _close_task
    cdef public object _drained

# Types for the compiled build of broadcast.py (Cython pure-Python mode).

cimport cython

from rapidws.io.transport cimport BaseConnection
from rapidws.protocol.engine cimport Engine


cdef class _Delivery:
    cdef int opcode
    cdef bytes payload
    cdef object message
    cdef bint closing
    cdef object close_after
    cdef bint compress
    cdef public bint cork
    cdef bytes plain
    cdef dict shared
    cdef public Py_ssize_t sent
    cdef public Py_ssize_t sent_alone
    cdef public Py_ssize_t skipped_slow
    cdef public Py_ssize_t closed_slow
    cdef public Py_ssize_t skipped_closed
    cdef public Py_ssize_t skipped_mode
    cdef public Py_ssize_t skipped_busy
    cdef public Py_ssize_t failed
    cdef public Py_ssize_t encodings

    cpdef deliver(self, object conn)
    @cython.locals(engine=Engine, frames=bytes, only=int, opcode=int)
    cdef _deliver(self, BaseConnection conn)
    @cython.locals(extensions=list, limit=Py_ssize_t, frames=bytes, rsv=int)
    cdef bytes _frames(self, Engine engine)


@cython.locals(buf=list)
cdef _cork(BaseConnection conn, Py_ssize_t size)

cdef bint _over(BaseConnection conn, object close_after) except -1

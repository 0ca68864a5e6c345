# Types for the compiled build of listener.py (Cython pure-Python mode).

from rapidws.io.transport cimport BaseConnection


cdef class ListenerConnection(BaseConnection):
    cdef dict __dict__
    cdef object __weakref__
    cdef public object listener
    cdef public object handshake
    cdef public int side

    cpdef on_message(self, object message)
    cpdef on_frame(self, int opcode, bytes payload, bint fin, int rsv)

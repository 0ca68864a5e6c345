# Types for the compiled build of connection.py (Cython pure-Python mode).

from rapidws.io.transport cimport BaseConnection


cdef class Connection(BaseConnection):
    cdef dict __dict__
    cdef object __weakref__
    cdef public Py_ssize_t max_queue_high
    cdef public Py_ssize_t max_queue_low
    cdef public object _messages
    cdef public object _recv_waiter
    cdef public bint _paused_reading
    cdef public object _send_lock
    cdef public bint _fail_after_drain
    cdef public object _id
    cdef public object _logger
    cdef public object _halves
    cdef public bint _byte_stream

    cpdef on_message(self, object message)
    cpdef on_frame(self, int opcode, bytes payload, bint fin, int rsv)
    cdef object _new_waiter(self)
    cdef object _take_message(self)

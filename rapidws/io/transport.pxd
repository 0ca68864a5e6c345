# Types for the compiled build of transport.py (Cython pure-Python mode).

cimport cython

cdef Py_ssize_t _fd_write(int fd, bytes data)

@cython.locals(count=int, piece=bytes)
cdef Py_ssize_t _fd_writev(int fd, list pieces, Py_ssize_t start, Py_ssize_t stop)

cdef Py_ssize_t _fd_read(int fd, bytes buffer)

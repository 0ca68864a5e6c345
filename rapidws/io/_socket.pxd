# Socket calls for the compiled data path (declarations only; no module).

from posix.uio cimport iovec


cdef extern from "sys/socket.h" nogil:
    # Not read(2)/write(2): the socket calls skip the file layer's checks
    # and notifications, a few hundred nanoseconds a message.
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    enum: MSG_NOSIGNAL

# Types for the compiled build of engine.py (Cython pure-Python mode).

cimport cython

cdef bint _COMPILED

@cython.locals(
    n=Py_ssize_t,
    i=Py_ssize_t,
    source=bytes,
    src="const unsigned char *",
    result=bytearray,
    out="unsigned char *",
    key="const unsigned char *",
)
cdef bytes _mask(object data, bytes mask)

cdef object _PACK_H, _PACK_Q, _UNPACK_H, _UNPACK_Q, _Utf8Decoder, _MASKS

cdef class _MaskSource:
    cdef bytes _buf
    cdef Py_ssize_t _pos

    cpdef bytes next(self)


cdef bytes _truncate_reason(str reason)


cdef class Engine:
    cdef public bint client
    cdef public object _sink
    cdef public int state
    cdef public Py_ssize_t max_size
    cdef public Py_ssize_t max_fragment_size
    cdef public list _extensions
    cdef public int _rsv_allowed
    cdef public bytes _pending
    cdef public long long _frame_left
    cdef public int _opcode
    cdef public bint _fin
    cdef public int _rsv
    cdef public bytes _mask
    cdef public int _mask_offset
    cdef public list _ext_chunks
    cdef public int _msg_opcode
    cdef public long long _msg_size
    cdef public list _parts
    cdef public object _decoder
    cdef public int _out_opcode
    cdef public bint _out_raw
    cdef public int close_rcvd_code
    cdef public str close_rcvd_reason
    cdef public int close_sent_code
    cdef public str close_sent_reason
    cdef public object failure

    cdef Py_ssize_t _parse_header(self, bytes data, Py_ssize_t pos, Py_ssize_t end) except -2
    cdef _payload_chunk(self, bytes chunk)
    cdef _data_chunk(self, bytes chunk, bint frame_done)
    cdef _decode_text(self, bytes chunk, bint final)
    cdef _finish_message(self, object message)
    cdef _end_frame(self, bytes payload)
    cdef _receive_close(self, bytes payload)
    cdef _fail(self, object exc)
    cdef _send_control(self, int opcode, bytes payload)
    cdef _send_close_frame(self, int code, str reason)
    cdef _write_frame(self, int opcode, object payload, bint fin, int rsv)

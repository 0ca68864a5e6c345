# Types for the compiled build of engine.py (Cython pure-Python mode).

cimport cython

@cython.locals(result=bytes)
cdef bytes _mask(bytes data, Py_ssize_t start, Py_ssize_t n, bytes mask, Py_ssize_t offset)

cdef bytes _bytes_at(bytes data, Py_ssize_t start, Py_ssize_t n)

cdef const unsigned char *_at(bytes data, Py_ssize_t start)

@cython.locals(mask_bit=int, size=Py_ssize_t, out=bytes, p="unsigned char *", i=int)
cdef bytes _frame(int b0, Py_ssize_t n, bytes key, bytes payload)

@cython.locals(
    i=Py_ssize_t,
    words=Py_ssize_t,
    out="unsigned char *",
    key="const unsigned char *",
    word="unsigned long long",
    in_place=bint,
)
cdef void _mask_into(
    bytes dest, Py_ssize_t pos, const unsigned char *src, Py_ssize_t n, bytes mask,
    Py_ssize_t offset,
)

cdef Py_ssize_t _expanded(Py_ssize_t n)

cdef Py_ssize_t _DIRECT_READ_MIN

cdef bytes _UTF8_LOW, _UTF8_HIGH, _UTF8_NEXT, _ZERO_MASK

@cython.locals(
    i=Py_ssize_t,
    b="unsigned char",
    src="const unsigned char *",
    low="const unsigned char *",
    high="const unsigned char *",
    nxt="const unsigned char *",
)
cdef int _utf8_check(bytes data, Py_ssize_t start, Py_ssize_t n, int state)

cdef object _PACK_H, _PACK_Q, _Utf8Decoder, _MASKS, _DETACHED

cdef class _MaskSource:
    cdef bytes _buf
    cdef Py_ssize_t _pos

    cpdef bytes next(self)


cdef bytes _truncate_reason(str reason)


cdef class SinkBase:
    cpdef write(self, object data)
    cpdef on_message(self, object message)
    cpdef on_frame(self, int opcode, bytes payload, bint fin, int rsv)


cdef class Engine:
    cdef public bint client
    cdef public object _sink
    cdef public SinkBase _csink
    cdef public int state
    cdef public Py_ssize_t max_size
    cdef public Py_ssize_t max_fragment_size
    cdef public int only_opcode
    cdef public list _extensions
    cdef public int _rsv_allowed
    cdef public bint _frames
    cdef public bint _auto_pong
    cdef public bint _whole_frames
    cdef public bytes _pending
    cdef public bint _borrowed
    cdef public long long _frame_left
    cdef public int _opcode
    cdef public bint _fin
    cdef public int _rsv
    cdef public bytes _mask
    cdef public int _mask_offset
    cdef public bytearray _kept_frame
    cdef public int _msg_opcode
    cdef public long long _msg_size
    cdef public bytearray _msg_buf
    cdef public object _decoder
    cdef public int _out_opcode
    cdef public bint _out_raw
    cdef public int close_rcvd_code
    cdef public str close_rcvd_reason
    cdef public int close_sent_code
    cdef public str close_sent_reason
    cdef public object failure
    cdef public bytes after_close

    cpdef receive_borrowed(self, bytes data, Py_ssize_t end)
    @cython.locals(limit=Py_ssize_t)
    cpdef send_message(self, object data, bint raw=*, Py_ssize_t max_fragment_size=*)
    cdef _wrong_type(self)
    cdef _check_data_frame(self, int opcode)
    @cython.locals(n=Py_ssize_t, start=Py_ssize_t, rsv=int)
    cdef _send_fragmented(self, int opcode, bytes payload, bint raw, Py_ssize_t limit)
    cpdef send_data(self, int opcode, object payload, bint fin=*, bint raw=*)
    cpdef send_frame(self, int opcode, object payload, bint fin=*, int rsv=*)
    @cython.locals(pos=Py_ssize_t, take=Py_ssize_t)
    cdef _receive(self, bytes data, Py_ssize_t end)
    @cython.locals(
        b0=int, b1=int, length="long long", header_len=Py_ssize_t, masked=int, opcode=int,
        fin=int, rsv=int, i=Py_ssize_t,
    )
    cdef Py_ssize_t _parse_header(self, bytes data, Py_ssize_t pos, Py_ssize_t end) except -2
    cdef public object _frame_buf
    cdef public bytearray _early
    cdef public Py_ssize_t _frame_pos
    cdef public int _utf8_state
    cdef public bint _hold_pongs
    cdef public bytes _held_pong

    cpdef hold_pongs(self, bint hold)

    @cython.locals(have=Py_ssize_t, offset=int, kept=bytearray)
    cdef _payload_chunk(self, bytes data, Py_ssize_t start, Py_ssize_t n)
    @cython.locals(buf=bytes, early=bytearray, size=Py_ssize_t)
    cdef _gather(self, bytes data, Py_ssize_t start, Py_ssize_t n, bint frame_done)
    @cython.locals(pos=Py_ssize_t)
    cdef _gather_piece(self, bytes buf, const unsigned char *src, Py_ssize_t n)
    cdef _gathered(self, bytes buf)
    cpdef Py_ssize_t direct_room(self)
    cpdef direct_view(self)
    cdef unsigned char *direct_address(self)
    @cython.locals(buf=bytes)
    cpdef receive_direct(self, Py_ssize_t n)
    @cython.locals(buf=bytearray, final=bint)
    cdef _data_chunk(self, bytes chunk, bint frame_done, bint checked)
    cdef _check_text(self, bytes chunk)
    cdef _finish_message(self, object message)
    cdef _end_frame(self, bytes payload, bint checked)
    cdef _data_frame(self, bytes payload, bint checked)
    cdef bint _text_complete(self) except -1
    cdef _receive_close(self, bytes payload)
    cdef _keep_after_close(self, bytes data, Py_ssize_t pos, Py_ssize_t end)
    cdef _fail(self, object exc)
    cdef _drop_input(self)
    cdef _send_control(self, int opcode, bytes payload)
    cdef _send_close_frame(self, int code, str reason)
    @cython.locals(b0=int, n=Py_ssize_t, key=bytes, rest=bytes, header=bytes)
    cdef _write_frame(self, int opcode, object payload, bint fin, int rsv)

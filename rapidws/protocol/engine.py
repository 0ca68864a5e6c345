"""The sans-I/O WebSocket engine: RFC 6455 after the opening handshake.

Bytes go in through :meth:`Engine.receive_data`; what the peer sent comes
out as calls on a :class:`Sink` (``on_message``, ``on_ping``...), and the
bytes to send to the peer as ``sink.write(data)``.  There is no I/O, no
clock and no asyncio here: the layers above own time and sockets.

The parser consumes payload bytes as they arrive: a frame is never buffered
whole to be unmasked and validated later.  Only the 2 to 14 bytes of an
incomplete header are kept between calls.  So text is validated as UTF-8
while it arrives (a peer sending invalid UTF-8 is failed at the first bad
byte, even mid-frame) and ``max_size`` is checked against the header before
any payload is stored.

Closing and failing (RFC 6455 5.5.1, 7.1), all of it, as :data:`CLOSE_RULES`
has it (``tests/protocol/test_close_rules.py`` runs the engine through every
row).  States: OPEN; CLOSING, we sent a close frame and wait for the peer's;
CLOSED, the closing handshake is over or the connection failed.  "Server
half-closes" is ``sink.write_eof()``: RFC 6455 7.1.1, the server closes TCP
first.

=========  =====================  =========  ==========================================
state      event                  new state  what the engine does
=========  =====================  =========  ==========================================
OPEN       peer's close frame     CLOSED     echoes its code; ``on_close``; server half-closes
OPEN       ``send_close``         CLOSING    sends the close frame
OPEN       peer's protocol error  CLOSED     ``on_fail``; sends a close frame with the error's
                                             code (now, or when the sink flushes it);
                                             server half-closes; input stops
OPEN       ``fail`` (local)       CLOSED     sends a close frame with the code; server
                                             half-closes; input stops, the rest of the
                                             read being handled too
OPEN       data frame             OPEN       delivered
OPEN       end of stream          CLOSED     nothing (the peer's code is 1006)
CLOSING    peer's close frame     CLOSED     ``on_close``; server half-closes
CLOSING    ``send_close``         CLOSING    raises ``InvalidState``
CLOSING    peer's protocol error  CLOSED     ``on_fail`` (no second close frame); server
                                             half-closes; input stops
CLOSING    ``fail`` (local)       CLOSED     no second close frame; server half-closes;
                                             input stops
CLOSING    data frame             CLOSING    delivered: the peer may have sent it before
                                             it saw our close frame
CLOSING    end of stream          CLOSED     nothing
CLOSED     anything received      CLOSED     ignored (``after_close`` keeps what followed
                                             the peer's close frame in that read)
CLOSED     ``send_close``         CLOSED     raises ``InvalidState``
CLOSED     ``fail`` (local)       CLOSED     nothing
=========  =====================  =========  ==========================================

So after a failure, the peer's or a local one (a callback or a handler that
raises fails the connection with 1011), the application is given nothing
more; after a local close it still gets what the peer sent before its close
frame.  Both APIs agree: they are this engine.
"""

from __future__ import annotations

import codecs
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .. import _cython_shim as cython

    _uninitialized_bytes: Callable[[Any, int], bytes]
    memcpy: Callable[[Any, Any, int], Any]
    rapidws_xor_words: Callable[[Any, Any, int, int], None]
    rapidws_xor_words_inplace: Callable[[Any, int, int], None]
    _writable_view: Callable[[Any, int, int], memoryview]
    PyBUF_WRITE: int
    rapidws_ascii_prefix: Callable[[Any, int], int]
else:
    try:
        import cython
        from cython.cimports.cpython.buffer import PyBUF_WRITE
        from cython.cimports.cpython.bytes import (
            PyBytes_FromStringAndSize as _uninitialized_bytes,  # compiled build only
        )
        from cython.cimports.cpython.memoryview import (
            PyMemoryView_FromMemory as _writable_view,  # compiled build only
        )
        from cython.cimports.libc.string import memcpy
        from cython.cimports.rapidws.protocol._byteloops import (
            rapidws_ascii_prefix,
            rapidws_xor_words,
            rapidws_xor_words_inplace,
        )
    except (ImportError, AttributeError):  # the pure-Python build, Cython installed or not
        from .. import _cython_shim as cython

from ..exceptions import (
    ConnectionClosed,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
    closed_exception,
)
from .extensions.base import Extension
from .frames import apply_mask as _apply_mask_ints
from .frames import is_valid_close_code

__all__ = [
    "CLIENT",
    "CLOSED",
    "CLOSING",
    "DIRECT_READ_MIN",
    "OPEN",
    "SERVER",
    "Engine",
    "Sink",
    "SinkBase",
    "server_frames",
]

# Roles.
SERVER = 0
CLIENT = 1

# States.
OPEN = 1
CLOSING = 2  # we sent a close frame and wait for the peer's
CLOSED = 3  # the close handshake is over, or the connection failed

#: The table of the module docstring, as data: (state, event) -> (new state,
#: what the engine writes, whether the server half-closes, what the sink is
#: told).  ``written``: "close" (a close frame), "echo" (a close frame with the
#: peer's code), "" (nothing); ``error``: the call raises InvalidState.
CLOSE_RULES: dict[tuple[int, str], tuple[int, str, bool, str]] = {
    (OPEN, "close frame"): (CLOSED, "echo", True, "on_close"),
    (OPEN, "send_close"): (CLOSING, "close", False, ""),
    (OPEN, "protocol error"): (CLOSED, "close", True, "on_fail"),
    (OPEN, "fail"): (CLOSED, "close", True, ""),
    (OPEN, "data frame"): (OPEN, "", False, "on_message"),
    (OPEN, "end of stream"): (CLOSED, "", False, ""),
    (CLOSING, "close frame"): (CLOSED, "", True, "on_close"),
    (CLOSING, "send_close"): (CLOSING, "error", False, ""),
    (CLOSING, "protocol error"): (CLOSED, "", True, "on_fail"),
    (CLOSING, "fail"): (CLOSED, "", True, ""),
    (CLOSING, "data frame"): (CLOSING, "", False, "on_message"),
    (CLOSING, "end of stream"): (CLOSED, "", False, ""),
    (CLOSED, "close frame"): (CLOSED, "", False, ""),
    (CLOSED, "data frame"): (CLOSED, "", False, ""),
    (CLOSED, "protocol error"): (CLOSED, "", False, ""),
    (CLOSED, "send_close"): (CLOSED, "error", False, ""),
    (CLOSED, "fail"): (CLOSED, "", False, ""),
    (CLOSED, "end of stream"): (CLOSED, "", False, ""),
}

# Opcodes, as plain ints for the hot path.
OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_PACK_H = struct.Struct("!BBH").pack
_PACK_Q = struct.Struct("!BBQ").pack

#: Payloads at least this long are written apart from their header instead
#: of being copied behind it.
_WRITE_APART = 16384

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def _mask(data: bytes, start: int, n: int, mask: bytes, offset: int) -> bytes:
    """XOR ``data[start:start + n]`` with the 4-byte ``mask`` (RFC 6455 5.3).

    ``offset`` is the position in the mask of the first byte, for payloads
    that arrive in pieces.  The compiled build XORs a vector at a time
    (``_byteloops.h``) into a new ``bytes`` object: no slice, no
    intermediate buffer.  Pure Python XORs two big integers.
    """
    if not cython.compiled:
        chunk = data if start == 0 and n == len(data) else data[start : start + n]
        if offset:
            mask = mask[offset:] + mask[:offset]
        return _apply_mask_ints(chunk, mask)
    # Not zeroed: every byte is written next.  A new object for n > 0
    # (the empty one is shared, and not written).
    result = _uninitialized_bytes(cython.NULL, n)
    _mask_into(result, 0, _at(data, start), n, mask, offset)
    return result


def _bytes_at(data: bytes, start: int, n: int) -> bytes:
    """``data[start:start + n]``, in range; compiled, a copy with no slice object."""
    if not cython.compiled:
        return data[start : start + n]
    return _uninitialized_bytes(cython.cast(cython.p_const_char, data) + start, n)


def _frame(b0: int, n: int, key: bytes | None, payload: bytes | None) -> bytes:
    """A frame header for ``n`` bytes of payload, with ``key`` (client side), then ``payload``.

    ``payload`` (``n`` bytes, or None for the header alone) is masked with
    ``key`` when there is one.  Compiled, it is one new object written in
    place: no tuple, struct call or concatenation.
    """
    mask_bit = 0 if key is None else 0x80
    if not cython.compiled:
        if n < 126:
            header = bytes((b0, mask_bit | n))
        elif n < 65536:
            header = _PACK_H(b0, mask_bit | 126, n)
        else:
            header = _PACK_Q(b0, mask_bit | 127, n)
        if key is not None:
            header += key
            if payload is not None:
                payload = _mask(payload, 0, n, key, 0)
        return header if payload is None else header + payload
    size = 2 if n < 126 else 4 if n < 65536 else 10
    if key is not None:
        size += 4
    out = _uninitialized_bytes(cython.NULL, size + (0 if payload is None else n))
    p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, out))
    p[0] = b0
    if n < 126:
        p[1] = mask_bit | n
    elif n < 65536:
        p[1] = mask_bit | 126
        p[2] = n >> 8
        p[3] = n & 0xFF
    else:
        p[1] = mask_bit | 127
        for i in range(8):
            p[2 + i] = (n >> (56 - 8 * i)) & 0xFF
    if key is not None:
        memcpy(p + size - 4, cython.cast(cython.p_const_char, key), 4)
        if payload is not None:
            _mask_into(out, size, _at(payload, 0), n, key, 0)
    elif payload is not None:
        memcpy(p + size, cython.cast(cython.p_const_char, payload), n)
    return out


#: A data frame with at least this much payload still to come is read straight
#: into its buffer (see :meth:`Engine.direct_room`).
_DIRECT_READ_MIN = 65536
DIRECT_READ_MIN = _DIRECT_READ_MIN  # the public twin of the C constant


def server_frames(opcode: int, payload: bytes, rsv: int, limit: int) -> bytes:
    """The unmasked frames of one whole message, as a server writes them: one ``bytes``.

    ``payload`` is the message as the extensions encoded it, with their
    ``rsv`` bits (first frame only, RFC 7692 6.1); ``limit`` (0: none) bounds
    each frame's payload, as ``max_fragment_size`` does.  A server's frames
    are not masked (RFC 6455 5.1), so these bytes serve every connection
    with the same settings: see :meth:`Engine.send_encoded` and
    :func:`rapidws.broadcast`.
    """
    n = len(payload)
    if limit <= 0 or n <= limit:
        return _frame(0x80 | rsv | opcode, n, None, payload)
    pieces = []
    b0 = rsv | opcode
    start = 0
    while n - start > limit:
        pieces.append(_frame(b0, limit, None, _bytes_at(payload, start, limit)))
        b0 = OP_CONT
        start += limit
    pieces.append(_frame(0x80 | OP_CONT, n - start, None, _bytes_at(payload, start, n - start)))
    return b"".join(pieces)


def _at(data: bytes, start: int) -> Any:
    """Compiled build only: the address of ``data[start]``."""
    return cython.cast(cython.p_const_uchar, cython.cast(cython.p_const_char, data)) + start


def _mask_into(dest: bytes, pos: int, src: Any, n: int, mask: bytes, offset: int) -> None:
    """Compiled build only: write the ``n`` bytes at ``src`` XOR ``mask`` into ``dest`` at ``pos``.

    ``dest`` is a ``bytes`` object this module just created and nothing else
    has seen yet.  An all-zero mask copies.  ``src`` may be ``dest``'s own
    bytes at ``pos`` (a frame read straight into its buffer): unmasked in place.
    """
    out = cython.cast(cython.p_uchar, cython.cast(cython.p_char, dest)) + pos
    in_place = cython.cast(cython.p_const_uchar, out) == src
    key = cython.cast(cython.p_const_uchar, cython.cast(cython.p_const_char, mask))
    pattern = cython.declare(cython.uchar[8])
    for i in range(8):
        pattern[i] = key[(offset + i) & 3]
    word = cython.cast(cython.pointer(cython.ulonglong), pattern)[0]
    if word == 0:
        if not in_place:
            memcpy(out, src, n)
        return
    words = n >> 3
    if in_place:
        rapidws_xor_words_inplace(out, words, word)  # rapidws_xor_words' pointers are restrict
    else:
        rapidws_xor_words(out, src, words, word)
    for i in range(words << 3, n):
        out[i] = src[i] ^ pattern[i & 7]


# UTF-8 (RFC 3629) as a state machine over bytes, for the compiled build:
# state 0 is "between characters"; the others expect a continuation byte in
# [_UTF8_LOW[state], _UTF8_HIGH[state]] and move to _UTF8_NEXT[state].
# 1: one more continuation byte, 2: two, 3: three; 4: after E0 (no overlong
# form), 5: after ED (no surrogate), 6: after F0 (no overlong), 7: after F4
# (nothing past U+10FFFF).
_UTF8_LOW = b"\x00\x80\x80\x80\xa0\x80\x90\x80"
_UTF8_HIGH = b"\x00\xbf\xbf\xbf\xbf\x9f\xbf\x8f"
_UTF8_NEXT = b"\x00\x00\x01\x02\x01\x01\x02\x02"


def _utf8_check(data: bytes, start: int, n: int, state: int) -> int:
    """Compiled build only: run ``data[start:start + n]`` through the UTF-8 state machine.

    Return the state after it, or -1 at the first byte no valid UTF-8 text
    can contain (so the connection fails at once, mid-frame).  Runs of ASCII
    are skipped 32 bytes at a time (``_byteloops.h``).
    """
    src = _at(data, start)
    low = cython.cast(cython.p_const_uchar, cython.cast(cython.p_const_char, _UTF8_LOW))
    high = cython.cast(cython.p_const_uchar, cython.cast(cython.p_const_char, _UTF8_HIGH))
    nxt = cython.cast(cython.p_const_uchar, cython.cast(cython.p_const_char, _UTF8_NEXT))
    i = 0
    while i < n:
        if state == 0:
            i += rapidws_ascii_prefix(src + i, n - i)
            if i >= n:
                break
            b = src[i]
            i += 1
            if b < 0x80:
                continue
            if 0xC2 <= b <= 0xDF:
                state = 1
            elif b == 0xE0:
                state = 4
            elif b == 0xED:
                state = 5
            elif 0xE1 <= b <= 0xEF:
                state = 2
            elif b == 0xF0:
                state = 6
            elif 0xF1 <= b <= 0xF3:
                state = 3
            elif b == 0xF4:
                state = 7
            else:
                return -1
        else:
            b = src[i]
            i += 1
            if b < low[state] or b > high[state]:
                return -1
            state = nxt[state]
    return state


_ZERO_MASK = bytes(4)


def _expanded(n: int) -> int:
    """The most an extension's encoding of ``n`` bytes may take on the wire.

    ``max_size`` bounds a message's decoded size, checked while decoding.
    Before that, the frame header is checked against this: deflate stores
    what it cannot compress, 5 bytes per block of a few KiB at a small
    ``mem_level``, so a compressed message may be a little larger than the
    message itself (zlib's ``deflateBound`` for such settings).
    """
    return n + (n >> 3) + (n >> 6) + 64


class Sink(Protocol):
    """What the engine calls; implemented by each I/O layer or API."""

    def write(self, data: bytes) -> None:
        """Send ``data`` to the peer."""

    def write_eof(self) -> None:
        """Half-close the connection after what was written (server side)."""

    def on_message(self, message: str | bytes) -> None:
        """A whole message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_ping(self, payload: bytes) -> None:
        """A ping arrived; the engine has already answered it."""

    def on_pong(self, payload: bytes) -> None:
        """A pong arrived."""

    def on_close(self, code: int, reason: str) -> None:
        """The peer's close frame arrived (``code`` 1005 if it had none)."""

    def on_fail(self, exc: ProtocolError) -> bool | None:
        """The peer broke the protocol; nothing more will be received.

        Return a true value to send the close frame later, by calling
        :meth:`Engine.flush_failure`; otherwise the engine sends it at once.
        """

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        """With ``frames=True`` only: a frame arrived, data or control (after the
        engine's own answer to a ping or a close); ``rsv`` holds its RSV bits."""


class SinkBase:
    """An optional base class for sinks.

    The compiled engine calls the ``write`` and ``on_message`` of a sink
    derived from it as C methods, not through Python attribute lookups;
    any other object with :class:`Sink`'s methods works the same, a little
    slower.  The transport layer's connections derive from it.
    """

    __slots__ = ()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the peer."""
        raise NotImplementedError

    def on_message(self, message: str | bytes) -> None:
        """A whole message arrived: ``str`` for text, ``bytes`` for binary."""
        raise NotImplementedError

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        """With ``frames=True``: a frame arrived (see :meth:`Sink.on_frame`)."""
        raise NotImplementedError


class _DetachedSink:
    """The sink of a released engine: writes and events go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_ping(self, payload: bytes) -> None:
        pass

    def on_pong(self, payload: bytes) -> None:
        pass

    def on_close(self, code: int, reason: str) -> None:
        pass

    def on_fail(self, exc: ProtocolError) -> bool | None:
        return None

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        pass


_DETACHED = _DetachedSink()


class _MaskSource:
    """Masking keys drawn from ``os.urandom`` a batch at a time."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def next(self) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = os.urandom(1024)
            pos = 0
        self._pos = pos + 4
        return self._buf[pos : pos + 4]


_MASKS = _MaskSource()


def _truncate_reason(reason: str) -> bytes:
    """Encode a close reason, cut to fit a 125-byte control frame."""
    data = reason.encode("utf-8")
    if len(data) > 123:
        data = data[:123].decode("utf-8", "ignore").encode("utf-8")
    return data


class Engine:
    """One side of an established WebSocket connection.

    ``side`` is :data:`SERVER` or :data:`CLIENT`.  ``max_size`` bounds a
    frame and a message in bytes (``None``: no bound).  ``extensions`` are
    the ones negotiated in the handshake, applied in order on the way out
    and in reverse on the way in.  ``max_fragment_size`` splits outgoing
    messages into frames of at most that many payload bytes.
    """

    __slots__ = (
        "_auto_pong",
        "_borrowed",
        "_csink",
        "_decoder",
        "_early",
        "_extensions",
        "_fin",
        "_frame_buf",
        "_frame_left",
        "_frame_pos",
        "_frames",
        "_held_pong",
        "_hold_pongs",
        "_kept_frame",
        "_mask",
        "_mask_offset",
        "_msg_buf",
        "_msg_opcode",
        "_msg_size",
        "_opcode",
        "_out_opcode",
        "_out_raw",
        "_pending",
        "_rsv",
        "_rsv_allowed",
        "_sink",
        "_utf8_state",
        "_whole_frames",
        "after_close",
        "client",
        "close_rcvd_code",
        "close_rcvd_reason",
        "close_sent_code",
        "close_sent_reason",
        "failure",
        "max_fragment_size",
        "max_size",
        "only_opcode",
        "state",
    )

    def __init__(
        self,
        side: int,
        sink: Sink,
        *,
        max_size: int | None = 2**20,
        extensions: list[Extension] | None = None,
        max_fragment_size: int | None = None,
        mode: str | None = None,
        frames: bool = False,
        auto_pong: bool = True,
    ) -> None:
        if side not in (SERVER, CLIENT):
            raise ValueError("side must be SERVER or CLIENT")
        if mode not in (None, "text", "binary"):
            raise ValueError(f"mode must be None, 'text' or 'binary', not {mode!r}")
        #: OP_TEXT or OP_BINARY for a text-only or binary-only connection, else 0.
        self.only_opcode = OP_TEXT if mode == "text" else OP_BINARY if mode == "binary" else 0
        self.client = side == CLIENT
        self._sink = sink
        # The same sink when its write/on_message can be called directly.
        self._csink: SinkBase | None = sink if isinstance(sink, SinkBase) else None
        self.state = OPEN
        self.max_size = -1 if max_size is None else max_size
        self.max_fragment_size = 0 if max_fragment_size is None else max_fragment_size
        self._extensions = list(extensions) if extensions else []
        rsv_allowed = 0
        for ext in self._extensions:
            rsv_allowed |= ext.rsv_mask
        self._rsv_allowed = rsv_allowed
        # frames=True: data frames go up one by one (sink.on_frame), not as messages.
        self._frames = frames
        # Pings answered here (RFC 6455 5.5.2); False: the application answers.
        self._auto_pong = auto_pong
        # Data frames are gathered whole before they are handled (see _end_frame).
        self._whole_frames = frames or bool(self._extensions)
        # Parser state.
        self._pending = b""  # an incomplete header
        self._borrowed = False  # the data being parsed is a lent buffer
        self._frame_left = -1  # payload bytes still to come; -1: between frames
        self._opcode = 0
        self._fin = True
        self._rsv = 0
        self._mask = b""
        self._mask_offset = 0
        # A frame's payload gathered whole for extensions or control handling.
        self._kept_frame: bytearray | None = None
        self._frame_buf: bytes | None = None  # compiled build: a frame gathered whole
        # Compiled build: the first bytes of a large frame, masked, until enough
        # of it has come to allocate its buffer.
        self._early: bytearray | None = None
        self._frame_pos = 0
        self._utf8_state = 0
        # Message reassembly.
        self._msg_opcode = 0  # TEXT or BINARY while a message is open, else 0
        self._msg_size = 0
        # The message's bytes so far, once it spans chunks (text: UTF-8, checked as it comes).
        self._msg_buf: bytearray | None = None
        self._decoder: Any = None  # pure build: an incremental UTF-8 decoder, made when needed
        # Sending.
        self._out_opcode = 0  # opcode of an outgoing fragmented message
        self._out_raw = False  # that message bypasses extensions
        # Pongs held while the peer does not read what we write (see hold_pongs).
        self._hold_pongs = False
        self._held_pong: bytes | None = None
        # Close handshake.
        self.close_rcvd_code = -1
        self.close_rcvd_reason = ""
        self.close_sent_code = -1
        self.close_sent_reason = ""
        self.failure: ProtocolError | None = None
        #: The bytes that came after the peer's close frame, in the same read:
        #: no longer WebSocket, they belong to whatever uses the stream next
        #: (see ``Connection.detach``).
        self.after_close = b""

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer."""
        if type(data) is not bytes:
            data = bytes(data)
        self._receive(data, len(data))

    def receive_borrowed(self, data: bytes, end: int) -> None:
        """Feed ``data[:end]``, a read buffer lent for this call only.

        Nothing keeps a reference to ``data``: what outlives the call
        (message payloads, an incomplete header) is copied out of it.
        """
        self._borrowed = True
        try:
            self._receive(data, end)
        finally:
            self._borrowed = False

    def _receive(self, data: bytes, end: int) -> None:
        if self.state == CLOSED or self.failure is not None:
            return  # RFC 6455 5.5.1: nothing counts after the peer's close
        if self._pending:
            data = self._pending + data[:end]
            end = len(data)
            self._pending = b""
        pos = 0
        try:
            while pos < end:
                if self._frame_left < 0:
                    pos = self._parse_header(data, pos, end)
                    if pos < 0:
                        break
                    if self._frame_left == 0:
                        self._payload_chunk(data, pos, 0)
                        if self.state == CLOSED:
                            self._keep_after_close(data, pos, end)
                            return
                    continue
                take = end - pos
                if take > self._frame_left:
                    take = self._frame_left
                self._frame_left -= take
                self._payload_chunk(data, pos, take)
                pos += take
                if self.state == CLOSED:
                    self._keep_after_close(data, pos, end)
                    return
        except ProtocolError as exc:
            self._fail(exc)

    def _keep_after_close(self, data: bytes, pos: int, end: int) -> None:
        """Keep what followed the peer's close frame in ``data`` (see :attr:`after_close`)."""
        if pos < end and self.close_rcvd_code != -1:
            self.after_close = data[pos:end]

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        self._pending = b""
        if self.state != CLOSED:
            self.state = CLOSED

    def closed_error(self) -> ConnectionClosed:
        """A new :class:`~rapidws.exceptions.ConnectionClosed` for the close frames
        received and sent so far (1006 when none came, RFC 6455 7.1.5)."""
        rcvd = self.close_rcvd_code
        sent = self.close_sent_code
        return closed_exception(
            1006 if rcvd == -1 else rcvd,
            self.close_rcvd_reason,
            None if sent == -1 else sent,
            None if sent == -1 else self.close_sent_reason,
        )

    def release(self) -> None:
        """The connection is gone: call the sink no more and drop buffers.

        The close codes and reasons stay readable.  Dropping the sink also
        breaks the engine-sink reference cycle, so both are freed at once
        rather than by the cyclic garbage collector.
        """
        self.receive_eof()
        self._sink = _DETACHED
        self._csink = None
        self._frame_buf = None
        self._early = None
        self._frame_left = -1
        self._decoder = None
        self._msg_buf = None
        self._kept_frame = None

    def _parse_header(self, data: bytes, pos: int, end: int) -> int:
        """Parse a frame header at ``pos``; return the payload's start or -1."""
        if end - pos < 2:
            self._pending = data[pos:end]
            return -1
        b0 = data[pos]
        b1 = data[pos + 1]
        length = b1 & 0x7F
        header_len = 2
        if length == 126:
            header_len = 4
        elif length == 127:
            header_len = 10
        masked = b1 & 0x80
        if masked:
            header_len += 4
        if end - pos < header_len:
            self._pending = data[pos:end]
            return -1
        if length == 126:
            length = (data[pos + 2] << 8) | data[pos + 3]
        elif length == 127:
            if data[pos + 2] & 0x80:
                raise ProtocolError("frame length with the most significant bit set")
            length = 0
            for i in range(pos + 2, pos + 10):
                length = (length << 8) | data[i]
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        rsv = b0 & 0x70
        # RFC 6455 5.1: a server fails unmasked frames, a client masked ones.
        if self.client:
            if masked:
                raise ProtocolError("masked frame from server")
        elif not masked:
            raise ProtocolError("unmasked frame from client")
        if opcode >= 8:
            if opcode > OP_PONG:
                raise ProtocolError(f"reserved opcode {opcode}")
            if not fin:
                raise ProtocolError("fragmented control frame")
            if length > 125:
                raise ProtocolError("control frame payload over 125 bytes")
            if rsv:
                raise ProtocolError("RSV bits set on a control frame")
        else:
            if opcode > OP_BINARY:
                raise ProtocolError(f"reserved opcode {opcode}")
            if rsv & ~self._rsv_allowed:
                raise ProtocolError("RSV bits set without a negotiated extension")
            if opcode == OP_CONT:
                if self._msg_opcode == 0:
                    raise ProtocolError("continuation frame without a message to continue")
            elif self._msg_opcode != 0:
                raise ProtocolError("data frame inside a fragmented message")
            if (
                self.max_size >= 0
                and length > self.max_size - self._msg_size
                and (not self._extensions or length > _expanded(self.max_size - self._msg_size))
            ):
                raise PayloadTooBig(
                    f"message over {self.max_size} bytes"
                    if self._msg_size
                    else f"frame of {length} bytes over {self.max_size}"
                )
            if opcode != OP_CONT:
                if self.only_opcode and opcode != self.only_opcode:
                    # RFC 6455 7.4.1: 1003 "indicates that an endpoint is terminating
                    # the connection because it has received a type of data it cannot
                    # accept (e.g., an endpoint that understands only text data MAY
                    # send this if it receives a binary message)."
                    raise ProtocolError(
                        "binary message on a text-only connection"
                        if opcode == OP_BINARY
                        else "text message on a binary-only connection",
                        1003,
                    )
                self._msg_opcode = opcode
        self._opcode = opcode
        self._fin = bool(fin)
        self._rsv = rsv
        self._mask = _bytes_at(data, pos + header_len - 4, 4) if masked else b""
        self._mask_offset = 0
        self._frame_left = length
        return pos + header_len

    def _payload_chunk(self, data: bytes, start: int, n: int) -> None:
        """Handle ``data[start:start + n]``, payload of the current frame, as it arrives."""
        frame_done = self._frame_left == 0
        if (
            cython.compiled
            and self._opcode < 8
            and (self._frame_buf is not None or self._early is not None or not frame_done)
        ):
            if self._frame_buf is None:
                have = n if self._early is None else len(self._early) + n
                if have * 16 < have + self._frame_left and have + self._frame_left > 65536:
                    # Too little of a large frame to allocate its buffer yet.
                    piece = memoryview(data)[start : start + n]
                    if self._early is None:
                        self._early = bytearray(piece)
                    else:
                        self._early += piece
                    return
            self._gather(data, start, n, frame_done)
            return
        if self._mask:
            offset = self._mask_offset
            self._mask_offset = (offset + n) & 3
            chunk = _mask(data, start, n, self._mask, offset)
        elif n == len(data):
            # All of ``data``, whose slice would be ``data`` itself: a lent
            # buffer is about to be reused, so it is copied.
            chunk = bytes(memoryview(data)) if self._borrowed else data
        else:
            chunk = data[start : start + n]
        if frame_done:
            self._frame_left = -1
        if self._opcode >= 8 or self._whole_frames:
            # Control frames, frames for extensions and the frame API's are handled whole.
            # One buffer per frame, not a piece per read: a peer trickling a
            # frame a byte at a time costs its bytes, not an object each.
            kept = self._kept_frame
            if not frame_done:
                if kept is None:
                    self._kept_frame = bytearray(chunk)
                else:
                    kept += chunk
                return
            if kept is not None:
                self._kept_frame = None
                kept += chunk
                chunk = bytes(kept)
            self._end_frame(chunk, False)
            return
        self._data_chunk(chunk, frame_done, False)

    def _gather(self, data: bytes, start: int, n: int, frame_done: bool) -> None:
        """Compiled build: a data frame spanning reads goes into one buffer of its size.

        No list of pieces and no join: one allocation and one pass (unmask
        and copy) per byte.  The buffer is allocated once the frame is known
        to be small or a sixteenth of it has arrived, so a peer announcing a
        large frame and sending little does not get its size allocated; the
        bytes before that wait in ``_early`` (see :meth:`_payload_chunk`).
        Text is still validated as it arrives.
        """
        buf = self._frame_buf
        if buf is None:
            early = self._early
            size = 0 if early is None else len(early)
            buf = self._frame_buf = _uninitialized_bytes(cython.NULL, size + n + self._frame_left)
            self._frame_pos = 0
            if early is not None:
                self._early = None
                # Unmasked from where they wait: no copy of them as bytes.
                self._gather_piece(
                    buf, cython.cast(cython.p_const_uchar, cython.cast(cython.p_char, early)), size
                )
        self._gather_piece(buf, _at(data, start), n)
        if frame_done:
            self._gathered(buf)

    def _gathered(self, buf: bytes) -> None:
        """The frame whose buffer is ``buf`` is whole: up it goes."""
        self._frame_left = -1
        self._frame_buf = None
        if self._whole_frames:
            self._end_frame(buf, not self._extensions)
        else:
            self._data_chunk(buf, True, True)

    def direct_room(self) -> int:
        """Compiled build: how many bytes the next read may put straight into the
        buffer of the data frame being gathered; 0 when it reads as usual.

        A frame with :data:`DIRECT_READ_MIN` bytes or more still to come,
        whose buffer is allocated (see :meth:`_gather`), is read into that
        buffer and unmasked there: no copy out of the read buffer, and as
        much per read as the kernel holds (a 1 MiB frame takes one or two
        reads, not four of the shared 256 KiB buffer, and as few turns of the
        event loop).  The room ends with the frame: the next frame's bytes
        are read as usual.
        """
        if self._frame_buf is None or self._frame_left < _DIRECT_READ_MIN:
            return 0
        return self._frame_left

    def direct_view(self) -> memoryview:
        """Compiled build: a writable view of the :meth:`direct_room` bytes, for ``recv_into``.

        Valid until :meth:`receive_direct`; the engine keeps the buffer alive.
        """
        return _writable_view(
            cython.cast(cython.p_char, self._frame_buf) + self._frame_pos,
            self._frame_left,
            PyBUF_WRITE,
        )

    def direct_address(self) -> Any:
        """Compiled build: the address :meth:`direct_view` covers, for ``recv(2)``."""
        return cython.cast(cython.p_uchar, cython.cast(cython.p_char, self._frame_buf)) + (
            self._frame_pos
        )

    def receive_direct(self, n: int) -> None:
        """Compiled build: ``n`` bytes of the current frame were read to :meth:`direct_view`.

        They are unmasked in place and checked as :meth:`receive_data` would.
        """
        buf = self._frame_buf
        if buf is None or n > self._frame_left:
            raise InvalidState("receive_direct() without direct_room()")
        try:
            self._frame_left -= n
            self._gather_piece(buf, _at(buf, self._frame_pos), n)  # in place
            if self._frame_left == 0:
                self._gathered(buf)
        except ProtocolError as exc:
            self._fail(exc)

    def _gather_piece(self, buf: bytes, src: Any, n: int) -> None:
        """Unmask ``n`` bytes at ``src`` into the frame's buffer; check text as it comes."""
        pos = self._frame_pos
        _mask_into(buf, pos, src, n, self._mask or _ZERO_MASK, self._mask_offset)
        self._mask_offset = (self._mask_offset + n) & 3
        self._frame_pos = pos + n
        if self._msg_opcode == OP_TEXT and not self._extensions:
            # The state carries over from the message's previous frames.
            self._utf8_state = _utf8_check(buf, pos, n, self._utf8_state)
            if self._utf8_state < 0:
                raise ProtocolError("invalid UTF-8 in text message", 1007)

    def _data_chunk(self, chunk: bytes, frame_done: bool, checked: bool) -> None:
        """Add payload bytes (after extensions) to the current message.

        A message that is all in ``chunk`` goes up as it is.  The pieces of
        any other (fragments, RFC 6455 5.4, or a frame spanning reads) go
        into one buffer, so reassembly costs what the message weighs, not
        an object per fragment.  Text is checked as UTF-8 as it comes
        (``checked``: already done, see :meth:`_gather_piece`), so a bad
        byte fails the connection at once, mid-message.
        """
        final = frame_done and self._fin
        buf = self._msg_buf
        if final and buf is None:
            if self._msg_opcode == OP_TEXT:
                try:
                    text = chunk.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("invalid UTF-8 in text message", 1007) from None
                self._finish_message(text)
            else:
                self._finish_message(chunk)
            return
        self._msg_size += len(chunk)
        if self._msg_opcode == OP_TEXT and not checked:
            self._check_text(chunk)
        if chunk:
            if buf is None:
                buf = self._msg_buf = bytearray(chunk)
            else:
                buf += chunk
        if not final:
            return
        self._msg_buf = None
        assert buf is not None  # final, and not all in chunk
        if self._msg_opcode == OP_TEXT:
            try:
                # Also fails a character left incomplete at the end.
                message: str | bytes = buf.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from None
        else:
            message = bytes(buf)
        self._finish_message(message)

    def _check_text(self, chunk: bytes) -> None:
        """Check a piece of a text message as UTF-8, failing at the first bad byte."""
        if not cython.compiled:
            if self._decoder is None:
                self._decoder = _Utf8Decoder()
            try:
                self._decoder.decode(chunk, False)
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from None
            pending = self._decoder.getstate()[0]
            # CPython holds ED A0..BF back though no surrogate can follow.
            if len(pending) > 1 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise ProtocolError("invalid UTF-8 in text message", 1007)
            return
        self._utf8_state = _utf8_check(chunk, 0, len(chunk), self._utf8_state)
        if self._utf8_state < 0:
            raise ProtocolError("invalid UTF-8 in text message", 1007)

    def _finish_message(self, message: str | bytes) -> None:
        self._msg_opcode = 0
        self._msg_size = 0
        # A whole valid text leaves the UTF-8 check (_utf8_state or _decoder)
        # between characters: nothing to reset.
        csink = self._csink
        if csink is not None:
            csink.on_message(message)
        else:
            self._sink.on_message(message)

    def _end_frame(self, payload: bytes, checked: bool) -> None:
        """A whole frame kept for control, extension or frame API handling arrived.

        ``checked``: a text frame's payload was checked as UTF-8 already.
        """
        opcode = self._opcode
        if opcode < 8:
            if self._extensions:
                max_size = -1 if self.max_size < 0 else self.max_size - self._msg_size
                for ext in reversed(self._extensions):
                    payload = ext.decode(opcode, payload, self._fin, self._rsv, max_size)
                if self.max_size >= 0 and self._msg_size + len(payload) > self.max_size:
                    raise PayloadTooBig(f"message over {self.max_size} bytes")
            if self._frames:
                self._data_frame(payload, checked)
            else:
                self._data_chunk(payload, True, False)
            return
        if opcode == OP_PING:
            if self.state == OPEN and self._auto_pong:
                if self._hold_pongs:
                    self._held_pong = payload  # answers this ping and those before it
                else:
                    self._write_frame(OP_PONG, payload, True, 0)
            self._sink.on_ping(payload)
        elif opcode == OP_PONG:
            self._sink.on_pong(payload)
        else:
            self._receive_close(payload)
        if self._frames:
            self._sink.on_frame(opcode, payload, True, 0)

    def _data_frame(self, payload: bytes, checked: bool) -> None:
        """Frame API: a data frame goes up as it is, after the rules a message keeps.

        Text is checked as UTF-8 across the message's frames (a character
        may span them), failing at once on a bad byte and at the last frame
        on a character left incomplete.  ``max_size`` holds for each frame
        (checked at its header, ``_msg_size`` staying 0): the application
        gets frames as they come, so a message may be as long as it likes
        (byte streams carry endless ones) while memory stays bounded.
        """
        fin = self._fin
        if self._msg_opcode == OP_TEXT:
            if not checked:
                self._check_text(payload)
            if fin and not self._text_complete():
                raise ProtocolError("invalid UTF-8 in text message", 1007)
        if fin:
            self._msg_opcode = 0
        csink = self._csink
        if csink is not None:
            csink.on_frame(self._opcode, payload, fin, self._rsv)
        else:
            self._sink.on_frame(self._opcode, payload, fin, self._rsv)

    def _text_complete(self) -> bool:
        """Whether the text checked so far ends between characters (and reset the check)."""
        if not cython.compiled:
            decoder = self._decoder
            if decoder is None:
                return True
            pending = decoder.getstate()[0]
            decoder.reset()
            return not pending
        state = self._utf8_state
        self._utf8_state = 0
        return state == 0

    def _receive_close(self, payload: bytes) -> None:
        if len(payload) == 0:
            code = 1005
            reason = ""
        elif len(payload) == 1:
            raise ProtocolError("close frame payload of 1 byte")
        else:
            code = (payload[0] << 8) | payload[1]
            if not is_valid_close_code(code):
                raise ProtocolError(f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in close reason", 1007) from None
        self.close_rcvd_code = code
        self.close_rcvd_reason = reason
        if self.state == OPEN:
            # RFC 6455 5.5.1: echo the code.
            self._send_close_frame(code, "")
        self.state = CLOSED
        self._sink.on_close(code, reason)
        if not self.client:
            self._sink.write_eof()

    def _fail(self, exc: ProtocolError) -> None:
        """_Fail the WebSocket Connection_ (RFC 6455 7.1.7).

        Input stops here.  The close frame goes out now, or when the sink
        calls :meth:`flush_failure` if it asked to defer it.
        """
        self.failure = exc
        self._drop_input()
        if not self._sink.on_fail(exc):
            self.flush_failure()

    def _drop_input(self) -> None:
        """Nothing more is received: what was being gathered goes now, not at the TCP close."""
        self._pending = b""
        self._msg_buf = None
        self._kept_frame = None
        self._frame_buf = None
        self._early = None

    def flush_failure(self) -> None:
        """Send the close frame of a failure; the server then half-closes."""
        exc = self.failure
        if exc is None or self.state == CLOSED:
            return
        if self.state == OPEN:
            self._send_close_frame(exc.code, str(exc))
        self.state = CLOSED
        if not self.client:
            self._sink.write_eof()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection on the local side's initiative (e.g. 1011).

        The close frame (if none went yet) goes at once and nothing more is
        received: not even the rest of the read being handled, when a
        callback fails the connection (see :data:`CLOSE_RULES`).  The sink's
        ``on_fail`` is not called: it is for the peer's faults, and the
        caller knows of this one.
        """
        if self.state == CLOSED or self.failure is not None:
            return
        self.failure = ProtocolError(reason, code)
        self._drop_input()
        self.flush_failure()

    # ----------------------------------------------------------------- output

    def send_message(
        self,
        data: str | bytes | bytearray | memoryview,
        raw: bool = False,
        max_fragment_size: int = -1,
    ) -> None:
        """Send a whole text (``str``) or binary message.

        ``raw=True`` sends it as is, bypassing extensions (no compression).
        ``max_fragment_size`` (for this message; -1: the engine's) bounds
        each frame's payload on the wire, compressed or not.
        """
        if isinstance(data, str):
            opcode = OP_TEXT
            payload = data.encode("utf-8")
        else:
            opcode = OP_BINARY
            payload = bytes(data) if type(data) is not bytes else data
        # A message of the wrong type (mode=) is refused in _check_data_frame, before writing.
        limit = self.max_fragment_size if max_fragment_size < 0 else max_fragment_size
        if limit:
            self._send_fragmented(opcode, payload, raw, limit)
            return
        self.send_data(opcode, payload, True, raw)

    def send_encoded(self, opcode: int, frames: bytes) -> None:
        """Server side: write a whole message's frames, built by :func:`server_frames`.

        The caller built them for this connection's extension settings and
        ``max_fragment_size`` (:func:`rapidws.broadcast` shares them among
        connections alike).  The message keeps RFC 6455 5.4's order and
        ``mode=`` as :meth:`send_message` does.
        """
        if self.client:
            raise ValueError("a client masks each frame (RFC 6455 5.1): use send_message")
        self._check_data_frame(opcode)
        csink = self._csink
        if csink is not None:
            csink.write(frames)
        else:
            self._sink.write(frames)

    def _wrong_type(self) -> None:
        """Refuse a message of the type this connection does not send, before writing it."""
        raise TypeError(
            "this connection sends text only (str)"
            if self.only_opcode == OP_TEXT
            else "this connection sends binary only (bytes-like)"
        )

    def _send_fragmented(self, opcode: int, payload: bytes, raw: bool, limit: int) -> None:
        """Send a message in frames of at most ``limit`` payload bytes on the wire.

        The message is encoded (compressed) whole first, then cut: a
        permessage-deflate message may be fragmented anywhere (RFC 7692
        6.1), its first frame alone carrying RSV1.
        """
        self._check_data_frame(opcode)
        rsv = 0
        if self._extensions and not raw:
            for ext in self._extensions:
                payload, bits = ext.encode(opcode, payload, True)
                rsv |= bits
        n = len(payload)
        if n <= limit:
            self._write_frame(opcode, payload, True, rsv)
            return
        view = memoryview(payload)
        start = 0
        while n - start > limit:
            self._write_frame(opcode, view[start : start + limit], False, rsv)
            opcode = OP_CONT
            rsv = 0
            start += limit
        self._write_frame(OP_CONT, view[start:], True, 0)

    def send_data(
        self,
        opcode: int,
        payload: bytes | bytearray | memoryview,
        fin: bool = True,
        raw: bool = False,
    ) -> None:
        """Send one data frame: TEXT or BINARY starts a message, CONT continues it.

        ``raw`` on the first frame sends the whole message bypassing extensions.
        """
        self._check_data_frame(opcode)
        if opcode == OP_CONT:
            raw = self._out_raw
        if fin:
            self._out_opcode = 0
        elif opcode != OP_CONT:
            self._out_opcode = opcode
            self._out_raw = raw
        rsv = 0
        if self._extensions and not raw:
            data = bytes(payload)
            for ext in self._extensions:
                data, bits = ext.encode(opcode, data, fin)
                rsv |= bits
            payload = data
        self._write_frame(opcode, payload, fin, rsv)

    def hold_pongs(self, hold: bool) -> None:
        """Answer pings at once (``False``, the default), or hold the answers back.

        The I/O layer holds them while the peer does not read what is
        written to it.  Only the latest ping's pong is kept meanwhile, and
        sent on release (RFC 6455 5.5.3: "If an endpoint receives a Ping
        frame and has not yet sent Pong frame(s) in response to previous
        Ping frame(s), the endpoint MAY elect to send a Pong frame for only
        the most recently processed Ping frame."), so a peer flooding pings
        without reading costs at most one pong, whatever it sends.
        """
        self._hold_pongs = hold
        payload = self._held_pong
        if not hold and payload is not None:
            self._held_pong = None
            if self.state == OPEN:
                self._write_frame(OP_PONG, payload, True, 0)

    def _check_data_frame(self, opcode: int) -> None:
        """RFC 6455 5.4's order for a data frame about to be sent: TEXT or BINARY
        starts a message, CONT continues the one in progress."""
        if self.state != OPEN:
            raise InvalidState("connection is closing or closed")
        if opcode == OP_CONT:
            if self._out_opcode == 0:
                raise InvalidState("no fragmented message to continue")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._out_opcode != 0:
                raise InvalidState("a fragmented message is in progress")
            if self.only_opcode and opcode != self.only_opcode:
                self._wrong_type()
        else:
            raise ValueError(f"not a data opcode: {opcode}")

    def send_frame(
        self, opcode: int, payload: bytes | bytearray | memoryview, fin: bool = True, rsv: int = 0
    ) -> None:
        """Send one frame the application built, data or control, as it is.

        Data frames keep RFC 6455 5.4's order (TEXT or BINARY starts a
        message, CONT continues it, FIN ends it) and bypass extensions: RSV
        bits (``rsv``: 0x40, 0x20, 0x10) are allowed only when an extension
        that owns them was negotiated (else :class:`ValueError`), and then
        the payload is the extension's (compressed, say).  A CLOSE frame
        starts the closing handshake as :meth:`send_close` does.
        """
        if rsv & ~0x70:
            raise ValueError(f"not RSV bits: {rsv:#x}")
        if opcode >= 8:
            if rsv:
                raise ValueError("RSV bits on a control frame")
            if not fin:
                raise ValueError("a control frame cannot be fragmented")
            data = bytes(payload)
            if opcode == OP_CLOSE:
                if len(data) == 1 or len(data) > 125:
                    raise ValueError("a close frame carries 0 or 2 to 125 bytes")
                if not data:
                    self.send_close(1005)
                    return
                try:
                    reason = data[2:].decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("close reason is not UTF-8") from None
                self.send_close((data[0] << 8) | data[1], reason)
                return
            if opcode not in (OP_PING, OP_PONG):
                raise ValueError(f"reserved opcode {opcode}")
            self._send_control(opcode, data)
            return
        if rsv & ~self._rsv_allowed:
            raise ValueError("RSV bits without a negotiated extension that owns them")
        self._check_data_frame(opcode)
        if opcode == OP_CONT and rsv:
            raise ValueError("RSV bits on a continuation frame")
        if fin:
            self._out_opcode = 0
        elif opcode != OP_CONT:
            self._out_opcode = opcode
            self._out_raw = True
        self._write_frame(opcode, payload, fin, rsv)

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes)."""
        self._send_control(OP_PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Send an unsolicited pong (at most 125 bytes)."""
        self._send_control(OP_PONG, payload)

    def _send_control(self, opcode: int, payload: bytes) -> None:
        if self.state != OPEN:
            raise InvalidState("connection is closing or closed")
        if len(payload) > 125:
            raise ValueError("control frame payload over 125 bytes")
        self._write_frame(opcode, payload, True, 0)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 7.1.2).

        ``code`` 1005 sends a close frame without a payload.
        """
        if self.state != OPEN:
            raise InvalidState("connection is closing or closed")
        if code != 1005 and not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code}")
        self._send_close_frame(code, reason)
        self.state = CLOSING

    def _send_close_frame(self, code: int, reason: str) -> None:
        if code == 1005:
            payload = b""
            reason = ""
        else:
            payload = code.to_bytes(2, "big") + _truncate_reason(reason)
        self.close_sent_code = code
        self.close_sent_reason = reason
        self._write_frame(OP_CLOSE, payload, True, 0)

    def _write_frame(
        self, opcode: int, payload: bytes | bytearray | memoryview, fin: bool, rsv: int
    ) -> None:
        """Build one frame and write it."""
        b0 = (0x80 if fin else 0) | rsv | opcode
        if type(payload) is not bytes:
            payload = bytes(payload)  # and len() counts bytes, whatever a view's format
        n = len(payload)
        key = _MASKS.next() if self.client else None
        rest: bytes | None = None
        if n >= _WRITE_APART:  # not copied behind its header
            header = _frame(b0, n, key, None)
            rest = payload if key is None else _mask(payload, 0, n, key, 0)
        else:
            header = _frame(b0, n, key, payload)
        csink = self._csink
        if csink is not None:
            csink.write(header)
            if rest is not None:
                csink.write(rest)
        else:
            self._sink.write(header)
            if rest is not None:
                self._sink.write(rest)

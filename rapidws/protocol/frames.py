"""Frame vocabulary of RFC 6455 and a readable reference codec.

The engine (``engine.py``) has its own incremental, allocation-lean parser
and builder.  The codec here is the plain statement of RFC 6455 section 5.2;
tests check the engine against it, and tools use it to craft frames.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import struct
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "CLOSE_CODES_ON_WIRE",
    "Close",
    "CloseCode",
    "Frame",
    "Opcode",
    "apply_mask",
    "is_valid_close_code",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2); 3-7 and 11-15 are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 section 7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005  # never on the wire
    ABNORMAL_CLOSURE = 1006  # never on the wire
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


#: Codes below 3000 that may appear in a close frame.
CLOSE_CODES_ON_WIRE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 7.4, IANA).

    1000-1003 and 1007-1014 are registered for the wire; 3000-3999 are for
    libraries and frameworks, 4000-4999 for private use.  Everything else,
    1004-1006 and 1015 included, is a protocol error.
    """
    return code in CLOSE_CODES_ON_WIRE or 3000 <= code <= 4999


#: XOR tables for ``bytes.translate``, one per mask byte, made on first use.
_XOR_TABLES: dict[int, bytes] = {}


def _xor_table(byte: int) -> bytes:
    table = _XOR_TABLES.get(byte)
    if table is None:
        table = _XOR_TABLES[byte] = bytes(i ^ byte for i in range(256))
    return table


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3).

    Pure Python, so done by C loops of the standard library: small payloads
    as one XOR of two big integers; from 2 KiB, as four ``bytes.translate``
    passes over every fourth byte (a constant XOR is a byte translation),
    more than twice as fast there.
    """
    n = len(data)
    if n == 0:
        return b""
    if n < 2048:
        key = (mask * ((n + 3) >> 2))[:n]
        value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
        return value.to_bytes(n, "little")
    source = data if isinstance(data, bytes) else bytes(data)
    out = bytearray(n)
    for i in range(4):
        out[i::4] = source[i::4].translate(_xor_table(mask[i]))
    return bytes(out)


_new_frame: Callable[..., Frame] = tuple.__new__  # Frame's fields in one tuple, no keywords


class Frame(NamedTuple):
    """One WebSocket frame, payload unmasked.

    A named tuple, not a dataclass: the frame API makes one per frame, and a
    tuple costs a third of a frozen dataclass to make.
    """

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    @classmethod
    def from_wire(cls, opcode: int, payload: bytes, fin: bool, rsv: int) -> Frame:
        """A frame from its parts, ``rsv`` as the header's bits (0x40, 0x20, 0x10)."""
        if not rsv:
            return _new_frame(cls, (opcode, payload, fin, False, False, False))
        return _new_frame(
            cls, (opcode, payload, fin, rsv & 0x40 != 0, rsv & 0x20 != 0, rsv & 0x10 != 0)
        )

    @property
    def rsv(self) -> int:
        """The RSV bits as in the header: 0x40 (RSV1), 0x20 (RSV2), 0x10 (RSV3)."""
        return (0x40 if self.rsv1 else 0) | (0x20 if self.rsv2 else 0) | (0x10 if self.rsv3 else 0)

    def __str__(self) -> str:
        name = Opcode(self.opcode).name if self.opcode in Opcode._value2member_map_ else "?"
        flags = "".join(
            flag
            for flag, on in (("F", self.fin), ("1", self.rsv1), ("2", self.rsv2), ("3", self.rsv3))
            if on
        )
        return f"{name}[{flags}] {len(self.payload)} bytes"

    def serialize(self, mask: bool | bytes = False) -> bytes:
        """The frame on the wire; ``mask=True`` draws a random masking key."""
        b0 = (
            (0x80 if self.fin else 0)
            | (0x40 if self.rsv1 else 0)
            | (0x20 if self.rsv2 else 0)
            | (0x10 if self.rsv3 else 0)
            | self.opcode
        )
        n = len(self.payload)
        mask_bit = 0x80 if mask else 0
        if n < 126:
            header = struct.pack("!BB", b0, mask_bit | n)
        elif n < 65536:
            header = struct.pack("!BBH", b0, mask_bit | 126, n)
        else:
            header = struct.pack("!BBQ", b0, mask_bit | 127, n)
        if not mask:
            return header + self.payload
        key = os.urandom(4) if mask is True else bytes(mask)
        return header + key + apply_mask(self.payload, key)

    @classmethod
    def parse(cls, data: bytes) -> tuple[Frame, bool, int] | None:
        """Parse one frame at the start of ``data``.

        Return ``(frame, was_masked, consumed)`` or ``None`` if ``data`` is
        incomplete.  No RFC rules are checked beyond the wire layout.
        """
        if len(data) < 2:
            return None
        b0, b1 = data[0], data[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(data) < 4:
                return None
            (n,) = struct.unpack_from("!H", data, 2)
            pos = 4
        elif n == 127:
            if len(data) < 10:
                return None
            (n,) = struct.unpack_from("!Q", data, 2)
            pos = 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            if len(data) < pos + 4:
                return None
            key = bytes(data[pos : pos + 4])
            pos += 4
        if len(data) < pos + n:
            return None
        payload = bytes(data[pos : pos + n])
        if masked:
            payload = apply_mask(payload, key)
        frame = cls(
            opcode=b0 & 0x0F,
            payload=payload,
            fin=bool(b0 & 0x80),
            rsv1=bool(b0 & 0x40),
            rsv2=bool(b0 & 0x20),
            rsv3=bool(b0 & 0x10),
        )
        return frame, masked, pos + n


@dataclasses.dataclass(frozen=True)
class Close:
    """The payload of a close frame: a code and a UTF-8 reason."""

    code: int
    reason: str = ""

    def __str__(self) -> str:
        try:
            name = CloseCode(self.code).name.lower().replace("_", " ")
        except ValueError:
            name = "private use" if 4000 <= self.code <= 4999 else "registered"
        text = f"{self.code} ({name})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Decode a close payload; raise ``ValueError`` if it breaks RFC 6455 7.4."""
        if len(payload) == 0:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        if len(payload) == 1:
            raise ValueError("close frame payload of 1 byte")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code}")
        return cls(code, payload[2:].decode("utf-8"))

    def serialize(self) -> bytes:
        """Encode a close payload (the code 1005 encodes as an empty payload)."""
        if self.code == CloseCode.NO_STATUS_RCVD:
            return b""
        return self.code.to_bytes(2, "big") + self.reason.encode("utf-8")

"""Table tests for the engine under floods: what a hostile peer's frames cost.

A message costs what it weighs, however it is fragmented (RFC 6455 5.4
lets a peer cut it into as many frames as it likes), and pings answered
while the peer does not read cost one pong at most (RFC 6455 5.5.3).
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from rapidws.protocol.engine import CLOSING, SERVER, Engine
from rapidws.protocol.events import EventSink, Message, Ping
from rapidws.protocol.frames import Frame, Opcode

from .test_engine import assert_failed, make, sent_frames, wire


def one_byte_fragments(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """``payload`` as a message of one-byte frames (the last one final if ``fin``)."""
    frames = [
        wire(opcode if i == 0 else Opcode.CONT, payload[i : i + 1], fin=False)
        for i in range(len(payload))
    ]
    if fin:
        frames.append(wire(Opcode.CONT, b""))
    return b"".join(frames)


@pytest.mark.parametrize(
    ("opcode", "payload", "expected"),
    [
        (Opcode.BINARY, bytes(range(256)) * 8, bytes(range(256)) * 8),
        # Multi-byte characters cut inside themselves, frame after frame.
        (Opcode.TEXT, "κόσμε €𝄞 ".encode() * 50, "κόσμε €𝄞 " * 50),
    ],
)
def test_one_byte_fragments_reassemble_exactly(
    opcode: int, payload: bytes, expected: str | bytes
) -> None:
    engine, sink = make()
    engine.receive_data(one_byte_fragments(opcode, payload))
    assert sink.take_events() == [Message(expected)]
    # The next message starts clean.
    engine.receive_data(wire(Opcode.TEXT, b"ok"))
    assert sink.take_events() == [Message("ok")]


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        (b"abc", b"\xff"),  # a byte no UTF-8 text contains
        ("κό".encode(), b"\xce\x41"),  # a character cut by a non-continuation byte
        (b"x", b"\xed\xa0\x80"),  # a surrogate
    ],
)
def test_invalid_utf8_in_a_middle_fragment_fails_1007_before_the_message_ends(
    good: bytes, bad: bytes
) -> None:
    engine, sink = make()
    engine.receive_data(one_byte_fragments(Opcode.TEXT, good + bad, fin=False))
    assert_failed(engine, sink, 1007)


def test_character_left_incomplete_by_the_last_fragment_fails_1007() -> None:
    engine, sink = make()
    engine.receive_data(one_byte_fragments(Opcode.TEXT, "aκ".encode()[:-1]))
    assert_failed(engine, sink, 1007)


def test_fragment_flood_up_to_max_size_costs_what_the_message_weighs() -> None:
    # One-byte fragments up to max_size, then one more byte: 1009, and the
    # engine held about max_size bytes, not an object per fragment (~56 bytes each).
    max_size = 1 << 16
    engine, sink = make(max_size=max_size)
    flood = one_byte_fragments(Opcode.BINARY, bytes(max_size), fin=False)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(flood), 7 * 4096):  # 4,096 frames per read
            engine.receive_data(flood[start : start + 7 * 4096])
        held = tracemalloc.get_traced_memory()[0] - base
        engine.receive_data(wire(Opcode.CONT, b"!", fin=False))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert held < 1.5 * max_size, held
    assert peak < 2 * max_size + 8 * 7 * 4096, peak
    assert_failed(engine, sink, 1009)
    assert engine._msg_buf is None  # dropped at the failure, not at the TCP close


def test_frame_trickling_in_a_byte_per_read_is_held_in_one_buffer() -> None:
    # Compressed frames and control frames are gathered whole before they are
    # decoded; a byte per read must not cost an object per read.
    from rapidws.protocol.extensions.permessage_deflate import PerMessageDeflate

    payload = bytes(range(256)) * 64
    engine, sink = make(extensions=[PerMessageDeflate(False, False, 15, 15)])
    data = wire(Opcode.BINARY, payload)  # RSV1 clear: not compressed, still gathered whole
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(len(data) - 1):
            engine.receive_data(data[i : i + 1])
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    engine.receive_data(data[-1:])
    assert sink.take_events() == [Message(payload)]
    assert held < 2 * len(payload), held


def test_held_pongs_answer_only_the_latest_ping_on_release() -> None:
    engine, sink = make()
    engine.hold_pongs(True)
    engine.receive_data(b"".join(wire(Opcode.PING, b"%d" % i) for i in range(1000)))
    assert sink.take_events() == [Ping(b"%d" % i) for i in range(1000)]
    assert sink.take_data() == b""  # nothing written while held
    engine.hold_pongs(False)
    assert sent_frames(sink) == [Frame(Opcode.PONG, b"999")]
    engine.hold_pongs(False)  # nothing left to send
    engine.receive_data(wire(Opcode.PING, b"now"))
    assert sent_frames(sink) == [Frame(Opcode.PONG, b"now")]


def test_held_pong_is_dropped_once_closing() -> None:
    engine, sink = make()
    engine.hold_pongs(True)
    engine.receive_data(wire(Opcode.PING, b"late"))
    engine.send_close(1001)
    assert engine.state == CLOSING
    sink.take_data()
    engine.hold_pongs(False)
    assert sink.take_data() == b""


def test_held_pongs_cost_one_pong_whatever_the_flood() -> None:
    sink = EventSink()
    engine = Engine(SERVER, sink)
    engine.hold_pongs(True)
    ping = wire(Opcode.PING, bytes(125))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            engine.receive_data(ping * 100)
            sink.events.clear()  # the test sink keeps events; a connection does not
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert sink.take_data() == b""
    assert held < 4096, held


def deflated(payload: bytes) -> bytes:
    """``payload`` as one compressed frame (RFC 7692 7.2.1), however it expands."""
    import zlib

    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 5)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Frame(Opcode.BINARY, data[:-4], rsv1=True).serialize(mask=True)


def deflate_engine(max_size: int) -> tuple[Engine, EventSink]:
    from rapidws.protocol.extensions.permessage_deflate import PerMessageDeflate

    return make(max_size=max_size, extensions=[PerMessageDeflate(False, False, 15, 15)])


def test_compressed_frame_larger_than_its_message_within_max_size_passes() -> None:
    # Random bytes do not compress: their frame is larger than max_size, the
    # message is not, and max_size bounds the message.
    payload = random.Random(7692).randbytes(1 << 16)
    frame = deflated(payload)
    assert len(frame) > len(payload) + 14
    engine, sink = deflate_engine(len(payload))
    engine.receive_data(frame)
    assert sink.take_events() == [Message(payload)]


def test_compressed_message_over_max_size_fails_1009() -> None:
    engine, sink = deflate_engine(1 << 16)
    engine.receive_data(deflated(bytes((1 << 16) + 1)))
    assert_failed(engine, sink, 1009)


def test_compressed_frame_past_what_deflate_can_expand_to_fails_1009_at_its_header() -> None:
    engine, sink = deflate_engine(1 << 16)
    header = Frame(Opcode.BINARY, bytes(80000), rsv1=True).serialize(mask=True)[:14]
    engine.receive_data(header)  # no payload yet: the header alone is refused
    assert_failed(engine, sink, 1009)

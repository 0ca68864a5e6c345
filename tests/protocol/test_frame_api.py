"""Table tests for the engine's frame API (frames=True): frames up one by one, rules kept."""

from __future__ import annotations

import zlib

import pytest

from rapidws.exceptions import InvalidState
from rapidws.protocol.engine import CLIENT, CLOSING, SERVER
from rapidws.protocol.events import FrameReceived, Ping
from rapidws.protocol.extensions.permessage_deflate import PerMessageDeflate
from rapidws.protocol.frames import Frame, Opcode

from .test_engine import assert_failed, make, sent_frames, wire


def frames_of(events: list[object]) -> list[FrameReceived]:
    return [e for e in events if isinstance(e, FrameReceived)]


def test_fragments_go_up_one_by_one() -> None:
    engine, sink = make(frames=True)
    engine.receive_data(
        wire(Opcode.TEXT, "κό".encode()[:3], fin=False)  # a character cut across frames
        + wire(Opcode.CONT, "κό".encode()[3:], fin=False)
        + wire(Opcode.CONT, b"!")
        + wire(Opcode.BINARY, b"\x00")
    )
    assert sink.take_events() == [
        FrameReceived(Opcode.TEXT, "κό".encode()[:3], False, 0),
        FrameReceived(Opcode.CONT, "κό".encode()[3:], False, 0),
        FrameReceived(Opcode.CONT, b"!", True, 0),
        FrameReceived(Opcode.BINARY, b"\x00", True, 0),
    ]


def test_byte_at_a_time_gives_the_same_frames() -> None:
    data = (
        wire(Opcode.BINARY, bytes(range(256)) * 300, fin=False)
        + wire(Opcode.PING, b"p")
        + wire(Opcode.CONT, b"end")
    )
    whole, whole_sink = make(frames=True)
    whole.receive_data(data)
    split, split_sink = make(frames=True)
    for i in range(len(data)):
        split.receive_data(data[i : i + 1])
    assert split_sink.take_events() == whole_sink.take_events()


@pytest.mark.parametrize(
    "frames",
    [
        [wire(Opcode.TEXT, b"ok", fin=False), wire(Opcode.CONT, b"\xff")],  # a bad byte
        [wire(Opcode.TEXT, b"\xce", fin=False), wire(Opcode.CONT, b"A")],  # a cut character
        [wire(Opcode.TEXT, b"ok\xce")],  # left incomplete by the last frame
    ],
)
def test_utf8_holds_across_frames(frames: list[bytes]) -> None:
    engine, sink = make(frames=True)
    engine.receive_data(b"".join(frames))
    assert_failed(engine, sink, 1007)


@pytest.mark.parametrize(
    "data",
    [
        wire(Opcode.CONT, b"x"),  # nothing to continue
        wire(Opcode.TEXT, b"a", fin=False) + wire(Opcode.BINARY, b"b"),  # not a continuation
        wire(Opcode.BINARY, b"a", masked=False),  # unmasked from a client
        wire(Opcode.PING, bytes(126)),  # control frame too long
    ],
)
def test_framing_rules_hold(data: bytes) -> None:
    engine, sink = make(frames=True)
    engine.receive_data(data)
    assert_failed(engine, sink, 1002)


def test_max_size_holds_for_each_frame_not_the_message() -> None:
    engine, sink = make(frames=True, max_size=10)
    engine.receive_data(wire(Opcode.BINARY, b"x" * 6, fin=False))
    for _ in range(100):  # a message of any length, in frames within the limit
        engine.receive_data(wire(Opcode.CONT, b"x" * 10, fin=False))
    engine.receive_data(wire(Opcode.CONT, b"x" * 10))
    assert len(sink.take_events()) == 102
    engine.receive_data(wire(Opcode.TEXT, b"y" * 11))  # one frame over: 1009 at its header
    assert_failed(engine, sink, 1009)


def test_pings_are_answered_and_go_up_too() -> None:
    engine, sink = make(frames=True)
    engine.receive_data(wire(Opcode.PING, b"hi"))
    assert sink.take_events() == [Ping(b"hi"), FrameReceived(Opcode.PING, b"hi", True, 0)]
    assert sent_frames(sink) == [Frame(Opcode.PONG, b"hi")]


def test_compressed_frames_go_up_decompressed_with_their_rsv_bits() -> None:
    engine, sink = make(frames=True, extensions=[PerMessageDeflate(False, False, 15, 15)])
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = compressor.compress(b"hello ") + compressor.flush(zlib.Z_SYNC_FLUSH)
    last = compressor.compress(b"world") + compressor.flush(zlib.Z_SYNC_FLUSH)
    engine.receive_data(
        Frame(Opcode.TEXT, first, fin=False, rsv1=True).serialize(mask=True)
        + Frame(Opcode.CONT, last[:-4]).serialize(mask=True)
    )
    assert frames_of(sink.take_events()) == [
        FrameReceived(Opcode.TEXT, b"hello ", False, 0x40),
        FrameReceived(Opcode.CONT, b"world", True, 0),
    ]


# -- send_frame ---------------------------------------------------------------------


def test_send_frame_sends_any_fragment_in_order() -> None:
    engine, sink = make()
    engine.send_frame(Opcode.BINARY, b"a", fin=False)
    engine.send_frame(Opcode.PING, b"between")
    engine.send_frame(Opcode.CONT, b"b")
    assert sent_frames(sink) == [
        Frame(Opcode.BINARY, b"a", fin=False),
        Frame(Opcode.PING, b"between"),
        Frame(Opcode.CONT, b"b"),
    ]
    with pytest.raises(InvalidState):
        engine.send_frame(Opcode.CONT, b"nothing to continue")


@pytest.mark.parametrize(
    ("opcode", "payload", "fin", "rsv"),
    [
        (Opcode.BINARY, b"x", True, 0x40),  # RSV1 without permessage-deflate
        (Opcode.PING, b"x", False, 0),  # a fragmented control frame
        (Opcode.PING, bytes(126), True, 0),  # a control frame over 125 bytes
        (Opcode.CLOSE, b"\x03", True, 0),  # a 1-byte close payload
        (0x3, b"x", True, 0),  # a reserved opcode
    ],
)
def test_send_frame_refuses_what_the_rfc_forbids(
    opcode: int, payload: bytes, fin: bool, rsv: int
) -> None:
    engine, sink = make()
    with pytest.raises(ValueError):
        engine.send_frame(opcode, payload, fin, rsv)
    assert sink.take_data() == b""


def test_send_frame_with_rsv1_once_deflate_is_negotiated() -> None:
    engine, sink = make(CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = (compressor.compress(b"raw deflate") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    engine.send_frame(Opcode.TEXT, payload, True, 0x40)
    receiver, receiver_sink = make(SERVER, extensions=[PerMessageDeflate(False, False, 15, 15)])
    receiver.receive_data(sink.take_data())
    assert [e.data for e in receiver_sink.take_events()] == ["raw deflate"]  # type: ignore[union-attr]


def test_send_frame_close_starts_the_closing_handshake() -> None:
    engine, sink = make()
    engine.send_frame(Opcode.CLOSE, b"\x03\xe8bye")
    assert engine.state == CLOSING
    assert sent_frames(sink) == [Frame(Opcode.CLOSE, b"\x03\xe8bye")]

"""Table tests: text-only and binary-only connections; max_fragment_size on the wire."""

from __future__ import annotations

import random

import pytest

from rapidws.protocol.engine import CLIENT, SERVER, Engine
from rapidws.protocol.events import EventSink, Message
from rapidws.protocol.extensions.permessage_deflate import PerMessageDeflate
from rapidws.protocol.frames import Frame, Opcode

from .test_engine import assert_failed, make, sent_frames, wire

# -- mode="text" / mode="binary" (RFC 6455 7.4.1: 1003) ---------------------------


@pytest.mark.parametrize(
    ("mode", "accepted", "refused"),
    [("text", "only text", b"no bytes"), ("binary", b"only bytes", "no text")],
)
@pytest.mark.parametrize("side", [SERVER, CLIENT])
@pytest.mark.parametrize("max_fragment_size", [None, 4])
def test_sending_the_other_type_raises_before_anything_is_written(
    mode: str, accepted: str | bytes, refused: str | bytes, side: int, max_fragment_size: int | None
) -> None:
    engine, sink = make(side, mode=mode, max_fragment_size=max_fragment_size)
    with pytest.raises(TypeError, match="only"):
        engine.send_message(refused)
    with pytest.raises(TypeError, match="only"):
        engine.send_data(Opcode.TEXT if mode == "binary" else Opcode.BINARY, b"x", False)
    assert sink.take_data() == b""
    engine.send_message(accepted)
    assert len(sent_frames(sink, masked=side == CLIENT)) == (1 if max_fragment_size is None else 3)


@pytest.mark.parametrize(
    ("mode", "accepted", "refused"),
    [("text", Opcode.TEXT, Opcode.BINARY), ("binary", Opcode.BINARY, Opcode.TEXT)],
)
def test_receiving_the_other_type_fails_1003(mode: str, accepted: int, refused: int) -> None:
    engine, sink = make(mode=mode)
    engine.receive_data(wire(accepted, b"fine"))
    assert sink.take_events() == [Message("fine" if accepted == Opcode.TEXT else b"fine")]
    engine.receive_data(wire(refused, b"not this", fin=False))  # fails at the first frame
    assert_failed(engine, sink, 1003)


def test_control_frames_pass_in_either_mode() -> None:
    engine, sink = make(mode="binary")
    engine.receive_data(wire(Opcode.PING, b"p") + wire(Opcode.BINARY, b"b"))
    assert [type(e).__name__ for e in sink.take_events()] == ["Ping", "Message"]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        Engine(SERVER, EventSink(), mode="json")  # type: ignore[arg-type]


# -- max_fragment_size holds on the wire ------------------------------------------


def deflate(side: int, **kwargs: object) -> Engine:
    return Engine(side, EventSink(), extensions=[PerMessageDeflate(False, False, 15, 15)], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 1000, 10_000, 100_000])
@pytest.mark.parametrize("compressible", [True, False])
def test_compressed_frames_are_at_most_max_fragment_size(size: int, compressible: bool) -> None:
    rng = random.Random(size)
    payload = bytes(size) if compressible else rng.randbytes(size)
    sender = deflate(CLIENT, max_fragment_size=256)
    sender.send_message(payload)
    data = sender._sink.take_data()  # type: ignore[attr-defined]
    frames = []
    rest = data
    while rest:
        parsed = Frame.parse(rest)
        assert parsed is not None
        frames.append(parsed[0])
        rest = rest[parsed[2] :]
    assert all(len(frame.payload) <= 256 for frame in frames)
    assert [frame.rsv1 for frame in frames[1:]] == [False] * (len(frames) - 1)
    assert frames[-1].fin and not any(frame.fin for frame in frames[:-1])
    receiver = deflate(SERVER)
    receiver.receive_data(data)
    assert receiver._sink.take_events() == [Message(payload)]  # type: ignore[attr-defined]


def test_max_fragment_size_per_message_overrides_the_engines() -> None:
    engine, sink = make(max_fragment_size=4)
    engine.send_message("abcdefghij", max_fragment_size=0)  # this one unfragmented
    engine.send_message("abcdef", max_fragment_size=3)
    assert sent_frames(sink) == [
        Frame(Opcode.TEXT, b"abcdefghij"),
        Frame(Opcode.TEXT, b"abc", fin=False),
        Frame(Opcode.CONT, b"def"),
    ]

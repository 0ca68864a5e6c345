"""Table tests for the engine: one case per rule of RFC 6455 after the handshake."""

from __future__ import annotations

import array
import random
import struct

import pytest

from rapidws.exceptions import InvalidState
from rapidws.protocol.engine import CLIENT, CLOSED, CLOSING, OPEN, SERVER, Engine, SinkBase
from rapidws.protocol.events import CloseReceived, EventSink, Failed, Message, Ping, Pong
from rapidws.protocol.frames import Close, Frame, Opcode


def make(side: int = SERVER, **kwargs: object) -> tuple[Engine, EventSink]:
    sink = EventSink()
    return Engine(side, sink, **kwargs), sink  # type: ignore[arg-type]


def wire(
    opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A frame as a client (masked) or a server (unmasked) sends it."""
    frame = Frame(opcode, payload, fin, bool(rsv & 4), bool(rsv & 2), bool(rsv & 1))
    return frame.serialize(mask=masked)


def sent_frames(sink: EventSink, masked: bool = False) -> list[Frame]:
    data = sink.take_data()
    frames = []
    while data:
        parsed = Frame.parse(data)
        assert parsed is not None, "incomplete frame written"
        frame, was_masked, consumed = parsed
        assert was_masked is masked
        frames.append(frame)
        data = data[consumed:]
    return frames


def assert_failed(engine: Engine, sink: EventSink, code: int) -> None:
    """The engine failed the connection with ``code`` and said so on the wire."""
    events = sink.take_events()
    assert isinstance(events[-1], Failed), events
    assert events[-1].code == code
    assert engine.state == CLOSED
    assert engine.failure is not None and engine.failure.code == code
    frames = sent_frames(sink, masked=engine.client)
    assert frames[-1].opcode == Opcode.CLOSE
    assert Close.parse(frames[-1].payload).code == code
    assert sink.eof_sent is (not engine.client)  # the server closes TCP first


# --- framing ------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_payload_lengths_7_16_64_bit(length: int) -> None:
    engine, sink = make()
    payload = bytes(random.getrandbits(8) for _ in range(min(length, 64))) * (length // 64 + 1)
    payload = payload[:length]
    engine.receive_data(wire(Opcode.BINARY, payload))
    assert sink.take_events() == [Message(payload)]


def test_length_with_most_significant_bit_fails_1002() -> None:
    engine, sink = make()
    engine.receive_data(b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"abcd")
    assert_failed(engine, sink, 1002)


@pytest.mark.parametrize("length", [1 << 32, (1 << 40) + 0x0102030405, (1 << 63) - 1])
def test_64_bit_lengths_are_read_whole(length: int) -> None:
    # Every byte of the 64-bit length counts: over max_size, the error names it.
    engine, sink = make(max_size=1 << 20)
    header = b"\x82\xff" + struct.pack("!Q", length) + b"abcd"
    engine.receive_data(header[:5])  # split inside the length: kept until the rest comes
    assert sink.take_events() == []
    engine.receive_data(header[5:])
    assert engine.failure is not None and f"frame of {length} bytes" in str(engine.failure)
    assert engine.failure.code == 1009


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reserved_opcodes_fail_1002(opcode: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(opcode, b"x"))
    assert_failed(engine, sink, 1002)


@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY, Opcode.PING])
def test_rsv_bits_without_extension_fail_1002(rsv: int, opcode: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(opcode, b"x", rsv=rsv))
    assert_failed(engine, sink, 1002)


def test_server_fails_unmasked_client_frame() -> None:
    engine, sink = make(SERVER)
    engine.receive_data(wire(Opcode.TEXT, b"hi", masked=False))
    assert_failed(engine, sink, 1002)


def test_client_fails_masked_server_frame() -> None:
    engine, sink = make(CLIENT)
    engine.receive_data(wire(Opcode.TEXT, b"hi", masked=True))
    assert_failed(engine, sink, 1002)


def test_client_accepts_unmasked_frames_and_masks_its_own() -> None:
    engine, sink = make(CLIENT)
    engine.receive_data(wire(Opcode.TEXT, b"hi", masked=False))
    assert sink.take_events() == [Message("hi")]
    engine.send_message(b"payload")
    assert sent_frames(sink, masked=True) == [Frame(Opcode.BINARY, b"payload")]


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_control_frame_over_125_bytes_fails_1002(opcode: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(opcode, b"\x03\xe8" + b"x" * 124))
    assert_failed(engine, sink, 1002)


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_fragmented_control_frame_fails_1002(opcode: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(opcode, b"", fin=False))
    assert_failed(engine, sink, 1002)


def test_continuation_without_start_fails_1002() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CONT, b"x"))
    assert_failed(engine, sink, 1002)


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_data_frame_inside_fragmented_message_fails_1002(opcode: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.TEXT, b"a", fin=False) + wire(opcode, b"b"))
    assert_failed(engine, sink, 1002)


def test_control_frames_interleaved_in_fragmented_message() -> None:
    engine, sink = make()
    engine.receive_data(
        wire(Opcode.TEXT, b"frag1", fin=False)
        + wire(Opcode.PING, b"p1")
        + wire(Opcode.CONT, b"frag2", fin=False)
        + wire(Opcode.PONG, b"p2")
        + wire(Opcode.CONT, b"frag3")
    )
    assert sink.take_events() == [Ping(b"p1"), Pong(b"p2"), Message("frag1frag2frag3")]
    assert sent_frames(sink) == [Frame(Opcode.PONG, b"p1")]


def test_fragmented_binary_message_with_empty_fragments() -> None:
    engine, sink = make()
    engine.receive_data(
        wire(Opcode.BINARY, b"", fin=False)
        + wire(Opcode.CONT, b"ab", fin=False)
        + wire(Opcode.CONT, b"", fin=False)
        + wire(Opcode.CONT, b"")
    )
    assert sink.take_events() == [Message(b"ab")]


def test_ping_is_answered_with_the_same_payload() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.PING, b"hello"))
    assert sink.take_events() == [Ping(b"hello")]
    assert sent_frames(sink) == [Frame(Opcode.PONG, b"hello")]


def test_byte_at_a_time_gives_the_same_events() -> None:
    data = (
        wire(Opcode.TEXT, "κόσμε".encode(), fin=False)
        + wire(Opcode.PING, b"x")
        + wire(Opcode.CONT, b"end")
        + wire(Opcode.BINARY, bytes(range(256)) * 300)
    )
    whole, whole_sink = make()
    whole.receive_data(data)
    split, split_sink = make()
    for i in range(len(data)):
        split.receive_data(data[i : i + 1])
    assert split_sink.take_events() == whole_sink.take_events()
    assert len(split_sink.events) == 0


def test_random_frames_match_reference_codec() -> None:
    rng = random.Random(6455)
    for _ in range(200):
        messages = []
        data = b""
        for _ in range(rng.randrange(1, 5)):
            payload = rng.randbytes(rng.choice([0, 1, 50, 125, 126, 300, 70000]))
            if rng.random() < 0.5:
                data += wire(Opcode.BINARY, payload)
                messages.append(Message(payload))
            else:
                cut = rng.randrange(len(payload) + 1)
                data += wire(Opcode.BINARY, payload[:cut], fin=False)
                data += wire(Opcode.CONT, payload[cut:])
                messages.append(Message(payload))
        engine, sink = make(max_size=None)
        pos = 0
        while pos < len(data):
            step = rng.randrange(1, 3000)
            engine.receive_data(data[pos : pos + step])
            pos += step
        assert sink.take_events() == messages


# --- UTF-8 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\xc0\xaf",  # overlong
        b"\xed\xa0\x80",  # surrogate
        b"\xf4\x90\x80\x80",  # over U+10FFFF
        b"caf\xc3",  # truncated at the end
        "κόσμε".encode() + b"\xed\xa0\x80edited",
    ],
)
def test_invalid_utf8_text_fails_1007(payload: bytes) -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.TEXT, payload))
    assert_failed(engine, sink, 1007)


@pytest.mark.parametrize("bad", [b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xc0"])
def test_invalid_utf8_fails_fast_mid_message(bad: bytes) -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.TEXT, "κόσμε".encode(), fin=False))
    assert sink.take_events() == []
    engine.receive_data(wire(Opcode.CONT, bad, fin=False))  # the message is not over
    assert_failed(engine, sink, 1007)


def test_invalid_utf8_fails_fast_mid_frame() -> None:
    engine, sink = make()
    data = wire(Opcode.TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"edited")
    engine.receive_data(data[:20])  # header + valid text + the first bad bytes
    assert_failed(engine, sink, 1007)


def test_utf8_split_across_fragments_is_valid() -> None:
    engine, sink = make()
    text = "κόσμε€𝄞".encode()
    engine.receive_data(
        b"".join(
            wire(Opcode.TEXT if i == 0 else Opcode.CONT, text[i : i + 1], fin=i == len(text) - 1)
            for i in range(len(text))
        )
    )
    assert sink.take_events() == [Message("κόσμε€𝄞")]


def test_utf8_incomplete_first_fragment_then_rest() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.TEXT, b"\xce", fin=False) + wire(Opcode.CONT, b"\xba"))
    assert sink.take_events() == [Message("κ")]
    engine.receive_data(wire(Opcode.TEXT, b"plain"))
    assert sink.take_events() == [Message("plain")]


# Frames delivered in pieces: the compiled build gathers them into one buffer
# and validates UTF-8 piece by piece with its own state machine; both builds
# must agree with Python's decoder on every input.

INVALID_SEQUENCES = [
    b"\x80",  # a lone continuation byte
    b"\xbf",
    b"\xc0\x80",  # overlong, 2 bytes
    b"\xc1\xbf",
    b"\xe0\x80\x80",  # overlong, 3 bytes
    b"\xe0\x9f\xbf",
    b"\xed\xa0\x80",  # surrogates
    b"\xed\xbf\xbf",
    b"\xf0\x80\x80\x80",  # overlong, 4 bytes
    b"\xf0\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80",  # over U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xff",
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xe2\x82\x28",
    b"\xf0\x9d\x84\x28",
]

VALID_SEQUENCES = [
    "é".encode(),
    "€".encode(),
    "𝄞".encode(),
    b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
    b"\xee\x80\x80",  # U+E000, just above
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
    b"\xef\xbf\xbf",
]


def feed_in_pieces(engine: Engine, data: bytes, cuts: list[int]) -> None:
    last = 0
    for cut in [*cuts, len(data)]:
        engine.receive_data(data[last:cut])
        last = cut
        if engine.state == CLOSED:
            return


@pytest.mark.parametrize("bad", INVALID_SEQUENCES)
@pytest.mark.parametrize("side", [SERVER, CLIENT])
def test_invalid_utf8_in_a_frame_arriving_in_pieces_fails_1007_at_once(
    bad: bytes, side: int
) -> None:
    engine, sink = make(side)
    text = ("ascii text " * 400).encode() + bad + ("more text " * 400).encode()
    data = wire(Opcode.TEXT, text, masked=side == SERVER)
    cut = len(data) - len(text) + text.index(bad) + len(bad)
    engine.receive_data(data[:cut])  # up to the bad bytes, far from the frame's end
    if bad in (b"\xc3\x28", b"\xe2\x82\x28", b"\xf0\x9d\x84\x28"):
        engine.receive_data(data[cut : cut + 1])  # the bad byte is the one after
    assert_failed(engine, sink, 1007)


@pytest.mark.parametrize("good", VALID_SEQUENCES)
def test_valid_utf8_split_at_every_byte_of_a_character(good: bytes) -> None:
    text = ("x" * 5000).encode() + good + ("y" * 5000).encode()
    data = wire(Opcode.TEXT, text)
    start = len(data) - len(text) + 5000
    for offset in range(len(good) + 1):
        engine, sink = make()
        feed_in_pieces(engine, data, [start - 3000, start + offset])
        assert sink.take_events() == [Message(text.decode())]


def test_character_split_between_a_small_frame_and_a_large_one() -> None:
    engine, sink = make()
    tail = ("z" * 20000).encode()
    data = wire(Opcode.TEXT, b"abc\xf0\x9d", fin=False) + wire(Opcode.CONT, b"\x84\x9e" + tail)
    feed_in_pieces(engine, data, [20, 4000, 9000])
    assert sink.take_events() == [Message("abc𝄞" + tail.decode())]


def test_invalid_continuation_of_a_character_from_the_previous_frame() -> None:
    engine, sink = make()
    tail = ("z" * 20000).encode()
    data = wire(Opcode.TEXT, b"abc\xf0\x9d", fin=False) + wire(Opcode.CONT, b"\x28" + tail)
    feed_in_pieces(engine, data, [20, 4000])
    assert_failed(engine, sink, 1007)


@pytest.mark.parametrize("offset", range(70))
def test_ascii_runs_end_at_the_right_byte(offset: int) -> None:
    # ASCII is skipped in blocks of 32 and 8 bytes, then bytewise: a
    # character or a bad byte after any number of ASCII bytes is seen.
    for special, valid in ((b"\xc3\xa9", True), (b"\xff", False), (b"\xc3", False)):
        text = b"a" * offset + special + b"b" * (69 - offset) + b"\xe2\x82\xac" + b"c" * 20000
        data = wire(Opcode.TEXT, text)
        engine, sink = make()
        if valid:
            feed_in_pieces(engine, data, [10])  # in two pieces: checked as it arrives
            assert sink.take_events() == [Message(text.decode())]
        else:
            # Up to the byte after the bad one, far from the frame's end.
            stop = len(data) - len(text) + offset + len(special) + 1
            feed_in_pieces(engine, data[:stop], [10])
            assert_failed(engine, sink, 1007)


def test_random_text_in_random_pieces_agrees_with_pythons_decoder() -> None:
    rng = random.Random(6455)
    alphabet = [b"a", b"Z", b" ", *VALID_SEQUENCES, *INVALID_SEQUENCES]
    for _ in range(300):
        parts = [rng.choice(alphabet[:10]) for _ in range(rng.randrange(0, 3000))]
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(alphabet))
        text = b"".join(parts)
        fragments = rng.choice([1, 1, 2, 3])
        bounds = sorted(rng.sample(range(len(text) + 1), fragments - 1)) if fragments > 1 else []
        edges = [0, *bounds, len(text)]
        data = b"".join(
            wire(
                Opcode.TEXT if i == 0 else Opcode.CONT,
                text[edges[i] : edges[i + 1]],
                fin=i == fragments - 1,
                masked=True,
            )
            for i in range(fragments)
        )
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, 6))))
        engine, sink = make()
        feed_in_pieces(engine, data, cuts)
        try:
            expected = text.decode()
        except UnicodeDecodeError:
            assert_failed(engine, sink, 1007)
        else:
            assert sink.take_events() == [Message(expected)], text


def test_binary_frame_in_pieces_is_reassembled_exactly() -> None:
    rng = random.Random(7692)
    for size in (17, 4096, 65536, 200_000):
        payload = rng.randbytes(size)
        for side in (SERVER, CLIENT):
            data = wire(Opcode.BINARY, payload, masked=side == SERVER)
            cuts = sorted(rng.sample(range(1, len(data)), 7))
            engine, sink = make(side, max_size=None)
            feed_in_pieces(engine, data, cuts)
            assert sink.take_events() == [Message(payload)]


def small_then_large_cuts(data: bytes, payload_size: int) -> list[int]:
    """Cuts giving a large frame's first sixteenth in odd little pieces, then the rest."""
    start = len(data) - payload_size
    small = [start + 1, start + 1001, start + 3003, start + 3004, start + payload_size // 20]
    return [*small, start + payload_size // 3, start + payload_size - 5]


@pytest.mark.parametrize("side", [SERVER, CLIENT])
def test_large_frame_starting_in_small_pieces_is_reassembled_exactly(side: int) -> None:
    # The first pieces of a large frame wait until its buffer is allocated:
    # they go first into it, unmasked at their own offsets in the mask.
    payload = random.Random(1).randbytes(2**20 + 3)
    data = wire(Opcode.BINARY, payload, masked=side == SERVER)
    cuts = small_then_large_cuts(data, len(payload))
    engine, sink = make(side, max_size=None)
    feed_in_pieces(engine, data[: cuts[3]], cuts[:3])
    assert engine._frame_buf is None  # under a sixteenth: no buffer of the frame's size
    feed_in_pieces(engine, data[cuts[3] :], [cut - cuts[3] for cut in cuts[4:]])
    assert sink.take_events() == [Message(payload)]


def test_large_text_frame_starting_in_small_pieces_is_decoded_exactly() -> None:
    rng = random.Random(2)
    text = b"".join(rng.choice(VALID_SEQUENCES) for _ in range(300_000))
    data = wire(Opcode.TEXT, text)
    engine, sink = make(max_size=None)
    feed_in_pieces(engine, data, small_then_large_cuts(data, len(text)))
    assert sink.take_events() == [Message(text.decode())]


def test_invalid_utf8_in_the_first_pieces_of_a_large_text_frame_fails_1007() -> None:
    text = b"a" * 2000 + b"\xc3\x28" + b"b" * 2**20
    data = wire(Opcode.TEXT, text)
    engine, sink = make(max_size=None)
    cuts = small_then_large_cuts(data, len(text))
    feed_in_pieces(engine, data[: cuts[5]], cuts[:5])  # a twentieth, then a third
    assert_failed(engine, sink, 1007)


def test_announced_large_frame_trickling_in_is_not_allocated_whole() -> None:
    engine, _ = make(max_size=None)
    data = wire(Opcode.BINARY, bytes(2**24))
    engine.receive_data(data[:100])  # a 16 MiB frame announced, 86 bytes sent
    assert engine._frame_buf is None


# --- close handshake ----------------------------------------------------------

VALID_CODES = [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    3999,
    4000,
    4999,
]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_code_is_echoed(code: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE, Close(code, "bye").serialize()))
    assert sink.take_events() == [CloseReceived(code, "bye")]
    assert sent_frames(sink) == [Frame(Opcode.CLOSE, code.to_bytes(2, "big"))]
    assert engine.state == CLOSED
    assert sink.eof_sent


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_code_fails_1002(code: int) -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE, code.to_bytes(2, "big")))
    assert_failed(engine, sink, 1002)


def test_empty_close_is_echoed_empty_and_reported_1005() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE))
    assert sink.take_events() == [CloseReceived(1005, "")]
    assert sent_frames(sink) == [Frame(Opcode.CLOSE, b"")]


def test_one_byte_close_payload_fails_1002() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE, b"\x03"))
    assert_failed(engine, sink, 1002)


def test_close_reason_invalid_utf8_fails_1007() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE, b"\x03\xe8\xff\xfe"))
    assert_failed(engine, sink, 1007)


def test_nothing_counts_after_the_close_frame() -> None:
    engine, sink = make()
    engine.receive_data(wire(Opcode.CLOSE, b"\x03\xe8") + wire(Opcode.TEXT, b"late") + b"\xff\xff")
    assert sink.take_events() == [CloseReceived(1000, "")]
    engine.receive_data(wire(Opcode.TEXT, b"later"))
    assert sink.take_events() == []


def test_local_close_waits_for_the_peer() -> None:
    engine, sink = make(CLIENT)
    engine.send_close(1001, "going")
    assert engine.state == CLOSING
    frames = sent_frames(sink, masked=True)
    assert frames == [Frame(Opcode.CLOSE, Close(1001, "going").serialize())]
    # Messages still arrive until the peer's close.
    engine.receive_data(wire(Opcode.TEXT, b"in flight", masked=False))
    engine.receive_data(wire(Opcode.CLOSE, b"\x03\xe9", masked=False))
    assert sink.take_events() == [Message("in flight"), CloseReceived(1001, "")]
    assert engine.state == CLOSED
    assert sink.take_data() == b""  # no second close frame
    assert not sink.eof_sent  # the client lets the server close TCP first


def test_no_pong_after_sending_close() -> None:
    engine, sink = make()
    engine.send_close()
    sink.take_data()
    engine.receive_data(wire(Opcode.PING, b"x"))
    assert sink.take_events() == [Ping(b"x")]
    assert sink.take_data() == b""


def test_close_reason_is_cut_to_fit_a_control_frame() -> None:
    engine, sink = make()
    engine.send_close(1000, "é" * 100)
    (frame,) = sent_frames(sink)
    assert len(frame.payload) <= 125
    assert Close.parse(frame.payload).reason == "é" * 61


@pytest.mark.parametrize("code", [999, 1004, 1006, 1015, 2000, 5000])
def test_sending_an_invalid_close_code_is_refused(code: int) -> None:
    engine, _ = make()
    with pytest.raises(ValueError):
        engine.send_close(code)
    assert engine.state == OPEN


def test_sending_after_close_raises_invalid_state() -> None:
    engine, _ = make()
    engine.send_close()
    for send in (lambda: engine.send_message("x"), engine.send_ping, lambda: engine.send_close()):
        with pytest.raises(InvalidState):
            send()


def test_eof_without_close_frame() -> None:
    engine, _ = make()
    engine.receive_eof()
    assert engine.state == CLOSED
    assert engine.close_rcvd_code == -1


# --- limits -------------------------------------------------------------------


def test_frame_over_max_size_fails_1009_before_payload() -> None:
    engine, sink = make(max_size=1000)
    header = wire(Opcode.BINARY, b"x" * 1001)[:8]  # only the header arrives
    engine.receive_data(header)
    assert_failed(engine, sink, 1009)


def test_message_over_max_size_fails_1009() -> None:
    engine, sink = make(max_size=1000)
    engine.receive_data(wire(Opcode.BINARY, b"x" * 600, fin=False))
    assert sink.take_events() == []
    engine.receive_data(wire(Opcode.CONT, b"x" * 600)[:8])
    assert_failed(engine, sink, 1009)


def test_message_of_exactly_max_size_passes() -> None:
    engine, sink = make(max_size=1000)
    engine.receive_data(wire(Opcode.BINARY, b"x" * 500, fin=False) + wire(Opcode.CONT, b"x" * 500))
    assert sink.take_events() == [Message(b"x" * 1000)]


def test_huge_declared_length_is_not_buffered() -> None:
    engine, sink = make(max_size=None)
    engine.receive_data(b"\x82\xff" + struct.pack("!Q", 2**40) + b"abcd" + b"x" * 10)
    assert engine._pending == b""  # nothing kept but parser state
    assert sink.take_events() == []


# --- sending ------------------------------------------------------------------


def test_send_text_and_binary() -> None:
    engine, sink = make()
    engine.send_message("héllo")
    engine.send_message(bytearray(b"\x00\x01"))
    engine.send_message(memoryview(b"view"))
    assert sent_frames(sink) == [
        Frame(Opcode.TEXT, "héllo".encode()),
        Frame(Opcode.BINARY, b"\x00\x01"),
        Frame(Opcode.BINARY, b"view"),
    ]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 16383, 16384, 65535, 65536, 100000, 2**24 + 1])
@pytest.mark.parametrize("side", [SERVER, CLIENT])
def test_send_lengths_parse_back(size: int, side: int) -> None:
    # Every length encoding, each side of the size where the payload is
    # written apart from its header, masked by the client.
    payload = random.Random(size).randbytes(size)
    engine, sink = make(side)
    engine.send_message(payload)
    assert sent_frames(sink, masked=side == CLIENT) == [Frame(Opcode.BINARY, payload)]


@pytest.mark.parametrize("side", [SERVER, CLIENT])
def test_send_views_of_any_format_as_their_bytes(side: int) -> None:
    words = array.array("i", [1, -2, 3])
    engine, sink = make(side)
    engine.send_message(memoryview(words))
    assert sent_frames(sink, masked=side == CLIENT) == [Frame(Opcode.BINARY, words.tobytes())]


def test_max_fragment_size_splits_messages() -> None:
    engine, sink = make(max_fragment_size=4)
    engine.send_message("abcdefghij")
    assert sent_frames(sink) == [
        Frame(Opcode.TEXT, b"abcd", fin=False),
        Frame(Opcode.CONT, b"efgh", fin=False),
        Frame(Opcode.CONT, b"ij"),
    ]


def test_fragmented_send_rules() -> None:
    engine, sink = make()
    with pytest.raises(InvalidState):
        engine.send_data(Opcode.CONT, b"x", True)
    engine.send_data(Opcode.TEXT, b"a", False)
    with pytest.raises(InvalidState):
        engine.send_data(Opcode.BINARY, b"b", True)
    engine.send_ping(b"between")
    engine.send_data(Opcode.CONT, b"b", True)
    assert sent_frames(sink) == [
        Frame(Opcode.TEXT, b"a", fin=False),
        Frame(Opcode.PING, b"between"),
        Frame(Opcode.CONT, b"b"),
    ]


def test_control_payload_over_125_bytes_is_refused() -> None:
    engine, _ = make()
    with pytest.raises(ValueError):
        engine.send_ping(b"x" * 126)


def test_two_engines_talk() -> None:
    server, server_sink = make(SERVER)
    client, client_sink = make(CLIENT)
    client.send_message("ping?")
    server.receive_data(client_sink.take_data())
    assert server_sink.take_events() == [Message("ping?")]
    server.send_message(b"pong!")
    client.receive_data(server_sink.take_data())
    assert client_sink.take_events() == [Message(b"pong!")]
    client.send_close(1000, "done")
    server.receive_data(client_sink.take_data())
    client.receive_data(server_sink.take_data())
    assert server_sink.take_events() == [CloseReceived(1000, "done")]
    assert client_sink.take_events() == [CloseReceived(1000, "")]
    assert server.state == client.state == CLOSED


class DeferringSink(EventSink):
    def on_fail(self, exc: object) -> bool:
        super().on_fail(exc)  # type: ignore[arg-type]
        return True


def test_sink_may_defer_the_close_frame_of_a_failure() -> None:
    sink = DeferringSink()
    engine = Engine(SERVER, sink)
    engine.receive_data(
        wire(Opcode.TEXT, b"first") + wire(3, b"bad") + wire(Opcode.TEXT, b"ignored")
    )
    assert sink.take_events() == [Message("first"), Failed(1002, "reserved opcode 3")]
    assert sink.take_data() == b""
    engine.send_message("first")  # a reply to what came before the bad frame
    engine.receive_data(wire(Opcode.TEXT, b"after"))  # input is over
    assert sink.take_events() == []
    engine.flush_failure()
    frames = sent_frames(sink)
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert Close.parse(frames[1].payload).code == 1002
    assert engine.state == CLOSED and sink.eof_sent
    engine.flush_failure()  # idempotent
    assert sink.take_data() == b""


class DerivedSink(SinkBase):
    """A sink the compiled engine calls in C: same events as a duck-typed one."""

    def __init__(self) -> None:
        self.events = EventSink()

    def write(self, data: bytes) -> None:
        self.events.write(data)

    def on_message(self, message: str | bytes) -> None:
        self.events.on_message(message)

    def __getattr__(self, name: str) -> object:  # the other callbacks
        return getattr(self.events, name)


@pytest.mark.parametrize("derived", [False, True], ids=["duck-typed", "SinkBase"])
def test_sinks_derived_from_sinkbase_get_the_same_calls(derived: bool) -> None:
    sink: DerivedSink | EventSink = DerivedSink() if derived else EventSink()
    engine = Engine(SERVER, sink)  # type: ignore[arg-type]
    events = sink.events if isinstance(sink, DerivedSink) else sink
    big = bytes(range(256)) * 300  # written apart from its header
    engine.receive_data(
        wire(Opcode.TEXT, "héllo".encode()) + wire(Opcode.BINARY, big) + wire(Opcode.PING, b"p")
    )
    engine.send_message(big)
    engine.send_message("back")
    assert events.take_events() == [Message("héllo"), Message(big), Ping(b"p")]
    assert [(f.opcode, f.payload) for f in sent_frames(events)] == [
        (Opcode.PONG, b"p"),
        (Opcode.BINARY, big),
        (Opcode.TEXT, b"back"),
    ]
    engine.release()
    engine.receive_data(wire(Opcode.TEXT, b"gone"))
    assert events.take_events() == []


def test_sinkbase_methods_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError):
        SinkBase().write(b"")
    with pytest.raises(NotImplementedError):
        SinkBase().on_message("")

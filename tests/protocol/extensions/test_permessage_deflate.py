"""permessage-deflate: negotiation tables, the data path and decompression bombs.

Every test runs with the standard library's zlib and with zlib-ng's.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from rapidws.exceptions import NegotiationError
from rapidws.protocol.engine import CLIENT, CLOSED, SERVER, Engine
from rapidws.protocol.events import EventSink, Failed, Message
from rapidws.protocol.extensions import permessage_deflate
from rapidws.protocol.extensions.base import ExtensionParameter
from rapidws.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    set_zlib_backend,
)
from rapidws.protocol.frames import Close, Frame, Opcode
from rapidws.protocol.handshake import Accepted, ClientHandshake, ServerHandshake
from rapidws.protocol.headers import parse_extension

P = list[ExtensionParameter]


def zlib_ng() -> ModuleType:
    return pytest.importorskip("zlib_ng.zlib_ng")


@pytest.fixture(autouse=True, params=["zlib", "zlib-ng"])
def backend(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The codec these tests run with; zlib again afterwards."""
    module = zlib if request.param == "zlib" else zlib_ng()
    set_zlib_backend(module)
    try:
        yield module
    finally:
        set_zlib_backend(zlib)


def test_the_backend_is_the_one_set(backend: ModuleType) -> None:
    ext = PerMessageDeflate(False, False, 15, 15)
    data, rsv = ext.encode(Opcode.TEXT, b"hello" * 100, True)
    assert rsv and type(ext._encoder).__module__ == type(backend.compressobj()).__module__
    assert zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") == b"hello" * 100


def test_set_zlib_backend_rejects_what_is_not_zlib_like() -> None:
    with pytest.raises(TypeError):
        set_zlib_backend(pytest)
    assert permessage_deflate._backend is not pytest


def params(header: str) -> P:
    """Parameters of a one-extension header value, e.g. ``"x; a=1"``."""
    ((_, result),) = parse_extension("permessage-deflate" + (f"; {header}" if header else ""))
    return result


# --- server negotiation --------------------------------------------------------

SERVER_CASES = [
    # (factory options, client offer, response, (remote nct, local nct, remote bits, local bits))
    # Defaults: we compress with 12 bits and say so; a client that offers
    # client_max_window_bits is asked to use 12 too.
    ({}, "", "server_max_window_bits=12", (False, False, 15, 12)),
    (
        {},
        "client_max_window_bits",
        "server_max_window_bits=12; client_max_window_bits=12",
        (False, False, 12, 12),
    ),
    (
        {},
        "server_no_context_takeover",
        "server_no_context_takeover; server_max_window_bits=12",
        (False, True, 15, 12),
    ),
    (
        {},
        "client_no_context_takeover",
        "client_no_context_takeover; server_max_window_bits=12",
        (True, False, 15, 12),
    ),
    ({}, "server_max_window_bits=10", "server_max_window_bits=10", (False, False, 15, 10)),
    ({}, "server_max_window_bits=8", "server_max_window_bits=8", (False, False, 15, 8)),
    (
        {},
        "client_max_window_bits=9",
        "server_max_window_bits=12; client_max_window_bits=9",
        (False, False, 9, 12),
    ),
    # The client's own choice, on request.
    (
        {"client_max_window_bits": None},
        "client_max_window_bits",
        "server_max_window_bits=12",
        (False, False, 15, 12),
    ),
    (
        {"client_max_window_bits": 10, "window_bits": 15},
        "client_max_window_bits",
        "client_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        {"client_max_window_bits": 10, "window_bits": 15},
        "client_max_window_bits=12",
        "client_max_window_bits=10",
        (False, False, 10, 15),
    ),
    # A client that doesn't offer client_max_window_bits can't be limited.
    ({"client_max_window_bits": 10, "window_bits": 15}, "", "", (False, False, 15, 15)),
    (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        "",
        "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        (True, True, 15, 12),
    ),
    ({"server_max_window_bits": 11}, "", "server_max_window_bits=11", (False, False, 15, 11)),
    (
        {"server_max_window_bits": 11},
        "server_max_window_bits=9",
        "server_max_window_bits=9",
        (False, False, 15, 9),
    ),
    ({"window_bits": 15}, "", "", (False, False, 15, 15)),
]


@pytest.mark.parametrize(("options", "offer", "response", "expected"), SERVER_CASES)
def test_server_accepts(
    options: dict[str, object], offer: str, response: str, expected: tuple[bool, bool, int, int]
) -> None:
    factory = ServerPerMessageDeflateFactory(**options)  # type: ignore[arg-type]
    response_params, ext = factory.process_request_params(params(offer), [])
    assert response_params == params(response)
    assert isinstance(ext, PerMessageDeflate)
    assert (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    ) == expected


@pytest.mark.parametrize(
    "offer",
    [
        "server_max_window_bits",  # needs a value
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=010",
        "server_max_window_bits=abc",
        "client_max_window_bits=0",
        "server_no_context_takeover=1",
        "client_no_context_takeover; client_no_context_takeover",
        "unknown_parameter",
    ],
)
def test_server_declines_malformed_offers(offer: str) -> None:
    with pytest.raises(NegotiationError):
        ServerPerMessageDeflateFactory().process_request_params(params(offer), [])


def test_server_picks_the_first_acceptable_offer() -> None:
    handshake = ServerHandshake(extensions=[ServerPerMessageDeflateFactory()])
    client = ClientHandshake(host="h", path="/")
    request = client.request
    request.headers["Sec-WebSocket-Extensions"] = (
        "permessage-deflate; server_max_window_bits=99, "
        "permessage-deflate; client_no_context_takeover, "
        "permessage-deflate"
    )
    result = handshake.accept(request)
    assert result.response.status_code == 101
    assert result.response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"
    )


# --- client negotiation --------------------------------------------------------

CLIENT_CASES = [
    # (factory options, request params, server response, (remote nct, local nct, remote, local))
    ({}, "client_max_window_bits", "", (False, False, 15, 12)),
    ({}, "client_max_window_bits", "client_max_window_bits=9", (False, False, 15, 9)),
    ({}, "client_max_window_bits", "server_max_window_bits=10", (False, False, 10, 12)),
    ({}, "client_max_window_bits", "server_no_context_takeover", (True, False, 15, 12)),
    ({}, "client_max_window_bits", "client_no_context_takeover", (False, True, 15, 12)),
    (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        "server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
        "server_no_context_takeover",
        (True, True, 15, 12),
    ),
    (
        {"server_max_window_bits": 10, "client_max_window_bits": 8},
        "server_max_window_bits=10; client_max_window_bits=8",
        "server_max_window_bits=9; client_max_window_bits=8",
        (False, False, 9, 8),
    ),
]


@pytest.mark.parametrize(("options", "request_params", "response", "expected"), CLIENT_CASES)
def test_client_accepts(
    options: dict[str, object],
    request_params: str,
    response: str,
    expected: tuple[bool, bool, int, int],
) -> None:
    factory = ClientPerMessageDeflateFactory(**options)  # type: ignore[arg-type]
    assert factory.get_request_params() == params(request_params)
    ext = factory.process_response_params(params(response), [])
    assert isinstance(ext, PerMessageDeflate)
    assert (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    ) == expected


@pytest.mark.parametrize(
    ("options", "response"),
    [
        ({"server_no_context_takeover": True}, ""),  # requested, not granted
        ({"server_max_window_bits": 10}, ""),
        ({"server_max_window_bits": 10}, "server_max_window_bits=11"),
        ({"client_max_window_bits": None}, "client_max_window_bits=10"),  # not offered
        ({"client_max_window_bits": 10}, "client_max_window_bits=11"),
        ({}, "client_max_window_bits"),  # needs a value in a response
        ({}, "server_max_window_bits=20"),
        ({}, "mystery=1"),
    ],
)
def test_client_fails_on_unacceptable_responses(options: dict[str, object], response: str) -> None:
    factory = ClientPerMessageDeflateFactory(**options)  # type: ignore[arg-type]
    with pytest.raises(NegotiationError):
        factory.process_response_params(params(response), [])


def test_full_handshake_negotiates_deflate() -> None:
    client = ClientHandshake(host="h", path="/", extensions=[ClientPerMessageDeflateFactory()])
    server = ServerHandshake(extensions=[ServerPerMessageDeflateFactory()])
    accept = server.accept(client.request)
    result = client.check(accept.response)
    assert isinstance(result, Accepted)
    assert [ext.name for ext in result.extensions] == ["permessage-deflate"]


# --- data path -----------------------------------------------------------------


def pair(
    server_options: dict[str, object] | None = None,
    client_options: dict[str, object] | None = None,
    max_size: int | None = 2**20,
) -> tuple[Engine, EventSink, Engine, EventSink]:
    client_factory = ClientPerMessageDeflateFactory(**(client_options or {}))  # type: ignore[arg-type]
    server_factory = ServerPerMessageDeflateFactory(**(server_options or {}))  # type: ignore[arg-type]
    response, server_ext = server_factory.process_request_params(
        client_factory.get_request_params(), []
    )
    client_ext = client_factory.process_response_params(response, [])
    server_sink, client_sink = EventSink(), EventSink()
    server = Engine(SERVER, server_sink, extensions=[server_ext], max_size=max_size)
    client = Engine(CLIENT, client_sink, extensions=[client_ext], max_size=max_size)
    return server, server_sink, client, client_sink


def frames_of(data: bytes) -> list[tuple[Frame, bool]]:
    result = []
    while data:
        parsed = Frame.parse(data)
        assert parsed is not None
        frame, masked, consumed = parsed
        result.append((frame, masked))
        data = data[consumed:]
    return result


JSON = b'{"type": "update", "id": 12345, "values": [1, 2, 3, 4, 5], "ok": true}' * 20


def test_compressed_message_round_trip_sets_rsv1_and_shrinks() -> None:
    server, server_sink, client, client_sink = pair()
    client.send_message(JSON.decode())
    wire = client_sink.take_data()
    ((frame, _),) = frames_of(wire)
    assert frame.rsv1 and len(frame.payload) < len(JSON) // 5
    assert not frame.payload.endswith(b"\x00\x00\xff\xff")  # the tail is removed
    server.receive_data(wire)
    assert server_sink.take_events() == [Message(JSON.decode())]


def test_large_compressed_frame_arriving_in_small_pieces_inflates() -> None:
    # Incompressible: the compressed frame is about as large as the message,
    # and its first sixteenth comes in little pieces before the rest.
    payload = random.Random(3).randbytes(300_000)
    server, server_sink, client, client_sink = pair()
    client.send_message(payload)
    wire = client_sink.take_data()
    ((frame, _),) = frames_of(wire)
    assert frame.rsv1 and len(frame.payload) > 200_000
    for start, stop in [(0, 20), (20, 1021), (1021, 3000), (3000, 150_000), (150_000, None)]:
        server.receive_data(wire[start:stop])
    assert server_sink.take_events() == [Message(payload)]


def test_small_messages_go_uncompressed() -> None:
    server, server_sink, client, client_sink = pair()
    client.send_message(b"tiny")
    wire = client_sink.take_data()
    ((frame, _),) = frames_of(wire)
    assert not frame.rsv1 and frame.payload == b"tiny"
    server.receive_data(wire)
    assert server_sink.take_events() == [Message(b"tiny")]


def test_per_message_opt_out() -> None:
    server, server_sink, client, client_sink = pair()
    client.send_message(JSON, raw=True)
    wire = client_sink.take_data()
    ((frame, _),) = frames_of(wire)
    assert not frame.rsv1 and frame.payload == JSON
    server.receive_data(wire)
    assert server_sink.take_events() == [Message(JSON)]


def test_fragmented_compressed_messages_both_ways() -> None:
    server, server_sink, client, client_sink = pair()
    client.send_data(Opcode.TEXT, JSON[:500], False)
    client.send_data(Opcode.CONT, JSON[500:1000], False)
    client.send_data(Opcode.CONT, JSON[1000:], True)
    wire = client_sink.take_data()
    frames = [frame for frame, _ in frames_of(wire)]
    assert [f.rsv1 for f in frames] == [True, False, False]  # RSV1 on the first frame only
    server.receive_data(wire)
    assert server_sink.take_events() == [Message(JSON.decode())]
    server.send_message(JSON)  # and back, split by max_fragment_size
    server.max_fragment_size = 300
    server.send_message(JSON)
    client.receive_data(server_sink.take_data())
    assert client_sink.take_events() == [Message(JSON), Message(JSON)]


def test_control_frames_are_never_compressed() -> None:
    _, _, client, client_sink = pair()
    client.send_ping(b"x" * 100)
    client.send_close(1000, "y" * 100)
    for frame, _ in frames_of(client_sink.take_data()):
        assert not frame.rsv1
        assert frame.payload.endswith(b"x" * 100) or frame.payload.endswith(b"y" * 100)


@pytest.mark.parametrize("takeover", [True, False])
def test_context_takeover(takeover: bool) -> None:
    options = {} if takeover else {"server_no_context_takeover": True}
    server, server_sink, client, client_sink = pair(server_options=options)
    sizes = []
    for _ in range(3):
        server.send_message(JSON)
        wire = server_sink.take_data()
        sizes.append(len(wire))
        client.receive_data(wire)
    assert client_sink.take_events() == [Message(JSON)] * 3
    if takeover:
        assert sizes[1] < sizes[0] // 2  # the second message refers to the first
    else:
        assert sizes[0] == sizes[1] == sizes[2]


@pytest.mark.parametrize("bits", [8, 9, 15])
def test_every_window_size_round_trips(bits: int) -> None:
    server, server_sink, client, client_sink = pair(
        server_options={"server_max_window_bits": bits, "client_max_window_bits": bits},
        client_options={"server_max_window_bits": bits, "client_max_window_bits": bits},
    )
    payload = bytes(range(256)) * 64 + JSON
    for _ in range(2):
        server.send_message(payload)
        client.receive_data(server_sink.take_data())
        client.send_message(payload)
        server.receive_data(client_sink.take_data())
    assert client_sink.take_events() == [Message(payload)] * 2
    assert server_sink.take_events() == [Message(payload)] * 2


def test_rsv1_on_continuation_fails_1002() -> None:
    server, server_sink, _, _ = pair()
    data = Frame(Opcode.TEXT, b"a", fin=False).serialize(mask=True)
    data += Frame(Opcode.CONT, b"b", rsv1=True).serialize(mask=True)
    server.receive_data(data)
    assert server_sink.take_events() == [Failed(1002, "RSV1 set on a continuation frame")]


def test_corrupt_compressed_data_fails_1007() -> None:
    server, server_sink, _, _ = pair()
    server.receive_data(Frame(Opcode.BINARY, b"\xff\xff\xff\xff", rsv1=True).serialize(mask=True))
    events = server_sink.take_events()
    assert isinstance(events[0], Failed) and events[0].code == 1007


def test_corrupt_large_compressed_frame_arriving_in_small_pieces_fails_1007() -> None:
    # Its first sixteenth waits before the frame's buffer is made: the
    # corrupt stream (a reserved block type) is still failed, not inflated.
    payload = b"\xff" + random.Random(4).randbytes(300_000)
    wire = Frame(Opcode.BINARY, payload, rsv1=True).serialize(mask=True)
    server, server_sink, _, _ = pair()
    for start, stop in [(0, 20), (20, 1021), (1021, 3000), (3000, 150_000), (150_000, None)]:
        server.receive_data(wire[start:stop])
    events = server_sink.take_events()
    assert len(events) == 1 and isinstance(events[0], Failed) and events[0].code == 1007
    assert server.state == CLOSED


def test_decompression_bomb_is_stopped_with_1009_and_bounded_memory() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * 10_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < 20_000  # 10 MB of zeros in a few KB
    server, server_sink, _, _ = pair(max_size=2**20)
    frame = Frame(Opcode.BINARY, bomb, rsv1=True).serialize(mask=True)
    tracemalloc.start()
    try:
        server.receive_data(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    events = server_sink.take_events()
    assert isinstance(events[0], Failed) and events[0].code == 1009
    assert server.state == CLOSED
    closes = [f for f, _ in frames_of(server_sink.take_data()) if f.opcode == Opcode.CLOSE]
    assert Close.parse(closes[0].payload).code == 1009
    assert peak < 3 * 2**20  # about max_size, never the 10 MB


def test_bomb_split_across_fragments_is_stopped() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * 3_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    server, server_sink, _, _ = pair(max_size=2**20)
    third = len(bomb) // 3
    server.receive_data(
        Frame(Opcode.BINARY, bomb[:third], fin=False, rsv1=True).serialize(mask=True)
        + Frame(Opcode.CONT, bomb[third : 2 * third], fin=False).serialize(mask=True)
        + Frame(Opcode.CONT, bomb[2 * third :]).serialize(mask=True)
    )
    events = server_sink.take_events()
    assert isinstance(events[0], Failed) and events[0].code == 1009


def test_message_of_exactly_max_size_inflates() -> None:
    server, server_sink, client, client_sink = pair(max_size=100_000)
    client.send_message(b"\x01" * 100_000)
    server.receive_data(client_sink.take_data())
    assert server_sink.take_events() == [Message(b"\x01" * 100_000)]


def test_compressor_is_created_lazily() -> None:
    server, _, _, _ = pair()
    (ext,) = server._extensions
    assert isinstance(ext, PerMessageDeflate)
    assert ext._encoder is None and ext._decoder is None

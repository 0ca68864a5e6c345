"""rapidws.broadcast over loopback: both APIs, wire formats, skips and slow receivers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rapidws
from rapidws.broadcast import SLOW_CLOSE_REASON, BroadcastResult, broadcast
from rapidws.io.transport import BaseConnection
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.engine import (
    CLIENT,
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    SERVER,
    Engine,
    server_frames,
)
from rapidws.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from rapidws.protocol.frames import Frame, Opcode
from rapidws.protocol.pipeline import Stage

from .asyncio.helpers import REQUEST, RawClient, port_of

TEXT = "broadcast " * 40  # 400 characters: compressible, over the deflate minimum
DATA = bytes(range(256)) * 2


@contextlib.asynccontextmanager
async def server(**kwargs: Any) -> AsyncIterator[tuple[str, list[rapidws.ServerConnection]]]:
    """A server whose handler keeps its connections open and lists them."""
    conns: list[rapidws.ServerConnection] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        conns.append(ws)
        await ws.wait_closed()

    async with rapidws.serve(handler, "127.0.0.1", 0, **kwargs) as srv:
        yield f"ws://127.0.0.1:{port_of(srv)}", conns


async def settle(conns: list[Any], n: int) -> None:
    """Wait until the handlers of ``n`` connections have run."""
    while len(conns) < n:
        await asyncio.sleep(0)  # handler tasks start on the next loop iterations


# -- the wire format ------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 7, 400, 1000])
def test_server_frames_match_the_reference_codec(limit: int) -> None:
    payload = TEXT.encode()
    data = server_frames(OP_TEXT, payload, 0x40, limit)
    frames = []
    while data:
        parsed = Frame.parse(data)
        assert parsed is not None
        frame, _, consumed = parsed
        frames.append(frame)
        data = data[consumed:]
    assert b"".join(f.payload for f in frames) == payload
    assert frames[0].opcode == Opcode.TEXT and frames[0].rsv1
    assert all(f.opcode == Opcode.CONT and not f.rsv1 for f in frames[1:])
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(len(f.payload) <= (limit or len(payload)) for f in frames)


class _Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def test_send_encoded_keeps_the_rules_of_send_message() -> None:
    sink = _Sink()
    engine = Engine(SERVER, sink, mode="text")
    frames = server_frames(OP_TEXT, b"hi", 0, 0)
    engine.send_encoded(OP_TEXT, frames)
    assert sink.written == [frames]
    with pytest.raises(TypeError):
        engine.send_encoded(OP_BINARY, server_frames(OP_BINARY, b"x", 0, 0))
    engine.send_data(OP_TEXT, b"a", fin=False)
    with pytest.raises(rapidws.InvalidState):  # RFC 6455 5.4: no interleaving
        engine.send_encoded(OP_TEXT, frames)
    engine.send_data(OP_CONT, b"b")
    with pytest.raises(ValueError):  # a client masks each frame
        Engine(CLIENT, _Sink()).send_encoded(OP_TEXT, frames)


def test_deflate_encodes_a_whole_message_alone_as_encode_would() -> None:
    shared = PerMessageDeflate(False, True, 15, 12)
    assert shared.broadcast_key() is not None
    assert shared.broadcast_key() == PerMessageDeflate(True, True, 10, 12).broadcast_key()
    assert shared.broadcast_key() != PerMessageDeflate(False, True, 15, 10).broadcast_key()
    assert PerMessageDeflate(False, False, 15, 12).broadcast_key() is None
    payload = TEXT.encode()
    assert shared.encode_message(OP_TEXT, payload) == shared.encode(OP_TEXT, payload, True)
    assert shared.encode_message(OP_TEXT, b"short") == (b"short", 0)
    data, rsv = shared.encode_message(OP_TEXT, payload)
    assert rsv == 0x40
    assert zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") == payload


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        broadcast([], 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        broadcast([], "x", policy="wait")  # type: ignore[arg-type]
    assert broadcast([], "x") == BroadcastResult()


# -- every receiver gets it ---------------------------------------------------------


async def test_async_api_every_receiver_gets_each_message_exactly() -> None:
    async with server() as (uri, conns):
        clients = [
            await rapidws.connect(uri, compression=None if i % 2 else "deflate") for i in range(6)
        ]
        await settle(conns, 6)
        for message in (TEXT, DATA, "", b"", "é" * 100):
            result = broadcast(conns, message)
            assert result.sent == 6 and result.skipped == 0
            for client in clients:
                assert await client.recv() == message
        for client in clients:
            await client.close()


async def test_compression_groups_compress_once_per_setting() -> None:
    nct = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
    nct10 = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, server_max_window_bits=10
    )
    async with server() as (uri, conns):
        clients = [
            *[await rapidws.connect(uri, extensions=[nct]) for _ in range(3)],
            *[await rapidws.connect(uri, extensions=[nct10]) for _ in range(2)],
            *[await rapidws.connect(uri) for _ in range(2)],  # context takeover
            *[await rapidws.connect(uri, compression=None) for _ in range(2)],
        ]
        await settle(conns, 9)
        for _ in range(3):  # context takeover: each message builds on the last
            result = broadcast(conns, TEXT)
            assert result.sent == 9 and result.sent_alone == 2
            assert result.encodings == 3  # 15 bits, 10 bits, plain
            for client in clients:
                assert await client.recv() == TEXT
        result = broadcast(conns, "tiny")  # under min_size: plain for the deflate groups too
        assert result.sent == 9 and result.encodings == 1
        for client in clients:
            assert await client.recv() == "tiny"
        result = broadcast(conns, TEXT, compress=False)
        assert result.sent == 9 and result.sent_alone == 0 and result.encodings == 1
        for client in clients:
            assert await client.recv() == TEXT
        for client in clients:
            await client.close()


async def test_the_shared_deflate_frame_on_the_wire() -> None:
    request = REQUEST.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
    )
    async with server() as (uri, conns):
        port = int(uri.rsplit(":", 1)[1])
        raws = [await RawClient.open(port, request) for _ in range(2)]
        await settle(conns, 2)
        for _ in range(2):
            assert broadcast(conns, TEXT).encodings == 1
            wire = []
            for raw, _response in raws:
                frame = await raw.read_frame()
                assert frame is not None and frame.rsv1 and frame.opcode == Opcode.TEXT
                inflated = zlib.decompressobj(-15).decompress(frame.payload + b"\0\0\xff\xff")
                assert inflated == TEXT.encode()
                wire.append(frame.payload)
            assert wire[0] == wire[1]
        for raw, _ in raws:
            raw.close()


async def test_max_fragment_size_makes_its_own_group() -> None:
    async with server(compression=None) as (uri, conns):
        clients = [await rapidws.connect(uri) for _ in range(3)]
        await settle(conns, 3)
        assert conns[0].engine is not None
        conns[0].engine.max_fragment_size = 50
        result = broadcast(conns, DATA)
        assert result.sent == 3 and result.encodings == 2
        for client in clients:
            assert await client.recv() == DATA
            await client.close()


async def test_a_burst_leaves_in_order_in_few_writes() -> None:
    async with server(compression=None) as (uri, conns):
        clients = [await rapidws.connect(uri) for _ in range(3)]
        await settle(conns, 3)
        for i in range(300):  # without yielding: corked, then flushed together
            assert broadcast(conns, f"{i:0100}").sent == 3
            assert all(len(c._wbuf or ()) * 102 <= c.write_high for c in conns)
        for client in clients:
            assert [await client.recv() for _ in range(300)] == [f"{i:0100}" for i in range(300)]
            await client.close()


async def test_corked_broadcasts_keep_order_across_loop_iterations() -> None:
    # Each connection corks in a list of its own, kept from one broadcast to
    # the next: a burst grows it, a lone message reuses it, and what the
    # connection writes itself meanwhile goes after what was broadcast before.
    async with server(compression=None) as (uri, conns):
        clients = [await rapidws.connect(uri) for _ in range(2)]
        await settle(conns, 2)
        first: list[str] = []  # what the first client should get
        sent = 0
        for burst in (3, 1, 1, 4, 1):
            for _ in range(burst):
                assert broadcast(conns, f"b{sent}").sent == 2
                first.append(f"b{sent}")
                sent += 1
            assert all(c._wbuf is not None and len(c._wbuf) == burst for c in conns)
            await conns[0].send("own")  # corked too: after the burst
            first.append("own")
            await asyncio.sleep(0)  # the flush runs
            assert all(c._wbuf is None for c in conns)
        assert [await clients[0].recv() for _ in first] == first
        assert [await clients[1].recv() for _ in range(sent)] == [f"b{i}" for i in range(sent)]
        for client in clients:
            await client.close()


async def test_cork_false_writes_at_once() -> None:
    async with server(compression=None) as (uri, conns):
        clients = [await rapidws.connect(uri) for _ in range(2)]
        await settle(conns, 2)
        for i in range(50):
            assert broadcast(conns, f"{i}", cork=False).sent == 2
            assert all(c._wbuf is None for c in conns)  # nothing waits
        for client in clients:
            assert [await client.recv() for _ in range(50)] == [f"{i}" for i in range(50)]
            await client.close()


class Collect(Listener):
    def __init__(self, conns: list[ListenerConnection], relay: bool) -> None:
        self.conns = conns
        self.relay = relay

    def on_open(self, conn: ListenerConnection) -> None:
        self.conns.append(conn)

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        if self.relay:  # from a callback: nothing awaited
            self.result = broadcast(self.conns, data)


async def test_callback_api_and_both_apis_mixed() -> None:
    listeners: list[ListenerConnection] = []
    relay = Collect(listeners, relay=True)
    factory_calls = iter([relay, *(Collect(listeners, False) for _ in range(3))])
    async with (
        serve_listener(lambda request: next(factory_calls), "127.0.0.1", 0) as srv,
        server() as (uri, conns),
    ):
        luri = f"ws://127.0.0.1:{port_of(srv)}"
        lclients = [await rapidws.connect(luri) for _ in range(4)]
        aclients = [await rapidws.connect(uri) for _ in range(2)]
        await settle(conns, 2)
        await lclients[0].send("from a callback")
        for client in lclients:
            assert await client.recv() == "from a callback"
        assert relay.result.sent == 4
        result = broadcast([*listeners, *conns], DATA)
        assert result.sent == 6
        for client in [*lclients, *aclients]:
            assert await client.recv() == DATA
            await client.close()


async def test_client_side_broadcast_masks_per_connection() -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            received.put_nowait(message)

    async with rapidws.serve(handler, "127.0.0.1", 0) as srv:
        uri = f"ws://127.0.0.1:{port_of(srv)}"
        clients = [await rapidws.connect(uri) for _ in range(3)]
        result = broadcast(clients, TEXT)
        assert result.sent == 3 and result.sent_alone == 3 and result.encodings == 0
        assert [await received.get() for _ in range(3)] == [TEXT] * 3
        for client in clients:
            await client.close()


# -- skipped connections ------------------------------------------------------------


async def test_mode_closed_busy_and_unopened_connections_are_skipped() -> None:
    async with server(mode="text") as (turi, tconns), server() as (uri, conns):
        text_only = await rapidws.connect(turi)
        clients = [await rapidws.connect(uri) for _ in range(3)]
        await settle(tconns, 1)
        await settle(conns, 3)
        port = int(uri.rsplit(":", 1)[1])
        pending, _ = await RawClient.open(port, request=None)  # no handshake yet
        await clients[0].close()
        await conns[0].wait_closed()
        busy = conns[1].engine
        assert busy is not None
        busy.send_data(OP_TEXT, b"frag", fin=False)
        unopened = [c for c in conns[0].server.connections if c not in conns]  # type: ignore[attr-defined]
        every: list[BaseConnection] = [*tconns, *conns, *unopened]
        result = broadcast(every, DATA)
        assert (result.sent, result.skipped_mode, result.skipped_closed, result.skipped_busy) == (
            1,
            1,
            2,
            1,
        )
        result = broadcast(every, "text")
        assert (result.sent, result.skipped_mode, result.skipped_busy) == (2, 0, 1)
        busy.send_data(OP_CONT, b"mented")
        assert await text_only.recv() == "text"
        assert await clients[1].recv() == "fragmented"
        assert await clients[2].recv() == DATA
        assert await clients[2].recv() == "text"
        pending.close()
        for client in [text_only, *clients]:
            await client.close()


async def test_a_failing_write_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Stage):
        def outbound(self, pipe: Any, item: Any) -> None:
            raise RuntimeError("broken stage")

    async with server(stages=[Broken]) as (uri, conns):
        client = await rapidws.connect(uri)
        await settle(conns, 1)
        with caplog.at_level(logging.WARNING, logger="rapidws"):
            result = broadcast(conns, "x")
        assert result.failed == 1 and result.skipped == 1
        assert "broken stage" in caplog.text
        with pytest.raises(TypeError):
            broadcast([object()], "x")  # type: ignore[list-item]
        await client.close()


# -- slow receivers -------------------------------------------------------------------


async def never_reading(port: int) -> tuple[RawClient, socket.socket]:
    """A raw client with a tiny receive buffer that never reads after the handshake."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    raw = RawClient(reader, writer)
    writer.write(REQUEST)
    await raw.read_response()
    return raw, sock


async def slow_setup(
    uri: str, conns: list[rapidws.ServerConnection]
) -> tuple[RawClient, rapidws.ClientConnection, rapidws.ServerConnection]:
    port = int(uri.rsplit(":", 1)[1])
    raw, _ = await never_reading(port)
    await settle(conns, 1)
    slow = conns[0]
    assert slow.transport is not None
    slow.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    good = await rapidws.connect(uri)
    await settle(conns, 2)
    return raw, good, slow


async def test_a_slow_receiver_is_skipped_without_holding_the_others() -> None:
    big = b"x" * 16384
    limit = 16384
    async with server(compression=None, write_limit=limit, max_size=None) as (uri, conns):
        raw, good, slow = await slow_setup(uri, conns)
        assert slow.transport is not None
        sent = skipped = 0
        for _ in range(200):
            result = broadcast(conns, big)
            assert result.sent + result.skipped_slow == 2
            sent += result.sent
            skipped += result.skipped_slow
            assert await good.recv() == big  # the good one gets every message, at once
            # Memory: what the server holds for the slow one stays bounded.
            assert slow.transport.get_write_buffer_size() <= limit + len(big) + 14
        assert skipped > 150  # skipped from early on...
        assert sent == 400 - skipped  # ...and nothing else was
        assert slow.state == rapidws.State.OPEN
        raw.close()
        await good.close()


async def test_policy_close_fails_a_slow_receiver_with_1008() -> None:
    big = b"x" * 16384
    async with server(compression=None, write_limit=16384, max_size=None) as (uri, conns):
        raw, good, slow = await slow_setup(uri, conns)
        assert slow.transport is not None
        closed = 0
        for _ in range(100):
            result = broadcast(conns, big, policy="close")
            closed += result.closed_slow
            assert await good.recv() == big
            if closed:
                break
        assert closed == 1
        assert slow.state == rapidws.State.CLOSING  # its close frame waits for it
        held = slow.transport.get_write_buffer_size() if slow.transport else 0
        for _ in range(20):  # gone: skipped, nothing more buffered for it
            result = broadcast(conns, big, policy="close")
            assert (result.sent, result.skipped_closed) == (1, 1)
            assert await good.recv() == big
        assert (slow.transport.get_write_buffer_size() if slow.transport else 0) <= held
        close = await raw.read_close()  # reading at last, it finds the close frame
        assert (close.code, close.reason) == (1008, SLOW_CLOSE_REASON)
        raw.close()
        await slow.wait_closed()
        await good.close()


async def test_policy_close_tolerates_up_to_close_after() -> None:
    big = b"x" * 16384
    async with server(compression=None, write_limit=16384, max_size=None) as (uri, conns):
        raw, good, slow = await slow_setup(uri, conns)
        assert slow.transport is not None
        over = 0
        for _ in range(100):
            result = broadcast(conns, big, policy="close", close_after=8 * len(big))
            assert await good.recv() == big
            if slow._paused_writing and not result.closed_slow:
                over = max(over, slow.transport.get_write_buffer_size())
            if result.closed_slow:
                break
        assert result.closed_slow == 1
        assert 16384 < over <= 9 * len(big) + 14
        raw.close()
        await slow.wait_closed()
        await good.close()

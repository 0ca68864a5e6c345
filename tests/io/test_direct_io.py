"""Reads and writes straight on the socket (compiled build, rapidws's own transport).

On :class:`~rapidws.io.sockets.SocketTransport`, the compiled build reads into
the shared buffer with ``recv(2)`` and writes with ``send(2)`` / ``sendmsg(2)``
while the transport holds nothing; what the socket does not take goes through
the transport.  These tests run in both builds (and on aiofastnet's transports
with ``RAPIDWS_FASTNET=1``): the others must behave the same through the
protocol calls.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Any

import pytest

import rapidws
from rapidws import _accel
from rapidws.io import sockets as sockets_module
from rapidws.io.sockets import SocketTransport
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol import engine as engine_module
from rapidws.protocol.engine import SERVER, Engine
from rapidws.protocol.events import EventSink, Failed, Message
from rapidws.protocol.frames import Frame, Opcode

from ..asyncio.helpers import RawClient, echo, port_of

COMPILED_POSIX = _accel.is_compiled(sockets_module) and os.name == "posix"


def direct(conn: ListenerConnection) -> bool:
    """Whether the connection's reads and writes go straight to its socket."""
    return COMPILED_POSIX and type(conn.transport) is SocketTransport


MIB = 2**20


class Opened(Listener):
    def __init__(self) -> None:
        self.conns: asyncio.Queue[ListenerConnection] = asyncio.Queue()

    def on_open(self, conn: ListenerConnection) -> None:
        self.conns.put_nowait(conn)

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


async def test_direct_io_is_used_where_it_applies() -> None:
    listener = Opened()
    async with serve_listener(lambda request: listener, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        conn = await listener.conns.get()
        transport: Any = conn.transport
        if os.environ.get("RAPIDWS_FASTNET") != "1" and os.name == "posix":
            assert isinstance(transport, SocketTransport)
        is_direct = direct(conn)
        if is_direct:
            assert conn._fd == transport.get_extra_info("socket").fileno()
        else:
            assert conn._fd == -1
        client.send_frame(Opcode.BINARY, b"ping")
        frame = await client.read_frame()
        assert frame is not None and frame.payload == b"ping"
        client.close()
        await conn.wait_closed()
        assert conn._fd == -1
        if is_direct:  # no cycle left between the transport and the connection
            assert transport.get_protocol() is None


async def read_message_frames(client: RawClient, count: int) -> list[bytes]:
    payloads = []
    for _ in range(count):
        frame = await client.read_frame()
        assert frame is not None
        payloads.append(frame.payload)
    return payloads


async def test_writes_the_socket_cannot_take_follow_in_order() -> None:
    """Messages sent faster than the peer reads: the socket fills, the rest is
    buffered by the transport, and later writes queue behind it."""
    sizes = [3 * MIB, 10, 2 * MIB, 70000, 1, 4 * MIB, 5]
    payloads = [bytes([i]) * size for i, size in enumerate(sizes)]
    sent = asyncio.Event()

    class Sender(Listener):
        def on_open(self, conn: ListenerConnection) -> None:
            for payload in payloads:  # not corked: each goes out at once
                conn.send(payload)
            assert conn.transport is not None
            assert conn.transport.get_write_buffer_size() > 0  # the socket was full
            sent.set()

    async with serve_listener(lambda request: Sender(), "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        await sent.wait()
        assert await read_message_frames(client, len(payloads)) == payloads
        client.close()


async def test_corked_large_echoes_follow_in_order() -> None:
    """Echoes of one read leave together (``sendmsg`` where direct); a short write
    hands the rest to the transport, in order."""
    payloads = [bytes([i]) * (MIB + i) for i in range(6)] + [b"tail"]
    listener = Opened()
    async with serve_listener(lambda request: listener, "127.0.0.1", 0, max_size=4 * MIB) as server:
        client, _ = await RawClient.open(port_of(server))
        client.writer.write(
            b"".join(Frame(Opcode.BINARY, p).serialize(mask=True) for p in payloads)
        )
        assert await read_message_frames(client, len(payloads)) == payloads
        client.close()


def handler_reporting_closure() -> tuple[Any, asyncio.Future[BaseException]]:
    """A handler waiting in ``recv``, and the future that gets what ``recv`` raised."""
    closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            await ws.recv()
        except rapidws.ConnectionClosed as exc:
            closed.set_result(exc)

    return handler, closed


async def test_peer_reset_while_reading_closes_with_its_error() -> None:
    handler, closed = handler_reporting_closure()
    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        sock = client.writer.get_extra_info("socket")
        client.writer.write(b"\x82\xfe")  # half a frame header, then a reset
        await client.writer.drain()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.writer.transport.abort()
        exc = await asyncio.wait_for(closed, 5)
    assert isinstance(exc, rapidws.ConnectionClosedError)
    assert exc.code == 1006
    assert isinstance(exc.__cause__, ConnectionResetError)


async def test_peer_eof_mid_frame_is_an_abnormal_closure() -> None:
    handler, closed = handler_reporting_closure()
    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        client.writer.write(b"\x82\x85abcd")  # a header and no payload
        client.writer.write_eof()
        exc = await asyncio.wait_for(closed, 5)
        client.close()
    assert isinstance(exc, rapidws.ConnectionClosedError)
    assert exc.code == 1006


async def test_aborted_connection_writes_nothing_more_directly() -> None:
    listener = Opened()
    async with serve_listener(lambda request: listener, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        conn = await listener.conns.get()
        if not direct(conn):
            client.close()
            pytest.skip("direct I/O: the compiled build's, on asyncio's plain transports")
        conn._abort()
        assert conn._fd == -1
        assert await client.read_frame() is None  # the reset, and no frame
        client.close()


async def test_reads_paused_and_resumed_by_the_async_api_lose_nothing() -> None:
    """``max_queue`` pauses reading (the transport stops polling) and resumes it."""
    count = 200
    received: list[bytes] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        transport: Any = ws.transport
        while not ws._paused_reading:  # until the queue fills up and reading pauses
            await asyncio.sleep(0)
        assert not transport.is_reading()
        async for message in ws:
            assert isinstance(message, bytes)
            received.append(message)
            if len(received) == count:
                assert transport.is_reading()
                await ws.send(b"done")

    async with rapidws.serve(handler, "127.0.0.1", 0, max_queue=4) as server:
        client, _ = await RawClient.open(port_of(server))
        for i in range(count):
            client.send_frame(Opcode.BINARY, i.to_bytes(2, "big") * 1000)
        frame = await asyncio.wait_for(client.read_frame(), 10)
        assert frame is not None and frame.payload == b"done"
        client.close()
    assert received == [i.to_bytes(2, "big") * 1000 for i in range(count)]


async def send_in_pieces(client: RawClient, data: bytes, piece: int = 99_999) -> None:
    """Write ``data`` a piece at a time, letting the server read between pieces."""
    for start in range(0, len(data), piece):
        client.writer.write(data[start : start + piece])
        await client.writer.drain()
        await asyncio.sleep(0)


async def test_large_frames_arriving_in_pieces_are_whole() -> None:
    """Unmasking and UTF-8 checks carry on across reads, wherever they land."""
    text = ("aé€😀" * 300_000).encode()  # characters straddle the pieces
    binary = os.urandom(3 * MIB + 3)
    frames = [
        Frame(Opcode.TEXT, text),
        Frame(Opcode.BINARY, binary),
        Frame(Opcode.BINARY, binary[: 2 * MIB], fin=False),
        Frame(Opcode.CONT, binary[2 * MIB :]),
    ]
    listener = Opened()
    async with serve_listener(lambda request: listener, "127.0.0.1", 0, max_size=8 * MIB) as server:
        client, _ = await RawClient.open(port_of(server))
        await send_in_pieces(client, b"".join(f.serialize(mask=True) for f in frames))
        assert await read_message_frames(client, 3) == [text, binary, binary]
        client.close()


async def test_invalid_utf8_late_in_a_large_text_frame_closes_with_1007() -> None:
    payload = b"a" * (2 * MIB) + b"\xff" + b"a" * 1000
    async with rapidws.serve(echo, "127.0.0.1", 0, max_size=4 * MIB) as server:
        client, _ = await RawClient.open(port_of(server))
        await send_in_pieces(client, Frame(Opcode.TEXT, payload).serialize(mask=True))
        close = await client.read_close()
        assert close.code == 1007
        client.close()


async def test_client_reads_large_unmasked_frames_in_pieces() -> None:
    """The client side: frames from the server are not masked."""
    payloads = [os.urandom(2 * MIB + 1), "ü" * MIB]
    async with (
        rapidws.serve(echo, "127.0.0.1", 0, max_size=8 * MIB) as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}", max_size=8 * MIB) as ws,
    ):
        for payload in payloads:
            await ws.send(payload)
            assert await ws.recv() == payload


ENGINE_COMPILED = _accel.is_compiled(engine_module)


@pytest.mark.skipif(not ENGINE_COMPILED, reason="direct reads are the compiled build's")
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_the_rest_of_a_large_frame_is_read_into_its_own_buffer(opcode: Opcode) -> None:
    payload = ("é" * (MIB // 2)).encode() if opcode == Opcode.TEXT else os.urandom(MIB)
    wire = Frame(opcode, payload).serialize(mask=True)
    sink = EventSink()
    engine = Engine(SERVER, sink)
    first = MIB // 4
    engine.receive_data(wire[:first])
    room = engine.direct_room()
    assert room == len(wire) - first  # exactly the frame's rest: never the next frame
    done = first
    while done < len(wire):  # reads of odd sizes, each straight into the frame's buffer
        view = engine.direct_view()
        n = min(len(view), 99_999)
        view[:n] = wire[done : done + n]
        engine.receive_direct(n)
        done += n
        assert engine.direct_room() in (len(wire) - done, 0)
    expected: str | bytes = payload.decode() if opcode == Opcode.TEXT else payload
    assert sink.take_events() == [Message(expected)]
    assert engine.direct_room() == 0


@pytest.mark.skipif(not ENGINE_COMPILED, reason="direct reads are the compiled build's")
def test_invalid_utf8_read_into_the_frame_buffer_fails_with_1007() -> None:
    wire = Frame(Opcode.TEXT, b"a" * MIB + b"\xc0" + b"a" * 100).serialize(mask=True)
    sink = EventSink()
    engine = Engine(SERVER, sink, max_size=2 * MIB)
    engine.receive_data(wire[: MIB // 8])
    view = engine.direct_view()
    rest = wire[MIB // 8 :]
    view[: len(rest)] = rest
    engine.receive_direct(len(rest))
    assert engine.failure is not None and engine.failure.code == 1007
    assert [type(event) for event in sink.take_events()] == [Failed]  # no message
    assert engine.direct_room() == 0  # buffers dropped at the failure


@pytest.mark.skipif(not ENGINE_COMPILED, reason="direct reads are the compiled build's")
def test_no_direct_read_for_small_frames_or_before_a_sixteenth_came() -> None:
    engine = Engine(SERVER, EventSink())
    engine.receive_data(Frame(Opcode.BINARY, b"x" * 60_000).serialize(mask=True)[:100])
    assert engine.direct_room() == 0  # under DIRECT_READ_MIN still to come
    engine = Engine(SERVER, EventSink(), max_size=64 * MIB)
    engine.receive_data(Frame(Opcode.BINARY, b"x" * (32 * MIB)).serialize(mask=True)[:1000])
    assert engine.direct_room() == 0  # no buffer yet: a peer announcing 32 MiB sent 1 KB
    with pytest.raises(rapidws.InvalidState):
        engine.receive_direct(10)

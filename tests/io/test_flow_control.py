"""Flow control covers what the engine writes on its own: pongs, close replies, sends.

While the write buffer is over its high-water mark, pings are answered
only once it drains, the latest alone (RFC 6455 5.5.3), and a server stops
reading from the peer; a client keeps reading, so that two rapidws ends
never both wait on each other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import rapidws
from rapidws.asyncio.server import ServerConnection
from rapidws.listener import Listener, ListenerConnection
from rapidws.protocol.frames import Frame, Opcode
from rapidws.protocol.handshake import ClientHandshake, accept_key

from ..asyncio.helpers import running_server
from .test_transport import FakeTransport, feed, open_fake


class PausableTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def ping(payload: bytes) -> bytes:
    return Frame(Opcode.PING, payload).serialize(mask=True)


def frames_in(written: list[bytes]) -> list[Frame]:
    data = b"".join(written)
    frames = []
    while data:
        parsed = Frame.parse(data)
        assert parsed is not None
        frames.append(parsed[0])
        data = data[parsed[2] :]
    return frames


def open_server(listener: Listener | None = None) -> tuple[ListenerConnection, PausableTransport]:
    conn, _ = open_fake(listener or Listener())
    transport = PausableTransport()
    conn.transport = transport
    return conn, transport


async def test_server_stops_reading_and_holds_pongs_while_writes_back_up() -> None:
    conn, transport = open_server()
    conn.pause_writing()
    assert not transport.reading
    feed(conn, b"".join(ping(b"%d" % i) for i in range(500)))
    assert transport.written == []  # no pong queued behind a peer that does not read
    conn.resume_writing()
    assert transport.reading
    assert frames_in(transport.written) == [Frame(Opcode.PONG, b"499")]


async def test_client_keeps_reading_but_holds_pongs_while_writes_back_up() -> None:
    handshake = ClientHandshake(host="127.0.0.1", path="/")
    conn = ListenerConnection(Listener(), handshake, ping_interval=None)
    transport = PausableTransport()
    conn.connection_made(transport)
    transport.written.clear()
    feed(
        conn,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(handshake.key).encode() + b"\r\n\r\n",
    )
    assert conn.engine is not None
    conn.pause_writing()
    assert transport.reading
    feed(conn, Frame(Opcode.PING, b"a").serialize() + Frame(Opcode.PING, b"b").serialize())
    assert transport.written == []
    conn.resume_writing()
    assert [f.opcode for f in frames_in(transport.written)] == [Opcode.PONG]


async def test_reading_resumes_only_once_every_reason_is_gone() -> None:
    done = asyncio.Event()

    async def idle(ws: Any) -> None:
        await done.wait()

    async with (
        running_server(idle, max_queue=(2, 1), ping_interval=None) as (server, uri),
        rapidws.connect(uri, ping_interval=None) as client,
    ):
        (conn,) = server.connections
        assert isinstance(conn, ServerConnection)
        transport = conn.transport
        assert transport is not None
        for i in range(2):
            await client.send(str(i))
        while len(conn._messages) < 2:  # the queue is full: reading paused
            await asyncio.sleep(0)
        assert not transport.is_reading()
        conn.pause_writing()
        assert await conn.recv() == "0"  # the queue drains, the write reason holds
        assert not transport.is_reading()
        conn.resume_writing()
        assert transport.is_reading()
        done.set()


async def test_two_rapidws_ends_pipelining_both_ways_never_wait_on_each_other() -> None:
    # More than the kernel's buffers hold, each way at once: the client
    # writes while its buffer is full, the server too, and neither stalls.
    count, size = 400, 65536
    payload = bytes(range(256)) * (size // 256)
    async with (
        running_server(compression=None, write_limit=2**15) as (_, uri),
        rapidws.connect(uri, compression=None, write_limit=2**15) as ws,
    ):

        async def send_all() -> None:
            for _ in range(count):
                await ws.send(payload)

        async def read_all() -> int:
            got = 0
            for _ in range(count):
                assert await ws.recv() == payload
                got += 1
            return got

        sender = asyncio.create_task(send_all())
        assert await asyncio.wait_for(read_all(), 60) == count
        await sender

"""The transport layer over loopback: writes coalesced per batch of received bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import rapidws
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.frames import Frame, Opcode

from ..asyncio.helpers import RawClient, port_of

COUNT = 50


def count_calls(conn: Any, counts: dict[str, int]) -> None:
    """Count the server connection's reads and its transport's writes."""
    transport = conn.transport
    write, data_received = transport.write, conn.data_received

    def counted_write(data: bytes) -> None:
        counts["writes"] += 1
        write(data)

    def counted_data_received(data: bytes) -> None:
        counts["reads"] += 1
        data_received(data)

    transport.write = counted_write
    conn.data_received = counted_data_received


async def send_batch_and_read_echoes(port: int, close: bool = False) -> list[Frame]:
    client, _ = await RawClient.open(port)
    batch = b"".join(
        Frame(Opcode.BINARY, i.to_bytes(2, "big")).serialize(mask=True) for i in range(COUNT)
    )
    if close:
        batch += Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True)
    client.writer.write(batch)  # one write: usually one read on the server
    frames = []
    for _ in range(COUNT + close):
        frame = await client.read_frame()
        assert frame is not None
        frames.append(frame)
    client.close()
    return frames


class CountingEcho(Listener):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def on_open(self, conn: ListenerConnection) -> None:
        count_calls(conn, self.counts)

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


async def test_callback_echoes_of_one_read_leave_in_one_write() -> None:
    counts = {"writes": 0, "reads": 0}
    async with serve_listener(lambda request: CountingEcho(counts), "127.0.0.1", 0) as server:
        frames = await send_batch_and_read_echoes(port_of(server))
        assert [f.payload for f in frames] == [i.to_bytes(2, "big") for i in range(COUNT)]
        assert 1 <= counts["writes"] <= counts["reads"] < COUNT


async def test_echoes_and_close_frame_keep_their_order() -> None:
    counts = {"writes": 0, "reads": 0}
    async with serve_listener(lambda request: CountingEcho(counts), "127.0.0.1", 0) as server:
        frames = await send_batch_and_read_echoes(port_of(server), close=True)
    assert [f.opcode for f in frames] == [Opcode.BINARY] * COUNT + [Opcode.CLOSE]
    assert [f.payload for f in frames[:-1]] == [i.to_bytes(2, "big") for i in range(COUNT)]


async def test_async_handler_replies_to_one_read_leave_in_one_write() -> None:
    counts = {"writes": 0, "reads": 0}

    async def handler(ws: rapidws.ServerConnection) -> None:
        count_calls(ws, counts)
        async for message in ws:
            await ws.send(message)

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        frames = await send_batch_and_read_echoes(port_of(server))
        assert [f.payload for f in frames] == [i.to_bytes(2, "big") for i in range(COUNT)]
        assert 1 <= counts["writes"] <= counts["reads"] < COUNT


async def test_send_outside_a_read_goes_out_at_once() -> None:
    sent = asyncio.Event()

    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send(b"unprompted")  # not an answer to anything received
        sent.set()
        await ws.wait_closed()

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        frame = await client.read_frame()
        assert frame is not None and frame.payload == b"unprompted"
        client.close()

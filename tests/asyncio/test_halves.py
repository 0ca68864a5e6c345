"""Sender and receiver halves: two tasks at once, batching, flush; and the websockets API extras."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

import pytest

import rapidws
from rapidws.exceptions import ConnectionClosedOK
from rapidws.protocol.frames import Frame, Opcode

from .helpers import running_server


async def attached_pair(**options: Any) -> tuple[rapidws.Connection, rapidws.Connection]:
    """A client and a server over a socketpair, no handshake (writes go through the transport)."""
    a, b = socket.socketpair()
    (ar, aw), (br, bw) = (
        await asyncio.open_connection(sock=a),
        await asyncio.open_connection(sock=b),
    )
    client = await rapidws.attach(ar, aw, side="client", handshake=False, **options)
    server = await rapidws.attach(br, bw, side="server", handshake=False, **options)
    assert isinstance(client, rapidws.Connection) and isinstance(server, rapidws.Connection)
    return client, server


def count_writes(conn: rapidws.Connection) -> list[int]:
    """Wrap the transport's write methods (asyncio's transports take instance attributes)."""
    sizes: list[int] = []
    transport: Any = conn.transport
    write, writelines = transport.write, transport.writelines

    def counting_write(data: bytes) -> None:
        sizes.append(len(data))
        write(data)

    def counting_writelines(pieces: list[bytes]) -> None:
        sizes.append(sum(len(p) for p in pieces))
        writelines(pieces)

    transport.write = counting_write
    transport.writelines = counting_writelines
    return sizes


async def close_pair(client: rapidws.Connection, server: rapidws.Connection) -> None:
    closing = client.close()
    with pytest.raises(ConnectionClosedOK):
        await server.recv()
    await server.close()
    await closing


async def test_split_halves_from_two_tasks_at_once() -> None:
    n = 500
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        sender, receiver = ws.split()
        assert ws.split() == (sender, receiver)
        assert sender.connection is receiver.connection is ws

        async def send_all() -> None:
            for i in range(n):
                await sender.send(str(i))

        async def receive_all() -> list[str]:
            got = []
            async for message in receiver:
                got.append(message)
                if len(got) == n:
                    break
            return got  # type: ignore[return-value]

        received, _ = await asyncio.gather(receive_all(), send_all())
        assert received == [str(i) for i in range(n)]
        pong = await sender.ping()
        assert await pong >= 0
        await sender.close()
        assert ws.close_code == 1000


async def test_receiver_iteration_ends_on_a_normal_close() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send("a")
        await ws.send(b"b")

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        _, receiver = ws.split()
        assert await receiver.recv(timeout=5) == "a"
        assert receiver.connection is ws
        assert [m async for m in receiver] == [b"b"]


async def test_batch_coalesces_many_sends_into_one_write() -> None:
    client, server = await attached_pair()
    sender, _ = client.split()
    writes = count_writes(client)
    async with sender.batch():
        for i in range(100):
            await sender.send(f"m{i}")
        assert writes == []
    assert len(writes) == 1
    for i in range(100):
        assert await server.recv() == f"m{i}"
    # Without a batch, each send is a write of its own.
    for i in range(10):
        await sender.send(f"n{i}")
    assert len(writes) == 11
    for i in range(10):
        assert await server.recv() == f"n{i}"
    await close_pair(client, server)


async def test_flush_in_a_batch_writes_what_is_held_and_goes_on() -> None:
    client, server = await attached_pair()
    sender, _ = client.split()
    writes = count_writes(client)
    async with sender.batch():
        async with sender.batch():  # nested: the outer one writes
            for i in range(10):
                await sender.send(b"x%d" % i)
        assert writes == []
        await sender.flush()
        assert len(writes) == 1
        for i in range(10):
            await sender.send(b"y%d" % i)
        assert len(writes) == 1
    assert len(writes) == 2
    for prefix in (b"x", b"y"):
        for i in range(10):
            assert await server.recv() == prefix + b"%d" % i
    await sender.flush()  # nothing held: nothing written
    assert len(writes) == 2
    await close_pair(client, server)


async def test_a_batch_holds_while_the_other_half_receives() -> None:
    client, server = await attached_pair()
    sender, receiver = client.split()
    writes = count_writes(client)
    got: list[Any] = []

    async def receive(n: int) -> None:
        for _ in range(n):
            got.append(await receiver.recv())

    async with sender.batch():
        task = asyncio.create_task(receive(20))
        for i in range(20):
            await sender.send(str(i))
            await server.send(str(i))  # wakes the receiving half, whose next recv flushes
            await asyncio.sleep(0)
        await task
        assert writes == []
    assert got == [str(i) for i in range(20)]
    assert len(writes) == 1
    assert [await server.recv() for _ in range(20)] == got
    await close_pair(client, server)


async def test_close_in_a_batch_ends_it() -> None:
    client, server = await attached_pair()
    sender, _ = client.split()
    async with sender.batch():
        await sender.send("last")
        closing = asyncio.create_task(sender.close())
        assert await server.recv() == "last"
        with pytest.raises(ConnectionClosedOK):
            await server.recv()
        await server.close()
        await closing
    assert client.close_code == 1000


async def test_send_text_option() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send(b"caf\xc3\xa9", text=True)
        assert await ws.recv() == "café"
        await ws.send("bin", text=False)
        assert await ws.recv() == b"bin"
        await ws.send("plain", text=True)
        assert await ws.recv() == "plain"
        await ws.send(bytearray(b"raw"), text=False)
        assert await ws.recv() == b"raw"
        await ws.send([b"fr", b"ag"], text=True)
        assert await ws.recv() == "frag"
        await ws.send(["fr", "ag"], text=False)
        assert await ws.recv() == b"frag"
        await ws.send(bytearray(b"ba"), text=True)
        assert await ws.recv() == "ba"
        await ws.send(memoryview(b"mv"), text=True)
        assert await ws.recv() == "mv"
        await ws.send(b"cut in frames", text=True, max_fragment_size=4)
        assert await ws.recv() == "cut in frames"
        with pytest.raises(TypeError):
            await ws.send({"a": 1}, text=True)  # type: ignore[arg-type]


async def test_send_text_on_a_binary_only_connection_is_refused() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri, mode="binary") as ws:
        with pytest.raises(TypeError):
            await ws.send(b"x", text=True)
        await ws.send("as binary", text=False)
        assert await ws.recv() == b"as binary"


async def test_recv_streaming_gives_a_message() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send(["a", "b"])
        assert [p async for p in ws.recv_streaming()] == ["ab"]
        await ws.send("text")
        assert [p async for p in ws.recv_streaming(decode=False)] == [b"text"]
        _, receiver = ws.split()
        await ws.send(b"bin")
        assert [p async for p in receiver.recv_streaming()] == [b"bin"]


async def test_recv_streaming_with_frames_gives_the_fragments() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        # "é" is cut between two frames: the pieces decode all the same.
        await ws.send_frame(Frame(Opcode.TEXT, b"caf\xc3", False))
        await ws.ping(b"between")
        await ws.send_frame(Frame(Opcode.CONT, b"\xa9 ", False))
        await ws.send_frame(Frame(Opcode.CONT, b"au lait", True))
        await ws.send(b"\x00\x01")
        await ws.wait_closed()

    async with (
        running_server(handler, frames=True) as (_, uri),
        rapidws.connect(uri, frames=True) as ws,
    ):
        assert [p async for p in ws.recv_streaming()] == ["caf", "é ", "au lait"]
        assert [p async for p in ws.recv_streaming()] == [b"\x00\x01"]


async def test_id_and_logger() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        assert isinstance(ws.id, uuid.UUID) and ws.id.version == 4
        assert ws.id == ws.id
        logger = ws.logger
        assert isinstance(logger, logging.LoggerAdapter)
        assert logger is ws.logger
        assert logger.extra is not None and logger.extra["id"] == ws.id
        assert logger.extra["websocket"].id == ws.id
        async with rapidws.connect(uri) as other:
            assert other.id != ws.id


async def test_a_batch_ending_after_the_connection_is_lost() -> None:
    client, server = await attached_pair()
    sender, _ = client.split()
    async with sender.batch():
        await sender.send("held")
        server.transport.abort()  # type: ignore[union-attr]
        await client.wait_closed()
    assert client.state == rapidws.State.CLOSED
    assert client._wbuf is None  # what the batch held was dropped

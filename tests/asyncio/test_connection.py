"""The message API over real loopback sockets: send, recv, ping, close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import rapidws
from rapidws.exceptions import ConcurrencyError

from .helpers import running_server


async def test_echo_text_and_binary() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        await ws.send(bytearray(b"ba"))
        assert await ws.recv() == b"ba"
        await ws.send(memoryview(b"mv"))
        assert await ws.recv() == b"mv"


async def test_large_message_both_ways() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    async with (
        running_server(max_size=2**21) as (_, uri),
        rapidws.connect(uri, max_size=2**21) as ws,
    ):
        await ws.send(payload)
        assert await ws.recv() == payload


async def test_fragmented_send_from_iterables() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            yield part

    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await ws.send(chunks())
        assert await ws.recv() == b"abc"
        with pytest.raises(TypeError):
            await ws.send(["text", b"bytes"])  # type: ignore[list-item]


async def test_recv_decode_option() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send("text")
        assert await ws.recv(decode=False) == b"text"
        await ws.send(b"bytes")
        assert await ws.recv(decode=True) == "bytes"


async def test_async_for_ends_on_normal_close() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        for i in range(3):
            await ws.send(str(i))

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        received = [message async for message in ws]
        assert received == ["0", "1", "2"]
        assert ws.close_code == 1000


async def test_async_for_raises_on_abnormal_close_and_can_be_resumed() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        for i in range(3):
            await ws.send(str(i))
        await ws.close(1011, "boom")

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        assert aiter(ws) is ws  # one iterator: a second loop goes on where the first left off
        received = []
        async for message in ws:
            received.append(message)
            break
        with pytest.raises(rapidws.ConnectionClosedError) as caught:
            async for message in ws:
                received.append(message)
        assert received == ["0", "1", "2"]
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011


async def test_ping_gives_round_trip_time() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        waiter = await ws.ping()
        latency = await waiter
        assert 0 < latency < 5
        assert ws.latency == latency
        with pytest.raises(ValueError):
            await ws.ping(b"same")
            await ws.ping(b"same")


async def test_close_code_and_reason_reach_the_other_side() -> None:
    seen: asyncio.Future[rapidws.ConnectionClosed] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            await ws.recv()
        except rapidws.ConnectionClosed as exc:
            seen.set_result(exc)

    async with running_server(handler) as (_, uri):
        ws = await rapidws.connect(uri)
        await ws.close(4000, "custom")
        exc = await seen
        assert isinstance(exc, rapidws.ConnectionClosedError)
        assert (exc.code, exc.reason) == (4000, "custom")
        assert ws.close_code == 4000  # the server echoed it
        assert ws.state == rapidws.State.CLOSED


async def test_send_after_close_raises_connection_closed() -> None:
    async with running_server() as (_, uri):
        ws = await rapidws.connect(uri)
        await ws.close()
        with pytest.raises(rapidws.ConnectionClosedOK):
            await ws.send("late")
        with pytest.raises(rapidws.ConnectionClosedOK):
            await ws.recv()


async def test_concurrent_recv_is_an_error() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        first = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        with pytest.raises(ConcurrencyError):
            await ws.recv()
        await ws.send("x")
        assert await first == "x"


class PauseWatcher(rapidws.ClientConnection):
    paused: asyncio.Event

    def on_message(self, message: str | bytes) -> None:
        super().on_message(message)
        if self._paused_reading:
            self.paused.set()


async def test_reading_pauses_when_messages_pile_up() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        for i in range(40):
            await ws.send(str(i))
        await ws.wait_closed()

    PauseWatcher.paused = asyncio.Event()
    async with (
        running_server(handler) as (_, uri),
        rapidws.connect(uri, max_queue=8, create_connection=PauseWatcher) as ws,
    ):
        await PauseWatcher.paused.wait()
        assert len(ws._messages) >= 8
        received = [await ws.recv() for _ in range(40)]
        assert received == [str(i) for i in range(40)]
        assert not ws._paused_reading


async def test_send_waits_while_the_write_buffer_is_full() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        ws.transport.pause_reading()  # type: ignore[union-attr]
        await asyncio.sleep(3600)

    async with running_server(handler) as (server, uri):
        ws = await rapidws.connect(uri, write_limit=2**14, compression=None)
        chunk = b"x" * 2**16
        blocked = False
        for _ in range(200):  # at most 12.5 MiB; the kernel buffers far less
            try:
                await asyncio.wait_for(ws.send(chunk), 0.5)
            except asyncio.TimeoutError:
                blocked = True
                break
        assert blocked
        assert ws._paused_writing
        ws.transport.abort()  # type: ignore[union-attr]
        for conn in server.connections:
            conn.transport.abort()  # type: ignore[union-attr]


async def test_messages_before_a_bad_frame_are_read_and_answered_first() -> None:
    from rapidws.protocol.frames import Frame, Opcode

    from .helpers import RawClient, port_of

    got: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        await got  # not reading yet while the bad frame arrives
        async for message in ws:
            await ws.send(message)

    async with running_server(handler) as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        raw.writer.write(
            Frame(Opcode.TEXT, b"one").serialize(mask=True)
            + Frame(Opcode.TEXT, b"two").serialize(mask=True)
            + Frame(3, b"bad").serialize(mask=True)
        )
        await raw.writer.drain()
        (conn,) = server.connections
        while conn.engine is None or conn.engine.failure is None:
            await asyncio.sleep(0)  # let the server read the three frames
        got.set_result("go")
        replies = [await raw.read_frame() for _ in range(2)]
        assert [f.payload for f in replies if f is not None] == [b"one", b"two"]
        assert (await raw.read_close()).code == 1002
        raw.close()


def test_connection_closed_has_websockets_rcvd_and_sent() -> None:
    from rapidws.protocol.frames import Close

    exc = rapidws.ConnectionClosedError(1011, "boom", 1000, "bye")
    assert exc.rcvd == Close(1011, "boom")
    assert exc.sent == Close(1000, "bye")
    assert exc.rcvd_code == 1011
    none = rapidws.ConnectionClosedError(1006, "")
    assert none.rcvd is None and none.sent is None

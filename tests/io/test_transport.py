"""The transport layer over loopback: writes coalesced per batch of received bytes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import rapidws
from rapidws.io import network
from rapidws.io import transport as transport_module
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.frames import Frame, Opcode

from ..asyncio.helpers import RawClient, echo, port_of

COUNT = 50


def count_calls(conn: Any, counts: dict[str, int]) -> None:
    """Count the server connection's reads and its transport's writes.

    Use with ``through_the_transport``: straight reads and writes on the
    socket (the compiled build's) bypass what is counted here.
    """
    transport = conn.transport
    write, buffer_updated = transport.write, conn.buffer_updated

    def counted_write(data: bytes) -> None:
        counts["writes"] += 1
        write(data)

    def counted_buffer_updated(nbytes: int) -> None:
        counts["reads"] += 1
        buffer_updated(nbytes)

    transport.write = counted_write
    conn.buffer_updated = counted_buffer_updated


@pytest.fixture
def through_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads and writes go through asyncio's own transport, where they can be counted."""
    monkeypatch.setattr(network, "_own_transports", lambda loop, kwargs, arguments: False)


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
    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts

    def on_open(self, conn: ListenerConnection) -> None:
        if self.counts is not None:
            count_calls(conn, self.counts)

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


@pytest.mark.usefixtures("through_the_transport")
async def test_callback_echoes_of_one_read_leave_in_one_write() -> None:
    counts = {"writes": 0, "reads": 0}
    async with serve_listener(lambda request: CountingEcho(counts), "127.0.0.1", 0) as server:
        frames = await send_batch_and_read_echoes(port_of(server))
        assert [f.payload for f in frames] == [i.to_bytes(2, "big") for i in range(COUNT)]
        assert 1 <= counts["writes"] <= counts["reads"] < COUNT


async def test_echoes_and_close_frame_keep_their_order() -> None:
    async with serve_listener(lambda request: CountingEcho(), "127.0.0.1", 0) as server:
        frames = await send_batch_and_read_echoes(port_of(server), close=True)
    assert [f.opcode for f in frames] == [Opcode.BINARY] * COUNT + [Opcode.CLOSE]
    assert [f.payload for f in frames[:-1]] == [i.to_bytes(2, "big") for i in range(COUNT)]


@pytest.mark.usefixtures("through_the_transport")
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


async def test_answer_to_the_last_message_goes_out_with_no_flush_scheduled() -> None:
    # One message at a time: each echo is sent from ``send`` itself, so the
    # loop never needs the flusher that joins a batch's answers.
    async with rapidws.serve(echo, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        for i in range(20):
            client.send_frame(Opcode.BINARY, i.to_bytes(2, "big"))
            frame = await client.read_frame()
            assert frame is not None and frame.payload == i.to_bytes(2, "big")
        client.close()
    assert asyncio.get_running_loop() not in transport_module._FLUSHERS


async def test_several_answers_to_one_message_all_arrive_in_order() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            for part in (b"a", b"b", b"c"):
                await ws.send(part + message)  # type: ignore[operator]

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        for i in range(3):
            client.send_frame(Opcode.BINARY, str(i).encode())
            payloads = []
            for _ in range(3):
                frame = await client.read_frame()
                assert frame is not None
                payloads.append(frame.payload)
            assert payloads == [b"a%d" % i, b"b%d" % i, b"c%d" % i]
        client.close()


async def test_writes_from_elsewhere_go_out_while_the_woken_handler_waits() -> None:
    # The handler is woken by a message, then waits on something else than
    # recv without writing: a send from another task, and a ping, still go
    # out in that loop iteration (the writes stay corked for the handler).
    received = asyncio.Event()
    release = asyncio.Event()
    conns: list[rapidws.ServerConnection] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        conns.append(ws)
        await ws.recv()
        received.set()
        await release.wait()

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        client, _ = await RawClient.open(port_of(server))
        client.send_frame(Opcode.TEXT, b"wake")
        await received.wait()
        pong_waiter = await conns[0].ping(b"p")  # the first write while corked
        frame = await client.read_frame()
        assert frame is not None and (frame.opcode, frame.payload) == (Opcode.PING, b"p")
        client.send_frame(Opcode.PONG, b"p")
        await pong_waiter
        await conns[0].send(b"broadcast")
        frame = await client.read_frame()
        assert frame is not None and frame.payload == b"broadcast"
        release.set()
        client.close()


# -- freeing: a closed connection goes with its last reference ------------------


@contextlib.contextmanager
def cyclic_gc_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def wait_freed(*refs: weakref.ref[Any]) -> None:
    """Let the loop run until every referent is freed (bounded in iterations)."""
    for _ in range(100):
        if all(ref() is None for ref in refs):
            return
        await asyncio.sleep(0)
    alive = [ref() for ref in refs if ref() is not None]
    raise AssertionError(f"still alive without the cyclic GC: {alive}")


class RecordingEcho(Listener):
    def __init__(self, refs: list[weakref.ref[Any]]) -> None:
        self.refs = refs

    def on_open(self, conn: ListenerConnection) -> None:
        self.refs.append(weakref.ref(conn))

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


async def test_closed_callback_connections_are_freed_without_the_cyclic_gc() -> None:
    server_refs: list[weakref.ref[Any]] = []
    async with serve_listener(lambda request: RecordingEcho(server_refs), "127.0.0.1", 0) as server:
        with cyclic_gc_off():
            conn, _ = await rapidws.connect_listener(Listener, f"ws://127.0.0.1:{port_of(server)}/")
            conn.send("text")
            conn.send(b"binary")
            conn.close()
            await conn.wait_closed()
            client_ref = weakref.ref(conn)
            del conn
            await wait_freed(client_ref, *server_refs)
    assert len(server_refs) == 1


async def test_closed_async_connections_are_freed_without_the_cyclic_gc() -> None:
    server_refs: list[weakref.ref[Any]] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        server_refs.append(weakref.ref(ws))
        async for message in ws:
            await ws.send(message)

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        with cyclic_gc_off():
            async with rapidws.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
                await ws.send("text")
                assert await ws.recv() == "text"
                await ws.send(b"binary")
                assert await ws.recv() == b"binary"
            client_ref = weakref.ref(ws)
            del ws
            await wait_freed(client_ref, *server_refs)
    assert len(server_refs) == 1


async def test_the_transport_layer_keeps_its_attributes_in_slots() -> None:
    """More than 30 attributes would cost each connection a dict of its own."""
    from rapidws.io.transport import BaseConnection

    class Bare(BaseConnection):
        __slots__ = ()

    conn = Bare()  # every attribute __init__ sets must have a slot
    assert not hasattr(conn, "__dict__")
    assert conn.state == rapidws.State.CONNECTING


# -- the shared read buffer -----------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.written.extend(bytes(data) for data in list_of_data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def feed(conn: ListenerConnection, data: bytes) -> None:
    """Deliver ``data`` as one read, the way asyncio does for a BufferedProtocol."""
    buf = conn.get_buffer(-1)
    assert len(buf) >= len(data)
    buf[: len(data)] = data
    conn.buffer_updated(len(data))


def open_fake(listener: Listener) -> tuple[ListenerConnection, FakeTransport]:
    from rapidws.protocol.handshake import ServerHandshake

    from ..asyncio.helpers import REQUEST

    conn = ListenerConnection(listener, ServerHandshake(), ping_interval=None)
    transport = FakeTransport()
    conn.connection_made(transport)
    feed(conn, REQUEST)
    assert transport.written[0].startswith(b"HTTP/1.1 101")
    return conn, transport


def masked(payload: bytes) -> bytes:
    return Frame(Opcode.BINARY, payload).serialize(mask=True)


class Collect(Listener):
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        self.messages.append(data)


async def test_messages_do_not_alias_the_shared_read_buffer() -> None:
    listener = Collect()
    conn, _ = open_fake(listener)
    payloads = [bytes([i]) * size for i, size in enumerate([1, 125, 126, 70_000, 200_000])]
    for payload in payloads:
        data = masked(payload)
        for start in range(0, len(data), 100_000):  # large frames over several reads
            feed(conn, data[start : start + 100_000])
    feed(conn, masked(b"\xff" * 250_000))  # overwrites the whole buffer
    assert listener.messages[: len(payloads)] == payloads


async def test_a_read_during_another_reads_handling_gets_its_own_buffer() -> None:
    inner = Collect()
    other, _ = open_fake(inner)
    views: list[memoryview] = []

    class FeedOther(Collect):
        def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
            super().on_message(conn, opcode, data)
            if len(self.messages) == 1:
                # E.g. a callback closing a TLS connection makes it read pending input.
                views.append(other.get_buffer(-1))
                feed(other, masked(b"B" * 1000))

    outer = FeedOther()
    conn, _ = open_fake(outer)
    feed(conn, masked(b"A" * 1000) + masked(b"C" * 1000))  # two messages in one read
    assert outer.messages == [b"A" * 1000, b"C" * 1000]  # the second was not overwritten
    assert inner.messages == [b"B" * 1000]
    assert views[0] is not conn.get_buffer(-1)


async def test_each_thread_shares_a_buffer_of_its_own() -> None:
    conn, _ = open_fake(Collect())
    shared = conn.get_buffer(-1)
    seen: list[memoryview] = []

    def in_thread() -> None:
        async def connect_two() -> None:
            first, _ = open_fake(Collect())
            second, _ = open_fake(Collect())
            seen.extend((first.get_buffer(-1), second.get_buffer(-1)))

        asyncio.run(connect_two())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen[0] is not shared
    assert seen[1] is seen[0]  # shared by that thread's connections
    other, _ = open_fake(Collect())
    assert conn.get_buffer(-1) is shared  # and this thread's buffer is still its own
    assert other.get_buffer(-1) is shared


async def test_idle_connections_hold_no_read_buffer() -> None:
    first, _ = open_fake(Collect())
    second, _ = open_fake(Collect())
    assert first.get_buffer(-1) is second.get_buffer(-1)


async def test_async_replies_on_many_connections_woken_together_all_leave() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        results = await asyncio.gather(
            *(send_batch_and_read_echoes(port_of(server)) for _ in range(20))
        )
    for frames in results:
        assert [f.payload for f in frames] == [i.to_bytes(2, "big") for i in range(COUNT)]


async def test_client_messages_from_full_reads_do_not_alias_the_read_buffer() -> None:
    """Unmasked frames are not copied by unmasking; a read that fills the whole
    shared buffer with payload must still be copied out of it."""
    from rapidws.protocol.handshake import ClientHandshake, accept_key

    listener = Collect()
    handshake = ClientHandshake(host="127.0.0.1", path="/")
    conn = ListenerConnection(listener, handshake, ping_interval=None, max_size=None)
    conn.connection_made(FakeTransport())
    key = handshake.request.headers["Sec-WebSocket-Key"]
    feed(
        conn,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n",
    )
    size = len(conn.get_buffer(-1))
    messages = [bytes([i]) * (20 * size) for i in (1, 2)]  # large: read piece by piece
    data = b"".join(Frame(Opcode.BINARY, m).serialize(mask=False) for m in messages)
    for start in range(0, len(data), size):
        feed(conn, data[start : start + size])  # whole buffers of payload
    assert listener.messages == messages


def test_event_loops_are_not_kept_alive_by_rapidws() -> None:
    """Per-loop state (the flusher) is weakly keyed: a finished loop goes away."""

    async def echo_once() -> None:
        async def handler(ws: rapidws.ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        async with (
            rapidws.serve(handler, "127.0.0.1", 0) as server,
            rapidws.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"

    loop = asyncio.new_event_loop()
    loop.run_until_complete(echo_once())
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None

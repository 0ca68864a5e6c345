"""timeout= on every operation: recv, send, ping, drain, close, attach, detach.

A timeout raises TimeoutError naming the operation and the limit; the
connection is left intact, or (a fragmented send cut short) closed with 1011.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rapidws
from rapidws.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from rapidws.protocol.frames import Close, Frame, Opcode

from .helpers import running_server

LIMIT = 0.02


async def stream_pair() -> tuple[
    tuple[asyncio.StreamReader, asyncio.StreamWriter],
    tuple[asyncio.StreamReader, asyncio.StreamWriter],
]:
    a, b = socket.socketpair()
    return await asyncio.open_connection(sock=a), await asyncio.open_connection(sock=b)


async def attached_to_silent_peer(
    **options: Any,
) -> tuple[rapidws.Connection, asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection (no handshake) whose peer is a raw stream that answers nothing."""
    (r, w), peer = await stream_pair()
    ws = await rapidws.attach(r, w, side="client", handshake=False, **options)
    assert isinstance(ws, rapidws.Connection)
    return ws, *peer


def message(text: str) -> str:
    return f"{text}() timed out after {LIMIT:g} s"


async def test_recv_timeout_names_recv_and_leaves_the_connection_usable() -> None:
    go = asyncio.Event()

    async def handler(ws: rapidws.ServerConnection) -> None:
        await go.wait()
        await ws.send("late")
        await ws.wait_closed()

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(TimeoutError) as info:
            await ws.recv(timeout=LIMIT)
        assert str(info.value) == message("recv")
        go.set()
        assert await ws.recv(timeout=5) == "late"
        assert ws.state == rapidws.State.OPEN


async def test_recv_timeout_returns_a_queued_message_at_once() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        await ws.send("x")
        assert await ws.recv(timeout=5) == "x"
        await ws.send("y")
        assert await ws.recv(decode=False, timeout=5) == b"y"


async def test_send_timeout_leaves_the_message_whole_and_the_connection_intact() -> None:
    ws, peer_r, peer_w = await attached_to_silent_peer(write_limit=1024, max_size=None)
    big = b"x" * 2**23  # more than the socket and the peer's reader take unread
    with pytest.raises(TimeoutError) as info:
        await ws.send(big, timeout=LIMIT)
    assert str(info.value) == message("send")
    assert ws.state == rapidws.State.OPEN
    # The peer reads now: the whole message is there, then the next one.
    peer = await rapidws.attach(peer_r, peer_w, side="server", handshake=False, max_size=None)
    assert isinstance(peer, rapidws.Connection)
    await ws.send("after")
    assert await peer.recv() == big
    assert await peer.recv() == "after"
    closing = ws.close()  # the close frame goes now
    with pytest.raises(ConnectionClosedOK):
        await peer.recv()
    await peer.close()  # an attached stream stays open until its owner closes it
    await closing


async def test_drain_timeout() -> None:
    ws, _, peer_w = await attached_to_silent_peer(write_limit=1024)
    await ws.drain(timeout=LIMIT)  # nothing buffered: returns at once
    with pytest.raises(TimeoutError):
        await ws.send(b"x" * 2**23, timeout=LIMIT)
    with pytest.raises(TimeoutError) as info:
        await ws.drain(timeout=LIMIT)
    assert str(info.value) == message("drain")
    assert ws.state == rapidws.State.OPEN
    peer_w.close()
    await ws.wait_closed()


async def test_fragmented_send_timeout_fails_the_connection_with_1011() -> None:
    closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosedError as exc:
            closed.set_result(exc.rcvd.code if exc.rcvd else None)
        else:
            closed.set_result(ws.close_code)

    never = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "first"
        yield "second"  # sent only once the next is known: the first is on the wire
        await never.wait()
        yield "never"

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(TimeoutError) as info:
            await ws.send(fragments(), timeout=LIMIT)
        assert str(info.value) == message("send")
        assert await closed == 1011
        with pytest.raises(ConnectionClosed):
            await ws.send("more")
        await ws.wait_closed()


async def test_fragmented_send_timed_out_before_its_first_fragment_sends_nothing() -> None:
    never = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "only"
        await never.wait()
        yield "never"

    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(TimeoutError):
            await ws.send(fragments(), timeout=LIMIT)
        await ws.send("intact")
        assert await ws.recv() == "intact"


async def test_ping_timeout_without_a_pong() -> None:
    ws, peer_r, _ = await attached_to_silent_peer()
    pong = await ws.ping(b"p", timeout=LIMIT)
    with pytest.raises(TimeoutError) as info:
        await pong
    assert str(info.value) == message("ping")
    assert ws.state == rapidws.State.OPEN
    # The same data can be sent again: the expired ping is forgotten.
    await ws.ping(b"p")
    ws.transport.abort()  # type: ignore[union-attr]
    await ws.wait_closed()
    assert await peer_r.read(2)  # the pings went out


async def test_ping_timeout_cancelled_by_the_pong() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        pong = await ws.ping(timeout=5)
        assert await pong >= 0


async def test_close_timeout_aborts() -> None:
    ws, peer_r, _ = await attached_to_silent_peer()
    with pytest.raises(TimeoutError) as info:
        await ws.close(timeout=LIMIT)
    assert str(info.value) == message("close")
    await ws.wait_closed()
    assert ws.state == rapidws.State.CLOSED
    data = await peer_r.read()
    frame = Frame.parse(data)
    assert frame is not None and frame[0].opcode == Opcode.CLOSE
    assert Close.parse(frame[0].payload).code == 1000


async def test_attach_timeout() -> None:
    (r, w), (_, peer_w) = await stream_pair()
    with pytest.raises(TimeoutError) as info:
        await rapidws.attach(r, w, side="client", uri="ws://example.com/", timeout=LIMIT)
    assert str(info.value) == message("attach")
    assert w.transport.is_closing()
    peer_w.close()


async def test_detach_timeout_names_detach() -> None:
    ws, _, _ = await attached_to_silent_peer()
    with pytest.raises(TimeoutError) as info:
        await ws.detach(timeout=LIMIT)
    assert str(info.value).startswith(message("detach"))


async def test_a_deadline_does_not_hide_an_outer_cancellation() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        task = asyncio.create_task(ws.recv(timeout=5))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ws.send("still here")
        assert await ws.recv() == "still here"

"""Cancellation storms: recv, send and close cancelled at random points, thousands of times.

Seeded, so a failure replays.  A task is cancelled after a random number of
loop iterations (``sleep(0)`` yields, it waits for nothing) or by a timer a
few microseconds away, so cancellations land before, during and after each
await.  The peer is a rapidws server, whose strict parser fails the
connection (1002) on any broken frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator

import rapidws
from rapidws.exceptions import ConnectionClosed, ConnectionClosedError

from .helpers import running_server


class Tally:
    """Outcomes the server's handlers record; ``wait(n)`` until there are ``n``."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._changed = asyncio.Event()

    def add(self, item: object) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, n: int) -> None:
        while len(self.items) < n:
            self._changed.clear()
            await self._changed.wait()


async def cancel_soon(task: asyncio.Task[object], rng: random.Random) -> None:
    """Cancel ``task`` after 0-3 loop iterations, or by a timer 0-50 us away."""
    if rng.random() < 0.25:
        asyncio.get_running_loop().call_later(rng.random() * 5e-5, task.cancel)
        await asyncio.sleep(0)
        return
    for _ in range(rng.randrange(4)):
        await asyncio.sleep(0)
    task.cancel()


async def test_cancelled_recv_loses_no_message() -> None:
    rng = random.Random(6455)
    n = 6000

    async def handler(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with running_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        sender, receiver = ws.split()

        async def trickle() -> None:  # the echoes come one by one: the receiver often waits
            pace = random.Random(1)
            for i in range(n):
                await sender.send(str(i))
                for _ in range(pace.randrange(2, 12)):
                    await asyncio.sleep(0)

        sending = asyncio.create_task(trickle())
        received: list[int] = []
        cancelled = timed_out = 0
        while len(received) < n:
            choice = rng.random()
            if choice < 0.2:  # a deadline alone
                task = asyncio.create_task(receiver.recv(timeout=rng.random() * 1e-4))
            elif choice < 0.3:  # a deadline and a cancellation
                task = asyncio.create_task(receiver.recv(timeout=rng.random() * 1e-4))
                await cancel_soon(task, rng)  # type: ignore[arg-type]
            elif choice < 0.5:
                task = asyncio.create_task(anext(aiter(receiver)))  # type: ignore[arg-type]
                await cancel_soon(task, rng)  # type: ignore[arg-type]
            else:
                task = asyncio.create_task(receiver.recv())
                await cancel_soon(task, rng)  # type: ignore[arg-type]
            try:
                received.append(int(await task))
            except asyncio.CancelledError:
                cancelled += 1
            except TimeoutError:
                timed_out += 1
        assert received == list(range(n))
        assert cancelled >= 1000 and timed_out >= 100
        assert ws.state == rapidws.State.OPEN
        await sending


def small_send_buffer(ws: rapidws.Connection) -> None:
    """A small socket send buffer, so that sends wait to drain: they are cancelled there."""
    sock = ws.transport.get_extra_info("socket")  # type: ignore[union-attr]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)


def payload(i: int, size: int) -> bytes:
    return i.to_bytes(4, "big") + bytes([i % 251]) * size


async def test_cancelled_send_leaves_no_partial_frame() -> None:
    rng = random.Random(7692)
    n = 2000
    received: list[bytes] = []
    ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            async for message in ws:
                assert isinstance(message, bytes)
                received.append(message)
                for _ in range(10):  # a slow reader: the sender waits to drain
                    await asyncio.sleep(0)
        except ConnectionClosed as exc:
            ended.set_result(exc)
        else:
            ended.set_result(None)

    async with running_server(handler, max_size=None, max_queue=4) as (_, uri):
        ws = await rapidws.connect(uri, max_size=None, write_limit=1024, compression=None)
        small_send_buffer(ws)
        sender, _ = ws.split()
        completed: list[int] = []
        cancelled = 0
        for i in range(n):
            size = rng.choice((16, 16, 300, 3000, 30000))
            task = asyncio.create_task(sender.send(payload(i, size)))
            await cancel_soon(task, rng)  # type: ignore[arg-type]
            try:
                await task
                completed.append(i)
            except asyncio.CancelledError:
                cancelled += 1
        await ws.close()
        assert await ended is None  # the server's loop ended on a normal close: no 1002
        assert ws.close_code == 1000
    indexes = [int.from_bytes(m[:4], "big") for m in received]
    assert indexes == sorted(set(indexes))  # in order, each once
    for index, message in zip(indexes, received, strict=True):
        assert message == payload(index, len(message) - 4)  # whole
    assert set(completed) <= set(indexes)  # every completed send arrived
    assert cancelled >= 1000
    # Most were cancelled while waiting to drain: their message, written whole, arrived.
    assert len(set(indexes) - set(completed)) >= 500


async def test_cancelled_fragmented_send_fails_with_1011_never_1002() -> None:
    rng = random.Random(5040)
    outcomes = Tally()

    async def handler(ws: rapidws.ServerConnection) -> None:
        got: list[str] = []
        try:
            async for message in ws:
                assert isinstance(message, str)
                got.append(message)
        except ConnectionClosedError as exc:
            outcomes.add((got, exc.rcvd.code if exc.rcvd else None))
        else:
            outcomes.add((got, ws.close_code))

    async def fragments(i: int) -> AsyncIterator[str]:
        for part in range(3):
            yield f"{i}.{part};"
            await asyncio.sleep(0)

    cancellations = 0
    connections = 0
    async with running_server(handler) as (_, uri):
        while cancellations < 1000:
            connections += 1
            async with rapidws.connect(uri) as ws:
                for i in range(50):
                    fragmented = rng.random() < 0.7
                    message = fragments(i) if fragmented else f"{i}.0;{i}.1;{i}.2;"
                    task = asyncio.create_task(ws.send(message))
                    await cancel_soon(task, rng)  # type: ignore[arg-type]
                    try:
                        await task
                    except asyncio.CancelledError:
                        cancellations += 1
                    except ConnectionClosed:
                        pass
                    if ws.state != rapidws.State.OPEN:
                        break
            await ws.wait_closed()
        await outcomes.wait(connections)
    assert len(outcomes.items) == connections
    for got, code in outcomes.items:  # type: ignore[misc]
        assert code in (1000, 1011), code
        for message in got:  # whole messages only
            i = message.split(".")[0]
            assert message == f"{i}.0;{i}.1;{i}.2;"
    assert any(code == 1011 for _, code in outcomes.items)  # type: ignore[misc]


async def test_cancelled_close_still_completes_the_handshake() -> None:
    rng = random.Random(1000)
    codes = Tally()
    n = 1000

    async def handler(ws: rapidws.ServerConnection) -> None:
        async for _ in ws:
            pass
        codes.add(ws.close_code)

    async with running_server(handler) as (_, uri):
        for _ in range(n):
            ws = await rapidws.connect(uri)
            task = asyncio.create_task(ws.close(1000 + rng.choice((0, 1)), "bye"))
            await cancel_soon(task, rng)  # type: ignore[arg-type]
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await ws.wait_closed()
            assert ws.close_code in (1000, 1001)
        await codes.wait(n)
    assert all(code in (1000, 1001) for code in codes.items)

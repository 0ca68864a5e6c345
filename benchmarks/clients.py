"""One library's WebSocket client, measured against a fixed server.

    python benchmarks/clients.py --lib rapidws --port 9001 --size 64 --window 1 \
        --duration 1.0 [--uvloop]

The client keeps ``--window`` binary messages of ``--size`` bytes in flight
(1: round trips), sending one more as each echo arrives, for a warm-up and
then ``--duration`` seconds, and prints one JSON line: messages echoed in
the window, the window's length, and this process's CPU time over it.

Libraries: ``rapidws`` (async API), ``rapidws-callback``, ``websockets``,
``picows.websockets``, ``picows`` (listener API) and ``aiohttp``.
``RAPIDWS_NO_EXTENSIONS=1`` selects rapidws's pure-Python build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import ensure_repo_on_path, run_loop

LIBS = ("rapidws", "rapidws-callback", "websockets", "picows.websockets", "picows", "aiohttp")

WARMUP = 0.2


class Counter:
    """Counts echoes; the measurement window reads it at its edges."""

    def __init__(self) -> None:
        self.count = 0


async def _measure(counter: Counter, duration: float) -> dict[str, float]:
    await asyncio.sleep(WARMUP)
    base = counter.count
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    count = counter.count - base
    cpu1, t1 = time.process_time(), time.perf_counter()
    return {"messages": count, "seconds": t1 - t0, "cpu": cpu1 - cpu0}


async def _pump(
    send: Callable[[bytes], Awaitable[Any]],
    recv: Callable[[], Awaitable[Any]],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Keep ``args.window`` messages in flight with an awaiting API; measure a window."""
    payload = os.urandom(args.size)
    counter = Counter()
    stop = False

    async def pump() -> None:
        for _ in range(args.window):
            await send(payload)
        while not stop:
            await recv()
            counter.count += 1
            await send(payload)

    task = asyncio.ensure_future(pump())
    result = await _measure(counter, args.duration)
    stop = True
    await asyncio.wait_for(task, 10)
    return result


async def run_message_api(args: argparse.Namespace) -> dict[str, float]:
    """websockets' API shape: rapidws, websockets, picows.websockets."""
    uri = f"ws://127.0.0.1:{args.port}/"
    options: dict[str, Any] = {"compression": None, "max_size": 2**24, "ping_interval": None}
    if args.lib == "rapidws":
        ensure_repo_on_path()
        from rapidws import connect
    elif args.lib == "websockets":
        from websockets.asyncio.client import connect
    else:
        from picows.websockets import connect
    async with connect(uri, **options) as ws:
        return await _pump(ws.send, ws.recv, args)


async def run_rapidws_callback(args: argparse.Namespace) -> dict[str, float]:
    ensure_repo_on_path()
    import rapidws

    payload = os.urandom(args.size)
    counter = Counter()
    running = True

    class Echo(rapidws.Listener):
        def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
            counter.count += 1
            if running:
                conn.send(payload)

    conn, _ = await rapidws.connect_listener(
        Echo,
        f"ws://127.0.0.1:{args.port}/",
        compression=None,
        max_size=2**24,
        ping_interval=None,
    )
    for _ in range(args.window):
        conn.send(payload)
    result = await _measure(counter, args.duration)
    running = False
    conn.close()
    await conn.wait_closed()
    return result


async def run_picows(args: argparse.Namespace) -> dict[str, float]:
    import picows

    payload = os.urandom(args.size)
    counter = Counter()
    running = True

    class Echo(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.BINARY:
                counter.count += 1
                if running:
                    transport.send(picows.WSMsgType.BINARY, payload)

    transport, _ = await picows.ws_connect(
        Echo, f"ws://127.0.0.1:{args.port}/", max_frame_size=2**24
    )
    for _ in range(args.window):
        transport.send(picows.WSMsgType.BINARY, payload)
    result = await _measure(counter, args.duration)
    running = False
    transport.send_close(picows.WSCloseCode.OK)
    transport.disconnect()
    await transport.wait_disconnected()
    return result


async def run_aiohttp(args: argparse.Namespace) -> dict[str, float]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"http://127.0.0.1:{args.port}/", max_msg_size=2**24, compress=0, autoping=True
        ) as ws,
    ):
        return await _pump(ws.send_bytes, ws.receive, args)


RUNNERS = {
    "rapidws": run_message_api,
    "websockets": run_message_api,
    "picows.websockets": run_message_api,
    "rapidws-callback": run_rapidws_callback,
    "picows": run_picows,
    "aiohttp": run_aiohttp,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", choices=LIBS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    result = run_loop(asyncio.wait_for(RUNNERS[args.lib](args), args.duration + 30), args.uvloop)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

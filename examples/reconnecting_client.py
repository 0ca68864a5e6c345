"""A client that reconnects when its server goes away and comes back, as websockets' does.

    python examples/reconnecting_client.py

``async for ws in rapidws.connect(uri)`` opens a connection per iteration
and, after an error :func:`rapidws.asyncio.client.process_exception` deems
transient (connection refused, a timeout, HTTP 503...), tries again with
exponential backoff.  Here the server restarts twice; the backoff is made
short (``reconnect_delays``) so that the example ends quickly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator

import rapidws


def quick_delays() -> Generator[float, None, None]:
    """Retry every 20 ms (the default backoff starts at up to 5 s)."""
    while True:
        yield 0.02


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    async def greet(ws: rapidws.ServerConnection) -> None:
        await ws.send(f"hello from server #{starts}")

    starts = 1
    server = await rapidws.serve(greet, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]

    async def restart() -> None:
        nonlocal server, starts
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.1)  # down for a while: the client retries meanwhile
        starts += 1
        server = await rapidws.serve(greet, "127.0.0.1", port)

    restarting = None
    async for ws in rapidws.connect(f"ws://127.0.0.1:{port}/", reconnect_delays=quick_delays):
        try:
            print("received:", await ws.recv())
        except rapidws.ConnectionClosed:
            continue  # the server left mid-conversation: connect again
        if starts == 3:
            break
        restarting = asyncio.ensure_future(restart())
        await ws.wait_closed()
    if restarting is not None:
        await restarting
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())

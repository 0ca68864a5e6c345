"""Well-behaved clients for the chaos soak, in a process of their own.

    python tests/hostile/good_clients.py PORT CLIENTS SECONDS MAX_SIZE

Each client (every other one compressing) echoes numbered messages of
random sizes, text and binary, one at a time, and checks that each comes
back intact.  Prints one JSON line: messages, bytes, the slowest round trip,
and the errors (none when all went well).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import rapidws


async def client(
    port: int, index: int, until: float, max_size: int, stats: dict[str, float]
) -> None:
    rng = random.Random(index)
    compression = "deflate" if index % 2 else None
    async with rapidws.connect(
        f"ws://127.0.0.1:{port}/", compression=compression, max_size=max_size, open_timeout=60
    ) as ws:
        number = 0
        while time.monotonic() < until:
            size = rng.choice([0, 10, 100, 1000, 10_000, 100_000, max_size - 16])
            if rng.random() < 0.5:
                message: str | bytes = f"{number:012d}" + "é" * (max(size - 12, 0) // 2)
            else:
                message = number.to_bytes(8, "big") + rng.randbytes(max(size - 8, 0))
            start = time.monotonic()
            await ws.send(message)
            echo = await ws.recv()
            stats["slowest"] = max(stats["slowest"], time.monotonic() - start)
            if echo != message:
                raise AssertionError(f"client {index}: message {number} came back changed")
            number += 1
            stats["messages"] += 1
            stats["bytes"] += len(message)


async def main(port: int, clients: int, seconds: float, max_size: int) -> None:
    until = time.monotonic() + seconds
    stats = {"messages": 0, "bytes": 0, "slowest": 0.0}
    results = await asyncio.gather(
        *(client(port, i, until, max_size, stats) for i in range(clients)), return_exceptions=True
    )
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(json.dumps({**stats, "errors": errors}), flush=True)


if __name__ == "__main__":
    port, clients, seconds, max_size = sys.argv[1:5]
    asyncio.run(main(int(port), int(clients), float(seconds), int(max_size)))

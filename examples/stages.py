"""Pipeline stages (as SprayWebSockets' extraStages): a user stage, AutoPing, and pings by hand.

    python examples/stages.py

A stage sees every message or frame on its way up to the application and
on its way down to the peer; it passes, drops, transforms or injects.
``AutoPing`` measures round trips; a pipeline without ``AutoPong`` hands
pings to the application.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import rapidws
from rapidws.protocol.pipeline import AutoPing, Item, Pipe, Stage


class WrapJSON(Stage):
    """Wraps each JSON text message on its way up; drops those that are not JSON."""

    def inbound(self, pipe: Pipe, item: Item) -> None:
        if isinstance(item, str):
            try:
                item = json.dumps({"echo": json.loads(item)})
            except ValueError:
                return  # dropped
        pipe.up(self, item)


async def handler(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    async with rapidws.serve(handler, "127.0.0.1", 0, stages=[WrapJSON]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"ws://127.0.0.1:{port}", stages=[AutoPing(0.05)]) as ws:
            await ws.send("not JSON: dropped by the stage")
            await ws.send(json.dumps([1, 2, 3]))
            print("the server's stage wrapped it:", await ws.recv())
            print(f"AutoPing measured a round trip of {await ws.wait_rtt() * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())

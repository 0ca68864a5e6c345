"""Broadcast: one message to every connection, framed and compressed once.

    python examples/broadcast.py

A server keeps its clients in ``server.connections``; ``rapidws.broadcast``
writes one message to all of them without awaiting (so a callback of the
callback API may call it too) and returns what it did: sent, skipped because
a receiver was too slow, closed, of the wrong ``mode=``...  Clients that
accept ``server_no_context_takeover`` share one compressed frame.
"""

from __future__ import annotations

import asyncio

import rapidws
from rapidws.protocol.extensions.permessage_deflate import ClientPerMessageDeflateFactory


async def wait_closed(ws: rapidws.ServerConnection) -> None:
    await ws.wait_closed()


async def main() -> None:
    async with rapidws.serve(wait_closed, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        shared = [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]
        clients = [
            *[await rapidws.connect(uri, extensions=shared) for _ in range(3)],
            *[await rapidws.connect(uri, compression=None) for _ in range(2)],
        ]
        news = '{"headline": "rapidws broadcasts", "body": "' + "lorem ipsum " * 20 + '"}'
        result = rapidws.broadcast(server.connections, news)
        print(f"sent to {result.sent}, framed {result.encodings} times (deflate + plain)")
        for ws in clients:
            assert await ws.recv() == news

        # A connection that has gone is skipped, and counted.
        everyone = list(server.connections)
        await clients.pop().close()
        result = rapidws.broadcast(everyone, b"\x00tick", policy="close")
        print(f"sent to {result.sent}, skipped {result.skipped_closed} closed")
        for ws in clients:
            assert await ws.recv() == b"\x00tick"
            await ws.close()
        print("every client got every message")


if __name__ == "__main__":
    asyncio.run(main())

"""A text-only server (libdill's WS_TEXT), and frames no larger than 512 bytes on the wire.

    python examples/text_only.py

``mode="text"``: sending bytes raises TypeError before anything is written;
a binary message from the peer closes the connection with 1003 (RFC 6455
7.4.1).  ``max_fragment_size`` bounds every frame's payload, compressed or
not, and ``send(..., max_fragment_size=N)`` overrides it for one message.
"""

from __future__ import annotations

import asyncio

import rapidws


async def shout(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(str(message).upper())


async def main() -> None:
    async with rapidws.serve(shout, "127.0.0.1", 0, mode="text", max_fragment_size=512) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"ws://127.0.0.1:{port}", mode="text") as ws:
            await ws.send("hello " * 1000, max_fragment_size=100)
            print((await ws.recv())[:17], "...")
            try:
                await ws.send(b"\x00\x01")
            except TypeError as exc:
                print("refused locally:", exc)
        async with rapidws.connect(f"ws://127.0.0.1:{port}") as ws:  # a client of any type
            await ws.send(b"\x00\x01")
            try:
                await ws.recv()
            except rapidws.ConnectionClosedError as exc:
                print("the server closed with", exc.code)


if __name__ == "__main__":
    asyncio.run(main())

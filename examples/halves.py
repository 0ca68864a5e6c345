"""Sender and receiver halves, a batch, and deadlines.

    python examples/halves.py

``ws.split()`` gives the connection's two halves: here one task receives
while another sends.  Inside ``async with sender.batch():`` many small
messages leave in one write.  Every operation takes ``timeout=``: past it,
:class:`TimeoutError` names the operation and the limit, and the connection
is still usable.
"""

from __future__ import annotations

import asyncio

import rapidws


async def echo(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        if message != "quiet":  # no answer to this one: the client's recv times out
            await ws.send(message)


async def main() -> None:
    async with rapidws.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"ws://127.0.0.1:{port}") as ws:
            sender, receiver = ws.split()

            async def send_ticks() -> None:
                async with sender.batch():  # ten messages, one write
                    for i in range(10):
                        await sender.send(f"tick {i}")

            async def receive_ticks() -> list[str]:
                return [str(await receiver.recv(timeout=5)) for _ in range(10)]

            ticks, _ = await asyncio.gather(receive_ticks(), send_ticks())
            print("received", len(ticks), "echoes:", ticks[0], "...", ticks[-1])

            await sender.send("quiet")
            try:
                await receiver.recv(timeout=0.1)
            except TimeoutError as exc:
                print(exc)  # recv() timed out after 0.1 s
            await sender.send("still open")
            print(await receiver.recv(timeout=5))
            await sender.close()


if __name__ == "__main__":
    asyncio.run(main())

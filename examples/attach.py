"""WebSocket on a stream you opened, then back to a line protocol on the same socket.

    python examples/attach.py

A TCP server speaks a line protocol; the line ``UPGRADE`` switches the
connection to WebSocket (rapidws.attach, with the HTTP handshake), the two
sides chat, the client detaches (the closing handshake, the socket stays
open) and the line protocol goes on.
"""

from __future__ import annotations

import asyncio

import rapidws


async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        if line == b"UPGRADE\n":
            ws = await rapidws.attach(reader, writer, side="server")
            async for message in ws:  # ends when the client closes or detaches
                await ws.send(f"echo: {message}")
            reader, writer = await ws.detach()  # the peer's close came: give the stream back
        else:
            writer.write(b"line: " + line)
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(on_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        print((await reader.readline()).decode().strip())

        writer.write(b"UPGRADE\n")
        ws = await rapidws.attach(reader, writer, side="client", uri=f"ws://127.0.0.1:{port}/")
        await ws.send("over WebSocket")
        print(await ws.recv())
        reader, writer = await ws.detach()

        writer.write(b"back to lines\n")
        print((await reader.readline()).decode().strip())
        writer.close()
        await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())

"""Byte streams (as Seastar's): a handler gets ``(reader, writer)``, not messages.

    python examples/streams.py

``reader.read(n)`` gives payload bytes across message boundaries as TCP
would, and ``b""`` once the peer closed; ``writer.write(data)`` sends one
binary message.  The server here speaks a line protocol over WebSocket; the
client sends lines cut anywhere, as several messages, then one large upload
as a single fragmented message, which the server counts as it streams by.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import rapidws


async def handler(
    reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
) -> None:
    async for line in reader:  # lines, whatever the messages were
        command, _, argument = line.decode().strip().partition(" ")
        if command == "upper":
            writer.write(argument.upper().encode() + b"\n")
        elif command == "upload":
            size, received = int(argument), 0
            while received < size and (chunk := await reader.read(65536)):
                received += len(chunk)  # never more than a frame in memory
            writer.write(f"got {received} bytes\n".encode())
        elif command == "bye":
            writer.write(b"bye\n")
            break
        await writer.drain()
    # Returning closes the connection with 1000.


async def main() -> None:
    async with rapidws.serve(handler, "127.0.0.1", 0, stream=True) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        reader, writer = await rapidws.open_connection(f"ws://127.0.0.1:{port}")

        writer.write(b"upper hel")  # one line in two messages
        writer.write(b"lo\nupper world\n")  # and two lines in one
        print((await reader.readline()).decode(), end="")
        print((await reader.readline()).decode(), end="")

        size = 64 * 2**20
        writer.write(f"upload {size}\n".encode())
        block = bytes(2**20)

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(size // len(block)):
                yield block

        await writer.websocket.send(upload())  # one 64 MiB message, a frame per MiB
        print((await reader.readline()).decode(), end="")

        writer.write(b"bye\n")
        print((await reader.readline()).decode(), end="")
        print("end of stream:", await reader.read() == b"", writer.websocket.close_code)
        writer.close()
        await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())

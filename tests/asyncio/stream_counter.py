"""A stream-mode server in a process of its own, whose memory a test reads.

    python tests/asyncio/stream_counter.py [--option NAME=VALUE ...]

Prints its port on the first line of standard output, then serves until
killed.  A connection to ``/N`` reads bytes with ``reader.read`` until
``N`` have come, answers with their count (ASCII) and closes; one to
``/stall`` never reads.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
from typing import Any

import rapidws


async def count(
    reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
) -> None:
    request = writer.websocket.request
    assert request is not None
    if request.path == "/stall":
        await writer.websocket.wait_closed()  # reads nothing: the queue fills, reading pauses
        return
    expected = int(request.path.lstrip("/"))
    total = 0
    while total < expected:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    writer.write(str(total).encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = ast.literal_eval(value)
    async with rapidws.serve(count, "127.0.0.1", 0, stream=True, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--option", action="append", default=[])
    asyncio.run(main(parser.parse_args()))

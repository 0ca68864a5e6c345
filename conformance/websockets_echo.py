"""Stand-in echo server on the `websockets` library, to check the harness itself.

Usage: python conformance/websockets_echo.py --host 127.0.0.1 --port 9001
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 2**25


async def echo(ws: ServerConnection) -> None:
    """Send every message back unchanged until the connection closes."""
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def serve_forever(host: str, port: int) -> None:
    async with serve(echo, host, port, max_size=MAX_SIZE, compression=None) as server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    asyncio.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()

"""An echo server in a process of its own, whose memory the hostile tests read.

    python tests/hostile/server.py [--api async|callback] [--uvloop] [--option NAME=VALUE ...]

Prints its port on the first line of standard output, then serves until
killed.  ``/reject`` answers 403 (a ``process_request`` rejection); every
other path echoes.  Warnings and errors go to standard error, one line each,
so that a test can count them.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import logging
import sys
from typing import Any

import rapidws
from rapidws.protocol.handshake import ServerHandshake
from rapidws.protocol.http11 import Request, Response


async def echo(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


class Echo(rapidws.Listener):
    def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
        conn.send(data)


def reject(connection: Any, request: Request) -> Response | None:
    if request.path == "/reject":
        response: Response = connection.handshake.reject(403, "Forbidden")
        return response
    return None


async def main(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = ast.literal_eval(value)
    if args.api == "callback":
        handshake = ServerHandshake()

        def factory(request: Request) -> rapidws.Listener | Response | None:
            if request.path == "/reject":
                return handshake.reject(403, "Forbidden")
            return Echo()

        server: Any = rapidws.serve_listener(factory, "127.0.0.1", 0, **options)
    else:
        server = rapidws.serve(echo, "127.0.0.1", 0, process_request=reject, **options)
    async with server as running:
        port = next(iter(running.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", choices=["async", "callback"], default="async")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--option", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))

"""An echo server in a process of its own, whose memory the hostile tests read.

    python tests/hostile/server.py [--api async|callback] [--uvloop]
        [--log-level WARNING] [--option NAME=VALUE ...]

Prints its port on the first line of standard output, then serves until
killed.  ``/reject`` answers 403 (a ``process_request`` rejection),
``/stats`` answers 200 with the open connections and the loop's tasks as
JSON; every other path echoes.  Log records go to standard error, one line
each (tracebacks aside), so that a test can count them.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
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


RUNNING: Any = None  # the server, once serving


def special(handshake: ServerHandshake, request: Request) -> Response | None:
    """The answer to ``/reject`` and ``/stats``; None for the echo."""
    if request.path == "/reject":
        return handshake.reject(403, "Forbidden")
    if request.path == "/stats":
        stats = {"connections": len(RUNNING.connections), "tasks": len(asyncio.all_tasks())}
        return handshake.reject(200, json.dumps(stats))
    return None


def reject(connection: Any, request: Request) -> Response | None:
    return special(connection.handshake, request)


async def main(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = ast.literal_eval(value)
    if args.api == "callback":
        handshake = ServerHandshake()

        def factory(request: Request) -> rapidws.Listener | Response | None:
            return special(handshake, request) or Echo()

        server: Any = rapidws.serve_listener(factory, "127.0.0.1", 0, **options)
    else:
        server = rapidws.serve(echo, "127.0.0.1", 0, process_request=reject, **options)
    global RUNNING
    async with server as running:
        RUNNING = running
        port = next(iter(running.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", choices=["async", "callback"], default="async")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--option", action="append", default=[])
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))

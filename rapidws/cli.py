"""Command line: ``rapidws echo`` (a demo and conformance server) and ``rapidws connect``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .asyncio.client import connect
from .asyncio.connection import Connection
from .asyncio.server import ServerConnection, serve
from .exceptions import ConnectionClosed
from .listener import Listener, ListenerConnection, serve_listener
from .protocol.http11 import Request

__all__ = ["main"]


async def echo_handler(ws: ServerConnection) -> None:
    """Send every message back: text as text, binary as binary."""
    async for message in ws:
        await ws.send(message)


class EchoListener(Listener):
    """The echo for the callback API."""

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


def _echo_listener(request: Request) -> Listener:
    return EchoListener()


async def run_echo(
    host: str,
    port: int,
    max_size: int | None,
    api: str = "async",
    max_fragment_size: int | None = None,
    subprotocols: Sequence[str] = (),
) -> None:
    server_context: serve
    options: dict[str, Any] = {
        "max_size": max_size,
        "ping_interval": None,
        "max_fragment_size": max_fragment_size,
    }
    # The echo speaks every subprotocol asked for (the first offered one it
    # knows, in the order given), and still echoes for clients offering none.
    names: list[str | None] = [*subprotocols, None]
    if api == "callback":
        factories = dict.fromkeys(names, _echo_listener)
        server_context = serve_listener(factories, host, port, **options)
    else:
        server_context = serve(dict.fromkeys(names, echo_handler), host, port, **options)
    async with server_context as server:
        for sock in server.sockets:
            address = sock.getsockname()
            print(f"rapidws echo server on ws://{address[0]}:{address[1]}/", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set_result, None)
        await stop


async def _print_incoming(ws: Connection) -> None:
    try:
        while True:
            message = await ws.recv()
            text = message if isinstance(message, str) else f"<binary {message.hex()}>"
            print(f"< {text}", flush=True)
    except ConnectionClosed:
        pass


async def run_connect(uri: str) -> int:
    """Send each line of stdin as a text message; print what arrives."""
    loop = asyncio.get_running_loop()
    async with connect(uri) as ws:
        printer = loop.create_task(_print_incoming(ws))
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or printer.done():
                break
            await ws.send(line.rstrip("\n"))
        await ws.close()
        await printer
    print(f"connection closed: {ws.close_code} {ws.close_reason or ''}".rstrip(), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rapidws", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument(
        "--max-size",
        type=int,
        default=2**25,
        help="largest message accepted, in bytes (default 32 MiB; 0: no limit)",
    )
    echo.add_argument(
        "--api",
        choices=["async", "callback"],
        default="async",
        help="serve through the async message API or the callback API",
    )
    echo.add_argument(
        "--max-fragment-size",
        type=int,
        default=0,
        help="largest frame payload sent, in bytes, compressed or not (default 0: no limit)",
    )
    echo.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="a subprotocol to accept (repeatable; the server's preference in that order)",
    )
    echo.add_argument("--uvloop", action="store_true", help="run on uvloop")
    echo.add_argument("--log-level", default="WARNING")
    client = commands.add_parser("connect", help="an interactive client")
    client.add_argument("uri")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "echo":
        logging.basicConfig(level=args.log_level.upper())
        main_coroutine = run_echo(
            args.host,
            args.port,
            args.max_size or None,
            args.api,
            args.max_fragment_size or None,
            args.subprotocol,
        )
        if args.uvloop:
            try:
                import uvloop
            except ImportError:
                main_coroutine.close()
                print("rapidws: --uvloop needs uvloop: pip install uvloop", file=sys.stderr)
                return 2
            uvloop.run(main_coroutine)
        else:
            asyncio.run(main_coroutine)
        return 0
    try:
        return asyncio.run(run_connect(args.uri))
    except (OSError, TimeoutError, ConnectionClosed) as exc:
        print(f"rapidws: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # handshake failures and the like
        print(f"rapidws: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

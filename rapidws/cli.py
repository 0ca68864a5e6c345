"""Command line: ``rapidws serve`` (the demo chat), ``rapidws echo`` (a conformance
server) and ``rapidws connect`` (an interactive client)."""

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


async def _until_signalled() -> None:
    """Return once the process gets SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set_result, None)
    await stop


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
        await _until_signalled()


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
    chat = commands.add_parser(
        "serve", help="run the demo chat: HTTP and WebSocket on http://127.0.0.1:8765/"
    )
    chat.add_argument("--host", default="127.0.0.1")
    chat.add_argument("--port", type=int, default=8765)
    chat.add_argument("--tls-cert", metavar="FILE", help="serve https:// and wss:// with this")
    chat.add_argument("--tls-key", metavar="FILE", help="the certificate's key (if not in it)")
    chat.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="on SIGINT/SIGTERM, how long connections get to close (seconds)",
    )
    chat.add_argument("--uvloop", action="store_true", help="run on uvloop")
    chat.add_argument("--log-level", default="INFO")
    client = commands.add_parser("connect", help="an interactive client")
    client.add_argument("uri")
    return parser


async def run_chat(
    host: str,
    port: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    shutdown_timeout: float = 10.0,
) -> None:
    """The demo chat (:mod:`rapidws.app.chat`) until SIGINT or SIGTERM, then a graceful stop.

    Stopping: no new connections, 1001 (going away) to every WebSocket,
    then up to ``shutdown_timeout`` seconds for the connections to close.
    """
    from .app.chat import MAX_SIZE, make_app

    ssl = None
    if tls_cert is not None:
        from .tls import server_context

        ssl = server_context(tls_cert, tls_key)
    async with make_app().serve(host, port, ssl=ssl, max_size=MAX_SIZE) as server:
        scheme = "https" if ssl is not None else "http"
        for sock in server.sockets:
            address = sock.getsockname()
            print(f"rapidws chat on {scheme}://{address[0]}:{address[1]}/", flush=True)
        await _until_signalled()
        logging.getLogger("rapidws").info("shutting down: 1001 to every connection")
        server.close(close_connections=True, code=1001, reason="server shutting down")
        try:
            await asyncio.wait_for(server.wait_closed(), shutdown_timeout)
        except TimeoutError:
            for conn in list(server.connections):
                conn._abort()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")
        coroutine = run_chat(
            args.host, args.port, args.tls_cert, args.tls_key, args.shutdown_timeout
        )
        if args.uvloop:
            import uvloop

            uvloop.run(coroutine)
        else:
            asyncio.run(coroutine)
        return 0
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

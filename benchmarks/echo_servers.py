"""Echo servers for the benchmarks: one WebSocket library per process.

    python benchmarks/echo_servers.py --lib rapidws --port 0 --compression deflate

Every library runs the same handler (``async for message in ws: await
ws.send(message)``), so text comes back as text and binary as binary.  Once
listening, the server prints ``READY <port> <pid>`` on stdout (``--port 0``
picks a free port) and serves until SIGTERM or SIGINT.  ``--profile FILE``
runs the event loop under cProfile and dumps the stats to FILE on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
from collections.abc import Callable
from typing import Any

from _harness import ensure_repo_on_path, raise_nofile_limit, run_loop

LIBS = ("rapidws", "websockets", "picows.websockets")


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def _serve_function(lib: str) -> Callable[..., Any]:
    if lib == "rapidws":
        ensure_repo_on_path()
        import rapidws

        return rapidws.serve
    if lib == "websockets":
        from websockets.asyncio.server import serve

        return serve
    if lib == "picows.websockets":
        import picows.websockets

        return picows.websockets.serve
    raise ValueError(f"unknown library: {lib}")


async def serve_until_signalled(args: argparse.Namespace) -> None:
    serve = _serve_function(args.lib)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    compression = None if args.compression == "none" else args.compression
    async with serve(
        echo,
        args.host,
        args.port,
        compression=compression,
        max_size=args.max_size,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"READY {port} {os.getpid()}", flush=True)
        await stop
        server.close()
        await asyncio.wait_for(server.wait_closed(), args.close_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", choices=LIBS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    parser.add_argument("--max-size", type=int, default=2**20, help="bytes per message")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--close-timeout", type=float, default=5.0)
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    args = parser.parse_args(argv)
    raise_nofile_limit()

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run_loop(serve_until_signalled(args), args.uvloop)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        run_loop(serve_until_signalled(args), args.uvloop)


if __name__ == "__main__":
    main()

"""Echo servers for the benchmarks: one library (or API) per process.

    python benchmarks/echo_servers.py --lib rapidws --port 0 [--uvloop] [--compression none]

Libraries (``--lib``):

- ``rapidws``: the async message API (``async for message in ws: await ws.send(message)``);
- ``rapidws+zlib-ng``: the same, compressing with zlib-ng (``rapidws.set_zlib_backend``);
- ``rapidws-split``: the same over the connection's halves (``ws.split()``): a task
  receives and hands each message to a sending task through a deque, which
  sends what has queued in one batch;
- ``rapidws-callback``: the callback API (:class:`rapidws.Listener`);
- ``rapidws-stream``: byte streams (``stream=True``): ``reader.read`` into ``writer.write``;
- ``websockets``, ``picows.websockets``: the same handler as ``rapidws``;
- ``picows``: picows' listener API, echoing each frame from ``on_ws_frame``;
- ``aiohttp``: ``web.WebSocketResponse`` in an aiohttp application;
- ``tcp``: a raw asyncio TCP echo, no WebSocket at all: the floor.

Text comes back as text and binary as binary.  Keepalive pings are off in
every library, so only the echo is on the wire.  Once listening, the server
prints ``READY <port> <pid>`` on stdout (``--port 0`` picks a free port) and
serves until SIGTERM or SIGINT.  ``--profile FILE`` runs the event loop under
cProfile and dumps the stats to FILE on exit.  The pure-Python build of
rapidws is selected by ``RAPIDWS_NO_EXTENSIONS=1`` in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from _harness import ensure_repo_on_path, raise_nofile_limit, run_loop

LIBS = (
    "rapidws",
    "rapidws+zlib-ng",
    "rapidws-split",
    "rapidws-callback",
    "rapidws-frames",
    "rapidws-attach",
    "rapidws-stream",
    "websockets",
    "picows.websockets",
    "picows",
    "aiohttp",
    "tcp",
)

Serving = AbstractAsyncContextManager[int]  # yields the bound port


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def split_echo(ws: Any) -> None:
    """The echo over the halves: one task receives and hands each message to a sending task.

    The receiver appends to an inbox; the sender takes the whole inbox at
    once and sends what has come meanwhile in one batch (one write).
    """
    sender, receiver = ws.split()
    loop = asyncio.get_running_loop()
    inbox: list[Any] = []
    idle: list[asyncio.Future[None]] = []  # the sender's wake-up, while it waits
    received_all = False

    async def send_all() -> None:
        nonlocal inbox
        send = sender.send
        while True:
            if not inbox:
                if received_all:
                    return
                waiter = loop.create_future()
                idle.append(waiter)
                await waiter
                continue
            batch, inbox = inbox, []
            if len(batch) == 1:
                await send(batch[0])
                continue
            async with sender.batch():  # what came meanwhile leaves in one write
                for message in batch:
                    await send(message)

    sending = asyncio.create_task(send_all())
    try:
        async for message in receiver:
            inbox.append(message)
            if idle:
                idle.pop().set_result(None)
    finally:
        received_all = True
        if idle:
            idle.pop().set_result(None)
        await sending


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options every websockets-shaped ``serve`` here gets."""
    return {
        "compression": None if args.compression == "none" else args.compression,
        "max_size": args.max_size,
        "ping_interval": None,
    }


@asynccontextmanager
async def _serving(server_context: Any, args: argparse.Namespace) -> AsyncIterator[int]:
    """Enter a websockets-shaped server; yield its port; close it and wait."""
    async with server_context as server:
        yield next(iter(server.sockets)).getsockname()[1]
        server.close()
        await asyncio.wait_for(server.wait_closed(), args.close_timeout)


def _websockets_like(lib: str, args: argparse.Namespace) -> Serving:
    if lib == "rapidws-split":
        ensure_repo_on_path()
        import rapidws

        return _serving(rapidws.serve(split_echo, args.host, args.port, **_options(args)), args)
    if lib == "rapidws":
        ensure_repo_on_path()
        import rapidws

        serve: Callable[..., Any] = rapidws.serve
    elif lib == "websockets":
        from websockets.asyncio.server import serve
    else:
        import picows.websockets

        serve = picows.websockets.serve
    return _serving(serve(echo, args.host, args.port, **_options(args)), args)


def _rapidws_callback(args: argparse.Namespace) -> Serving:
    ensure_repo_on_path()
    import rapidws

    class Echo(rapidws.Listener):
        def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
            conn.send(data)

    listener = Echo()  # stateless: one for all connections
    server = rapidws.serve_listener(
        lambda request: listener, args.host, args.port, **_options(args)
    )
    return _serving(server, args)


def _rapidws_frames(args: argparse.Namespace) -> Serving:
    """The frame API (frames=True): each frame echoed as it comes, as picows' listener does."""
    ensure_repo_on_path()
    import rapidws

    class FrameEcho(rapidws.Listener):
        def on_frame(self, conn: Any, frame: Any) -> None:
            if frame.opcode < 8:
                conn.send_frame(frame)

    listener = FrameEcho()
    server = rapidws.serve_listener(
        lambda request: listener, args.host, args.port, frames=True, **_options(args)
    )
    return _serving(server, args)


def _rapidws_stream(args: argparse.Namespace) -> Serving:
    """Byte streams: each read (a whole frame here: up to max_size) written back as a message."""
    ensure_repo_on_path()
    import rapidws

    size = args.max_size

    async def stream_echo(reader: Any, writer: Any) -> None:
        while data := await reader.read(size):
            writer.write(data)
            await writer.drain()

    server = rapidws.serve(stream_echo, args.host, args.port, stream=True, **_options(args))
    return _serving(server, args)


@asynccontextmanager
async def _rapidws_attach(args: argparse.Namespace) -> AsyncIterator[int]:
    """rapidws.attach on the streams of asyncio.start_server (the async API's echo)."""
    ensure_repo_on_path()
    import rapidws

    options = _options(args)

    async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ws = await rapidws.attach(reader, writer, side="server", **options)
        await echo(ws)
        await ws.close()

    server = await asyncio.start_server(on_stream, args.host, args.port)
    async with server:
        yield server.sockets[0].getsockname()[1]
        server.close()


@asynccontextmanager
async def _picows(args: argparse.Namespace) -> AsyncIterator[int]:
    import picows

    class Echo(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
                return
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

    server = await picows.ws_create_server(
        lambda request: Echo(), args.host, args.port, max_frame_size=args.max_size
    )
    async with server:
        yield server.sockets[0].getsockname()[1]
        server.close()


@asynccontextmanager
async def _aiohttp(args: argparse.Namespace) -> AsyncIterator[int]:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            max_msg_size=args.max_size, compress=args.compression != "none", heartbeat=None
        )
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    try:
        server = site._server
        assert server is not None
        yield server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


class _TcpEcho(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@asynccontextmanager
async def _tcp(args: argparse.Namespace) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_TcpEcho, args.host, args.port)
    async with server:
        yield server.sockets[0].getsockname()[1]
        server.close()


def serving(args: argparse.Namespace) -> Serving:
    if args.lib in ("rapidws", "rapidws-split", "websockets", "picows.websockets"):
        return _websockets_like(args.lib, args)
    if args.lib == "rapidws+zlib-ng":
        ensure_repo_on_path()
        from zlib_ng import zlib_ng

        import rapidws

        rapidws.set_zlib_backend(zlib_ng)
        return _websockets_like("rapidws", args)
    if args.lib == "rapidws-callback":
        return _rapidws_callback(args)
    if args.lib == "rapidws-frames":
        return _rapidws_frames(args)
    if args.lib == "rapidws-attach":
        return _rapidws_attach(args)
    if args.lib == "rapidws-stream":
        return _rapidws_stream(args)
    if args.lib == "picows":
        return _picows(args)
    if args.lib == "aiohttp":
        return _aiohttp(args)
    if args.lib == "tcp":
        return _tcp(args)
    raise ValueError(f"unknown library: {args.lib}")


async def serve_until_signalled(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    async with serving(args) as port:
        print(f"READY {port} {os.getpid()}", flush=True)
        await stop


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

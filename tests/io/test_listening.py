"""SocketServer and open_connection over loopback, on both loops; which transports rapidws picks."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any

import pytest

import rapidws
from rapidws import _accel
from rapidws.io import listening, network
from rapidws.io import sockets as sockets_module
from rapidws.io.listening import SocketServer, open_connection, start_server
from rapidws.io.sockets import SocketTransport

from .conftest import LoopRunner
from .test_sockets import Recorder


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def port(server: asyncio.AbstractServer) -> int:
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def test_server_and_client_exchange_then_close_waits_for_connections(run: LoopRunner) -> None:
    async def main() -> None:
        server = await start_server(Echo, "127.0.0.1", 0)
        assert server.is_serving()
        assert server.get_loop() is asyncio.get_running_loop()
        transport, protocol = await open_connection(Recorder, "127.0.0.1", port(server))
        assert isinstance(transport, SocketTransport)
        client: Any = protocol
        assert client.events == ["made"]
        transport.write(b"ping")
        await client.got_data.wait()
        assert client.data == b"ping"
        listening_port = port(server)
        server.close()
        assert not server.is_serving() and server.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await open_connection(Recorder, "127.0.0.1", listening_port)
        closed = asyncio.ensure_future(server.wait_closed())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not closed.done()  # the accepted connection is still open
        transport.close()
        await closed
        await server.wait_closed()  # done already

    run(main())


def test_close_clients_and_abort_clients(run: LoopRunner) -> None:
    async def main() -> None:
        server = await start_server(Echo, "127.0.0.1", 0)
        clients = [await open_connection(Recorder, "127.0.0.1", port(server)) for _ in range(2)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(server._transports) == 2
        server.close_clients()
        for _, protocol in clients:
            assert await protocol.lost is None  # type: ignore[attr-defined]
        third, protocol = await open_connection(Recorder, "127.0.0.1", port(server))
        third.write(b"x")
        await protocol.got_data.wait()  # type: ignore[attr-defined]
        server.abort_clients()
        server.close()
        await server.wait_closed()
        await protocol.lost  # type: ignore[attr-defined]

    run(main())


def test_serve_forever_runs_until_cancelled(run: LoopRunner) -> None:
    async def main() -> None:
        server = await start_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # closed

    run(main())


def test_binding_errors_and_arguments(run: LoopRunner) -> None:
    async def main() -> None:
        server = await start_server(Echo, "127.0.0.1", 0)
        with pytest.raises(OSError) as caught:
            await start_server(Echo, "127.0.0.1", port(server), reuse_address=False)
        assert caught.value.errno == errno.EADDRINUSE
        assert "error while attempting to bind on address" in str(caught.value)
        with pytest.raises(ValueError):
            await start_server(Echo, "127.0.0.1", 0, sock=socket.socket())
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(ValueError):
            await start_server(Echo, sock=udp)
        udp.close()
        server.close()
        await server.wait_closed()
        # sock=, and several hosts.
        sock = socket.create_server(("127.0.0.1", 0))
        given = await start_server(Echo, sock=sock)
        assert given.sockets == (sock,)
        many = await start_server(Echo, ["127.0.0.1", "localhost"], 0, reuse_port=True)
        assert len(many.sockets) >= 1
        for s in (given, many):
            s.close()
            await s.wait_closed()

    run(main())


def test_open_connection_tries_each_address(run: LoopRunner) -> None:
    async def main() -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            await open_connection(Recorder, "127.0.0.1", closed_port)
        server = await start_server(Echo, "127.0.0.1", 0)
        transport, protocol = await open_connection(Recorder, "localhost", port(server))
        assert transport.get_extra_info("peername")[0] == "127.0.0.1"
        transport.close()
        await protocol.lost  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(main())


def test_a_failing_factory_closes_only_its_connection(run: LoopRunner) -> None:
    async def main() -> None:
        calls = 0

        def factory() -> asyncio.Protocol:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("no protocol for you")
            return Echo()

        server = await start_server(factory, "127.0.0.1", 0)
        _, protocol = await open_connection(Recorder, "127.0.0.1", port(server))
        await protocol.lost  # type: ignore[attr-defined]
        assert [c["message"] for c in run.errors] == [
            "Error on transport creation for incoming connection"
        ]
        second, protocol = await open_connection(Recorder, "127.0.0.1", port(server))
        second.write(b"fine")
        await protocol.got_data.wait()  # type: ignore[attr-defined]
        second.close()
        server.close()
        await server.wait_closed()

    run(main(), errors_expected=True)


def test_running_out_of_descriptors_pauses_accepting(
    run: LoopRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listening, "ACCEPT_RETRY_DELAY", 0.0)

    class Exhausted:
        def accept(self) -> Any:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await start_server(Echo, "127.0.0.1", 0)
        resumed = loop.create_future()
        real_start = server._start_accepting

        def start_accepting() -> None:
            real_start()
            resumed.set_result(None)

        server._start_accepting = start_accepting  # type: ignore[method-assign]
        server._accept(Exhausted())  # type: ignore[arg-type]
        assert run.errors[0]["message"] == "socket.accept() out of system resource"
        await resumed
        transport, protocol = await open_connection(Recorder, "127.0.0.1", port(server))
        transport.write(b"back")
        await protocol.got_data.wait()  # type: ignore[attr-defined]
        transport.close()
        server.close()
        await server.wait_closed()

    run(main(), errors_expected=True)


# -- which transports rapidws chooses


def test_plain_tcp_runs_on_socket_transport() -> None:
    uvloop = pytest.importorskip("uvloop")
    server, client = network._SERVER_ARGUMENTS, network._CONNECTION_ARGUMENTS
    loops = [uvloop.new_event_loop(), asyncio.new_event_loop()]
    try:
        for loop in loops:
            assert network._own_transports(loop, {"host": "h", "port": 1, "ssl": None}, server)
            assert network._own_transports(loop, {"host": "h", "port": 1}, client)
            assert network._own_transports(loop, {}, server)
            assert not network._own_transports(loop, {"ssl": object()}, server)
            assert not network._own_transports(loop, {"local_addr": ("h", 1)}, client)
            assert not network._own_transports(loop, {"sock": None}, client)
    finally:
        for loop in loops:
            loop.close()


def test_rapidws_on_uvloop_echoes_through_socket_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("RAPIDWS_FASTNET", raising=False)  # the default transports

    async def main() -> None:
        opened: asyncio.Queue[rapidws.ServerConnection] = asyncio.Queue()

        async def handler(ws: rapidws.ServerConnection) -> None:
            opened.put_nowait(ws)
            async for message in ws:
                await ws.send(message)

        async with rapidws.serve(handler, "127.0.0.1", 0, max_size=None) as server:
            assert isinstance(server.server, SocketServer)
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with rapidws.connect(uri, max_size=None) as ws:
                conn = await opened.get()
                assert isinstance(conn.transport, SocketTransport)
                assert isinstance(ws.transport, SocketTransport)
                if _accel.is_compiled(sockets_module):
                    assert conn._fd == conn.transport.get_extra_info("socket").fileno()
                payloads = [os.urandom(n) for n in (0, 125, 70_000, 5_000_000)] + ["é" * 100_000]
                for payload in payloads:
                    await ws.send(payload)
                for payload in payloads:
                    assert await ws.recv() == payload
            await conn.wait_closed()
            assert conn.close_code == 1000
            assert conn._fd == -1

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()

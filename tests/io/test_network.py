"""Transports from rapidws, the loop or aiofastnet: the choice and each at work."""

from __future__ import annotations

import asyncio
import importlib
import ssl
from typing import cast

import pytest
import trustme

import rapidws
from rapidws.io import network
from rapidws.io.listening import SocketServer

from ..asyncio.helpers import echo, port_of


@pytest.mark.parametrize(
    ("fastnet", "env", "expected"),
    [
        (None, "", None),
        (None, "0", None),
        (None, "1", "aiofastnet"),
        (None, "auto", "aiofastnet"),
        (False, "1", None),
        (True, "0", "aiofastnet"),
    ],
)
def test_choice(
    monkeypatch: pytest.MonkeyPatch, fastnet: bool | None, env: str, expected: str | None
) -> None:
    monkeypatch.setenv("RAPIDWS_FASTNET", env)
    module = network.use_fastnet(fastnet)
    assert (module.__name__ if module else None) == expected


def test_auto_without_aiofastnet_uses_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setenv("RAPIDWS_FASTNET", "auto")
    monkeypatch.setattr(importlib, "import_module", missing)
    assert network.use_fastnet(None) is None
    with pytest.raises(ImportError):
        network.use_fastnet(True)


@pytest.mark.parametrize("server_fastnet", [False, True])
@pytest.mark.parametrize("client_fastnet", [False, True])
async def test_echo_over_either_transport(server_fastnet: bool, client_fastnet: bool) -> None:
    server_transports: list[str] = []

    async def recording_echo(ws: rapidws.ServerConnection) -> None:
        server_transports.append(type(ws.transport).__module__)
        await echo(ws)

    async with rapidws.serve(recording_echo, "127.0.0.1", 0, fastnet=server_fastnet) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}/"
        async with rapidws.connect(uri, fastnet=client_fastnet) as ws:
            assert type(ws.transport).__module__.startswith("aiofastnet") is client_fastnet
            big = bytes(range(256)) * 4096  # 1 MiB: several reads and writes
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send("text")
            assert await ws.recv() == "text"
        assert ws.close_code == 1000
    assert [m.startswith("aiofastnet") for m in server_transports] == [server_fastnet]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def echo_once(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    reply = await reader.readexactly(len(data))
    writer.close()
    return reply


async def test_plain_servers_run_on_socket_server() -> None:
    server = await network.create_server(Echo, False, host="127.0.0.1", port=0)
    async with server:
        assert isinstance(server, SocketServer)  # accepts without asyncio's task per connection
        port = server.sockets[0].getsockname()[1]
        replies = await asyncio.gather(*(echo_once(port, b"%d" % i) for i in range(50)))
        assert replies == [b"%d" % i for i in range(50)]
    with pytest.raises(OSError):  # closed: nothing accepts any more
        await echo_once(port, b"x")


async def test_tls_servers_run_on_the_loop() -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = await network.create_server(Echo, False, host="127.0.0.1", port=0, ssl=context)
    async with server:
        assert isinstance(server, asyncio.Server)

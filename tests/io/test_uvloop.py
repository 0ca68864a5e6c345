"""The transport layer on uvloop: shared read buffer, coalesced writes, TLS, closing.

The rest of the suite runs on asyncio's loop; these run the same paths on
uvloop's transports (and, with ``RAPIDWS_FASTNET=1``, on aiofastnet's).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Coroutine
from typing import Any

import pytest
import trustme

import rapidws

uvloop = pytest.importorskip("uvloop")


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


async def echo(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


class Echo(rapidws.Listener):
    def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
        conn.send(data)
        if data == "close":
            conn.close(4000, "asked")


async def exchange(uri: str, closing: bool, **kwargs: Any) -> None:
    async with rapidws.connect(uri, max_size=None, **kwargs) as ws:
        payloads: list[str | bytes] = [os.urandom(n) for n in (0, 1, 125, 70_000, 3_000_000)]
        payloads += ["text" * 1000] * 50
        for payload in payloads:  # all in flight at once
            await ws.send(payload)
        for payload in payloads:
            assert await ws.recv() == payload
        if closing:
            await ws.send("close")
            assert await ws.recv() == "close"
            with pytest.raises(rapidws.ConnectionClosed) as exc_info:
                await ws.recv()
            assert exc_info.value.code == 4000


async def both_apis(server_ssl: ssl.SSLContext | None, scheme: str, **client: Any) -> None:
    async with (
        rapidws.serve(echo, "127.0.0.1", 0, ssl=server_ssl, max_size=None) as server1,
        rapidws.serve_listener(
            lambda request: Echo(), "127.0.0.1", 0, ssl=server_ssl, max_size=None
        ) as server2,
    ):
        for server, closing in ((server1, False), (server2, True)):
            port = next(iter(server.sockets)).getsockname()[1]
            await exchange(f"{scheme}://127.0.0.1:{port}/", closing, **client)
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_echo_on_uvloop() -> None:
    run_on_uvloop(both_apis(None, "ws"))


def test_tls_echo_on_uvloop() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    run_on_uvloop(both_apis(server_context, "wss", ssl=client_context, server_hostname="localhost"))

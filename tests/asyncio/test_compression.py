"""permessage-deflate over real loopback sockets."""

from __future__ import annotations

import zlib

import pytest

import rapidws
from rapidws.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from rapidws.protocol.frames import Opcode

from .helpers import REQUEST, RawClient, port_of, running_server

TEXT = '{"event": "tick", "price": 101.25, "symbol": "RWS"}' * 80


async def test_deflate_is_negotiated_by_default() -> None:
    async with running_server() as (server, uri), rapidws.connect(uri) as ws:
        assert [ext.name for ext in ws.extensions] == ["permessage-deflate"]
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        (conn,) = server.connections
        assert [ext.name for ext in conn.extensions] == ["permessage-deflate"]
        for message in (TEXT, TEXT.encode(), "", b"", "x", b"\x00" * 2**20):
            await ws.send(message)
            assert await ws.recv() == message
        await ws.send([TEXT[:100], TEXT[100:]])
        assert await ws.recv() == TEXT
        await ws.send(TEXT, compress=False)
        assert await ws.recv() == TEXT


async def test_compression_none_turns_it_off() -> None:
    async with running_server(compression=None) as (_, uri):
        async with rapidws.connect(uri) as ws:
            assert ws.extensions == []
            await ws.send(TEXT)
            assert await ws.recv() == TEXT
        async with rapidws.connect(uri, compression=None) as ws:
            assert ws.extensions == []


async def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError):
        rapidws.connect("ws://127.0.0.1:1/", compression="brotli")


@pytest.mark.parametrize("takeover", [True, False])
async def test_custom_settings(takeover: bool) -> None:
    server_factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=not takeover,
        client_no_context_takeover=not takeover,
        server_max_window_bits=10,
    )
    client_factory = ClientPerMessageDeflateFactory(client_max_window_bits=9, level=1)
    async with (
        running_server(compression=None, extensions=[server_factory]) as (_, uri),
        rapidws.connect(uri, compression=None, extensions=[client_factory]) as ws,
    ):
        (ext,) = ws.extensions
        assert isinstance(ext, PerMessageDeflate)
        assert ext.remote_max_window_bits == 10
        assert ext.local_max_window_bits == 9
        assert ext.local_no_context_takeover is (not takeover)
        for _ in range(3):
            await ws.send(TEXT)
            assert await ws.recv() == TEXT


async def test_decompression_bomb_closes_1009_and_server_keeps_serving() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * 10_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    request = REQUEST.replace(
        b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    async with running_server(max_size=2**20) as (server, uri):
        raw, response = await RawClient.open(port_of(server), request)
        assert response is not None
        assert response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        raw.send_frame(Opcode.BINARY, bomb[:-4], rsv1=True)
        assert (await raw.read_close()).code == 1009
        raw.close()
        async with rapidws.connect(uri) as ws:
            await ws.send("alive")
            assert await ws.recv() == "alive"

"""Closing a server lets the plain HTTP responses in flight finish."""

from __future__ import annotations

import asyncio

import rapidws

from ..asyncio.helpers import port_of


async def test_a_response_in_flight_finishes_when_the_server_closes() -> None:
    app = rapidws.App()
    started = asyncio.Event()
    release = asyncio.Event()

    @app.get("/slow")
    async def slow(request: rapidws.HTTPRequest) -> str:
        started.set()
        await release.wait()
        return "finished"

    @app.websocket("/ws")
    async def ws_handler(ws: rapidws.ServerConnection) -> None:
        await ws.wait_closed()

    server = await app.serve("127.0.0.1", 0)
    port = port_of(server)
    ws = await rapidws.connect(f"ws://127.0.0.1:{port}/ws")
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    idle_writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")  # answered: now idle
    await idle_reader.readuntil(b"\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await started.wait()
    server.close()
    closed = asyncio.ensure_future(server.wait_closed())
    try:
        await ws.recv()
    except rapidws.ConnectionClosed as exc:
        assert exc.code == 1001  # WebSockets: going away at once
    rest = await asyncio.wait_for(idle_reader.read(), 2)  # the idle one closes at once
    assert rest.endswith(b"Not Found\n") or rest == b"", rest
    assert not closed.done()  # the response in flight holds the server
    release.set()
    answer = await reader.read()  # the whole response, then the close
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.endswith(b"\r\n\r\nfinished")
    writer.close()  # the server lingers until the client closes too (see _linger)
    idle_writer.close()
    await asyncio.wait_for(closed, 10)

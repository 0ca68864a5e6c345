"""The callback API over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging

import pytest

import rapidws
from rapidws.listener import Listener, ListenerConnection, connect_listener, serve_listener
from rapidws.protocol.frames import Opcode
from rapidws.protocol.http11 import Request, Response

from .asyncio.helpers import RawClient, port_of


class Echo(Listener):
    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)


class Recorder(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.messages: asyncio.Queue[tuple[int, str | bytes]] = asyncio.Queue()
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def on_open(self, conn: ListenerConnection) -> None:
        self.events.append(("open",))

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        self.messages.put_nowait((opcode, data))

    def on_error(self, conn: ListenerConnection, exc: BaseException) -> None:
        self.events.append(("error", type(exc).__name__))

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))


def route(request: Request) -> Listener | Response | None:
    return Echo() if request.path == "/echo" else None


async def test_listener_server_and_client() -> None:
    async with serve_listener(route, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}/echo"
        conn, client = await connect_listener(Recorder, uri)
        assert isinstance(client, Recorder)
        assert client.events == [("open",)]
        assert [ext.name for ext in conn.extensions] == ["permessage-deflate"]
        conn.send("text")
        conn.send(b"bytes")
        conn.send_frame(Opcode.TEXT, b"frag", fin=False)
        conn.send_frame(Opcode.CONT, b"mented")
        assert await client.messages.get() == (Opcode.TEXT, "text")
        assert await client.messages.get() == (Opcode.BINARY, b"bytes")
        assert await client.messages.get() == (Opcode.TEXT, "fragmented")
        assert 0 < await conn.ping() < 5
        conn.close(4001, "bye")
        assert await client.closed == (4001, "")  # the server echoes the code
        with pytest.raises(rapidws.ConnectionClosedError):
            conn.send("late")


async def test_factory_routes_and_rejects() -> None:
    async with serve_listener(route, "127.0.0.1", 0) as server:
        with pytest.raises(rapidws.InvalidStatus) as info:
            await connect_listener(Recorder, f"ws://127.0.0.1:{port_of(server)}/nowhere")
        assert info.value.response.status_code == 404


async def test_callback_exception_closes_1011_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Listener):
        def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
            raise ValueError("broken listener")

    with caplog.at_level(logging.ERROR, logger="rapidws"):
        async with serve_listener(lambda request: Broken(), "127.0.0.1", 0) as server:
            uri = f"ws://127.0.0.1:{port_of(server)}/"
            conn, client = await connect_listener(Recorder, uri)
            conn.send("boom")
            assert isinstance(client, Recorder)
            assert (await client.closed)[0] == 1011
            # The server keeps serving.
            other, other_client = await connect_listener(Recorder, uri)
            other.close()
            assert isinstance(other_client, Recorder)
            assert (await other_client.closed)[0] == 1000
    assert any("broken listener" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_protocol_error_reaches_on_error() -> None:
    recorders: list[Recorder] = []

    def factory(request: Request) -> Listener:
        recorders.append(Recorder())
        return recorders[-1]

    async with serve_listener(factory, "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server))
        raw.send_frame(Opcode.TEXT, b"\xff")
        assert (await raw.read_close()).code == 1007
        raw.close()
        (recorder,) = recorders
        assert (await recorder.closed)[0] == 1006  # no close frame came back
        assert ("error", "ProtocolError") in recorder.events


async def test_server_close_closes_listener_connections_1001() -> None:
    server = await serve_listener(route, "127.0.0.1", 0)
    conn, client = await connect_listener(Recorder, f"ws://127.0.0.1:{port_of(server)}/echo")
    server.close()
    await server.wait_closed()
    assert isinstance(client, Recorder)
    assert (await client.closed)[0] == 1001
    await conn.wait_closed()

"""``route``: websockets' URL router (werkzeug's Map) on rapidws."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

import rapidws
from rapidws.asyncio.router import Router, route, unix_route
from rapidws.protocol.http11 import Request, Response

from .helpers import REQUEST, RawClient, port_of

routing = pytest.importorskip("werkzeug.routing")


async def hello(ws: rapidws.ServerConnection) -> None:
    await ws.send("hello")


async def room(ws: rapidws.ServerConnection, name: str, number: int) -> None:
    await ws.send(f"{name}/{number}")


URL_MAP = routing.Map(
    [
        routing.Rule("/", endpoint=hello),
        routing.Rule("/rooms/<name>/<int:number>", endpoint=room),
        routing.Rule("/slash/", endpoint=hello),
    ]
)


async def test_route_dispatches_by_path_with_arguments() -> None:
    async with route(URL_MAP, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}"
        async with rapidws.connect(uri + "/") as ws:
            assert await ws.recv() == "hello"
        async with rapidws.connect(uri + "/rooms/blue/7?x=1") as ws:
            assert await ws.recv() == "blue/7"
        for path in ("/nowhere", "/rooms/blue/seven"):
            with pytest.raises(rapidws.InvalidStatus) as caught:
                await rapidws.connect(uri + path)
            assert caught.value.response.status_code == 404
        raw, response = await RawClient.open(port_of(server), REQUEST.replace(b"/chat", b"/slash"))
        assert response is not None and response.status_code == 302
        assert response.headers["Location"] == "ws://127.0.0.1/slash/"
        raw.close()


async def test_route_follows_redirects_like_a_client_would() -> None:
    async with (
        route(URL_MAP, "127.0.0.1", 0) as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}/slash") as ws,
    ):
        assert await ws.recv() == "hello"


async def test_process_request_runs_before_routing() -> None:
    async def guard(conn: Any, request: Request) -> Response | None:
        return conn.respond(403, "no") if "deny" in request.path else None  # type: ignore[no-any-return]

    async with route(URL_MAP, "127.0.0.1", 0, process_request=guard) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}"
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri + "/?deny")
        assert caught.value.response.status_code == 403
        async with rapidws.connect(uri + "/") as ws:
            assert await ws.recv() == "hello"


async def test_a_router_subclass_can_change_answers() -> None:
    class Teapot(Router):
        def not_found(self, connection: rapidws.ServerConnection) -> Response:
            return connection.respond(418, "I'm a teapot")

    async with route(URL_MAP, "127.0.0.1", 0, create_router=Teapot) as server:
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(f"ws://127.0.0.1:{port_of(server)}/nowhere")
        assert caught.value.response.status_code == 418


async def test_unix_route() -> None:
    import asyncio

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ws.sock")
        async with unix_route(URL_MAP, path, server_name="localhost"):
            reader, writer = await asyncio.open_unix_connection(path)
            ws = await rapidws.attach(reader, writer, uri="ws://localhost/rooms/a/1")
            assert isinstance(ws, rapidws.Connection)
            assert await ws.recv() == "a/1"
            await ws.close()

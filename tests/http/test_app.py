"""rapidws.App: routes, parameters, methods, WebSocket models and origins."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import rapidws
from rapidws.protocol.http11 import Response
from tests.asyncio.helpers import RawClient, port_of


def get(port: int, path: str, method: str = "GET", body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def ask(port: int, path: str, method: str = "GET", body: bytes = b"") -> Response:
    raw, response = await RawClient.open(port, get(port, path, method, body))
    raw.close()
    assert response is not None
    return response


async def test_params_query_and_return_types() -> None:
    app = rapidws.App()

    @app.get("/rooms/{name}")
    async def room(request: rapidws.HTTPRequest) -> Any:
        return {"room": request.params["name"], "q": request.query, "path": request.path}

    @app.get("/items/{id:int}")
    def item(request: rapidws.HTTPRequest) -> str:
        return f"item {request.params['id'] + 1}"

    @app.get("/files/{rest:path}")
    def files(request: rapidws.HTTPRequest) -> bytes:
        return request.params["rest"].encode()

    @app.route("/form", methods=["POST", "PUT"])
    async def form(request: rapidws.HTTPRequest) -> Response:
        return rapidws.json_response({"method": request.method, "text": await request.text()})

    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        response = await ask(port, "/rooms/a%20b?x=1&y=2")
        assert response.headers["Content-Type"] == "application/json"
        assert response.body == b'{"room":"a b","q":{"x":"1","y":"2"},"path":"/rooms/a b"}'
        assert (await ask(port, "/items/41")).body == b"item 42"
        assert (await ask(port, "/items/x")).status_code == 404
        assert (await ask(port, "/files/a/b/c.txt")).body == b"a/b/c.txt"
        response = await ask(port, "/form", "PUT", b"hi")
        assert response.body == b'{"method":"PUT","text":"hi"}'
        response = await ask(port, "/form")
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST, PUT"


async def test_handler_errors_are_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = rapidws.App()

    @app.get("/boom")
    async def boom(request: rapidws.HTTPRequest) -> Response:
        raise RuntimeError("boom")

    @app.get("/odd")
    async def odd(request: rapidws.HTTPRequest) -> Any:
        return 42

    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        assert (await ask(port, "/boom")).status_code == 500
        assert (await ask(port, "/odd")).status_code == 500
    assert "HTTP handler failed" in caplog.text


async def test_process_response_adds_headers() -> None:
    async def add(request: rapidws.HTTPRequest, response: Response) -> None:
        response.headers["X-Frame-Options"] = "DENY"

    app = rapidws.App(process_response=add)
    app.add_route("/", lambda request: "ok")
    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        assert (await ask(port, "/")).headers["X-Frame-Options"] == "DENY"
        assert (await ask(port, "/missing")).headers["X-Frame-Options"] == "DENY"


class Recorder(rapidws.Listener):
    def on_message(self, conn: rapidws.ListenerConnection, opcode: int, data: Any) -> None:
        conn.send(f"cb:{data}")


async def test_websocket_models_per_route() -> None:
    app = rapidws.App()

    @app.websocket("/async/{name}")
    async def by_name(ws: rapidws.ServerConnection, name: str) -> None:
        async for message in ws:
            await ws.send(f"{name}:{message}")

    @app.websocket("/frames", frames=True)
    async def frames(ws: rapidws.ServerConnection) -> None:
        frame = await ws.recv_frame()
        await ws.send(f"frame:{frame.opcode}:{frame.payload!r}")

    @app.websocket("/stream/{tag}", stream=True)
    async def lines(reader: Any, writer: Any, tag: str) -> None:
        line = await reader.readline()
        writer.write(tag.encode() + b":" + line)
        await writer.drain()

    app.websocket("/callback", listener=Recorder())
    app.websocket("/factory", listener=lambda request: Recorder())

    async with app.serve("127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}"
        async with rapidws.connect(uri + "/async/bob") as ws:
            await ws.send("hi")
            assert await ws.recv() == "bob:hi"
        async with rapidws.connect(uri + "/frames") as ws:
            await ws.send("x")
            assert await ws.recv() == "frame:1:b'x'"
        async with rapidws.connect(uri + "/stream/t") as ws:
            await ws.send(b"one line\n")
            assert await ws.recv() == b"t:one line\n"
        for path in ("/callback", "/factory"):
            async with rapidws.connect(uri + path) as ws:
                await ws.send("y")
                assert await ws.recv() == "cb:y"
        with pytest.raises(rapidws.InvalidStatus) as info:
            await rapidws.connect(uri + "/nowhere")
        assert info.value.response.status_code == 404


ORIGINS = [
    # (App's origins, Origin sent, accepted)
    (None, None, True),
    (None, "http://127.0.0.1:{port}", True),
    (None, "https://evil.example", False),
    (None, "null", False),
    (None, "http://127.0.0.1:1", False),
    (["https://good.example"], "https://good.example", True),
    (["https://good.example"], None, False),
    (["https://good.example", None], None, True),
    ([re.compile(r"https://[a-z]+\.good\.example")], "https://a.good.example", True),
    ([re.compile(r"https://[a-z]+\.good\.example")], "https://a.good.example.evil", False),
    ("*", "null", True),
]


@pytest.mark.parametrize(("origins", "origin", "accepted"), ORIGINS)
async def test_origins(origins: Any, origin: str | None, accepted: bool) -> None:
    app = rapidws.App(origins=origins)

    @app.websocket("/ws")
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send("in")

    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        sent = None if origin is None else origin.format(port=port)
        if accepted:
            async with rapidws.connect(f"ws://127.0.0.1:{port}/ws", origin=sent) as ws:
                assert await ws.recv() == "in"
        else:
            with pytest.raises(rapidws.InvalidStatus) as info:
                await rapidws.connect(f"ws://127.0.0.1:{port}/ws", origin=sent)
            assert info.value.response.status_code == 403


async def test_app_keeps_serving_after_many_kinds_of_requests() -> None:
    app = rapidws.App()
    app.add_route("/", lambda request: "ok")
    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        await asyncio.gather(*(ask(port, "/") for _ in range(20)))
        assert (await ask(port, "/")).body == b"ok"


def test_bad_routes() -> None:
    app = rapidws.App()
    with pytest.raises(ValueError):
        app.add_route("no-slash", lambda request: "")
    with pytest.raises(ValueError):
        app.add_route("/{a}/{a}", lambda request: "")
    with pytest.raises(ValueError):
        rapidws.App(origins="http://x")

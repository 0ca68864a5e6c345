"""HTTP and WebSocket on one port: rapidws.App with routes, a WebSocket room and static files.

Run it: it serves on a free port, asks a few plain HTTP requests (one
keep-alive connection, via http.client), joins a WebSocket room, then ends.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import tempfile
from collections.abc import AsyncIterator

import rapidws

app = rapidws.App()  # WebSocket handshakes: same origin only, by default
rooms: dict[str, set[rapidws.ServerConnection]] = {}


@app.get("/")
async def index(request: rapidws.HTTPRequest) -> rapidws.Response:
    return rapidws.html_response('<script src="/static/app.js"></script>')


@app.get("/rooms/{name}")
async def room_info(request: rapidws.HTTPRequest) -> dict[str, object]:
    name = request.params["name"]
    return {"room": name, "members": len(rooms.get(name, ()))}  # a dict: JSON


@app.post("/echo")
async def echo(request: rapidws.HTTPRequest) -> bytes:
    return await request.body()  # read within max_body (413 beyond)


@app.post("/upload")
async def upload(request: rapidws.HTTPRequest) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():  # as it arrives; reading pauses while we lag
        size += len(chunk)
    return {"received": size}


@app.get("/count")
async def count(request: rapidws.HTTPRequest) -> rapidws.Response:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"{i}\n".encode()

    return rapidws.stream_response(numbers(), content_type="text/plain")  # chunked


@app.websocket("/ws/{name}")
async def chat(ws: rapidws.ServerConnection, name: str) -> None:
    members = rooms.setdefault(name, set())
    members.add(ws)
    try:
        async for message in ws:
            for member in members:
                await member.send(f"[{name}] {message}")
    finally:
        members.discard(ws)


def browse(port: int) -> None:
    """What a browser would do, with the standard library's client (one connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for method, path, body in [
        ("GET", "/", None),
        ("GET", "/static/app.js", None),
        ("GET", "/rooms/lobby", None),
        ("POST", "/echo", b"ping"),
        ("POST", "/upload", iter([b"x" * 65536] * 8)),  # chunked: 512 KiB, streamed
        ("GET", "/count", None),
        ("HEAD", "/", None),
        ("GET", "/missing", None),
        ("GET", "/static/../secret", None),
    ]:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        print(method, path, "->", response.status, data[:40])
    conn.close()
    # An HTTP/1.0 client (as ab or a health checker): answered, then closed.
    old = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    old._http_vsn, old._http_vsn_str = 10, "HTTP/1.0"  # type: ignore[attr-defined]
    old.request("GET", "/rooms/lobby")
    response = old.getresponse()
    print("HTTP/1.0 GET /rooms/lobby ->", response.status, response.getheader("Connection"))
    old.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "app.js"), "w") as file:
            file.write("console.log('hi');")
        app.static("/static", folder)
        async with app.serve("127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with rapidws.connect(f"ws://127.0.0.1:{port}/ws/lobby") as ws:
                await asyncio.to_thread(browse, port)
                await ws.send("hello")
                print("websocket:", await ws.recv())


if __name__ == "__main__":
    asyncio.run(main())

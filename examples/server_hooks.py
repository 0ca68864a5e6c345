"""A server as websockets users write one: hooks, Basic auth, a handler per subprotocol.

    python examples/server_hooks.py

``process_request`` may be a coroutine function; here it answers a health
check over plain HTTP and otherwise asks for HTTP Basic credentials
(``basic_auth``).  The handlers are chosen by subprotocol: a client offering
``chat`` or ``echo`` gets that handler, one offering neither gets HTTP 400.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import rapidws
from rapidws.protocol.http11 import Request, Response

auth = rapidws.basic_auth(realm="example", credentials=("alice", "s3cret"))


async def process_request(connection: Any, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(200, "OK")  # type: ignore[no-any-return]
    return await auth(connection, request)


async def chat(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(f"{ws.username} says {message}")


async def echo(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    handlers = {"chat": chat, "echo": echo}
    async with rapidws.serve(handlers, "127.0.0.1", 0, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        print("health check:", (await reader.readline()).decode().strip())
        writer.close()

        uri = f"ws://alice:s3cret@127.0.0.1:{port}/"  # credentials go as HTTP Basic
        for offers in (["chat"], ["echo"]):
            async with rapidws.connect(uri, subprotocols=offers) as ws:
                await ws.send("hello")
                print(f"{ws.subprotocol}:", await ws.recv())
        for bad_uri, offers in ((uri, ["other"]), (f"ws://127.0.0.1:{port}/", ["chat"])):
            try:
                await rapidws.connect(bad_uri, subprotocols=offers)
            except rapidws.InvalidStatus as exc:
                print("refused:", exc.response.status_code, exc.response.body.decode().strip())
        token = base64.b64encode(b"alice:wrong").decode()
        try:
            await rapidws.connect(
                uri.replace("alice:s3cret@", ""),
                subprotocols=["chat"],
                additional_headers={"Authorization": f"Basic {token}"},
            )
        except rapidws.InvalidStatus as exc:
            print("refused:", exc.response.status_code, exc.response.body.decode().strip())


if __name__ == "__main__":
    asyncio.run(main())

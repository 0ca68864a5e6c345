"""The opening handshake as a step of its own (as Rust's soketto), then WebSocket.

    python examples/handshake_step.py

The server reads the request, looks at it and decides: accept (with a
subprotocol and extra headers), reject (any status) or redirect.  The
client gets Accepted, Redirect or Rejected.  Only then does either side
attach rapidws to the stream, with no handshake of its own.
"""

from __future__ import annotations

import asyncio

import rapidws


async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pending = await rapidws.server_handshake(reader, writer, subprotocols=["chat"])
    if pending.request.path == "/old":
        pending.redirect(308, "/chat")
    elif pending.request.headers.get("Authorization") != "Bearer secret":
        pending.reject(401, "Who are you?", [("WWW-Authenticate", "Bearer")])
    else:
        accept = pending.accept(headers=[("X-Welcome", "yes")])
        ws = await rapidws.attach(
            reader,
            writer,
            side="server",
            handshake=False,
            subprotocol=accept.subprotocol,
            extensions=accept.extensions,
        )
        async for message in ws:
            await ws.send(f"{ws.subprotocol}: {message}")
        await ws.close()
        return
    await writer.drain()
    writer.close()


async def open_once(port: int, path: str, token: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    outcome = await rapidws.client_handshake(
        reader,
        writer,
        f"ws://127.0.0.1:{port}{path}",
        subprotocols=["chat"],
        additional_headers=[("Authorization", f"Bearer {token}")],
    )
    if isinstance(outcome, rapidws.Redirect):
        print(f"{path}: redirected ({outcome.status_code}) to {outcome.location}")
    elif isinstance(outcome, rapidws.Rejected):
        print(f"{path}: rejected ({outcome.status_code}): {outcome.body.decode().strip()}")
    else:
        ws = await rapidws.attach(
            reader,
            writer,
            handshake=False,
            subprotocol=outcome.subprotocol,
            extensions=outcome.extensions,
        )
        await ws.send("hello")
        print(
            f"{path}: accepted, X-Welcome={outcome.response.headers['X-Welcome']},", await ws.recv()
        )
        await ws.close()
        return
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(on_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await open_once(port, "/old", "secret")
        await open_once(port, "/chat", "wrong")
        await open_once(port, "/chat", "secret")


if __name__ == "__main__":
    asyncio.run(main())

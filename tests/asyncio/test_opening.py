"""The opening handshake as a step of its own over asyncio streams, then attach."""

from __future__ import annotations

import asyncio

import pytest

import rapidws
from rapidws.exceptions import InvalidHandshake
from rapidws.protocol.frames import Frame, Opcode

from .test_attach import stream_pair


async def test_handshake_then_attach_without_one() -> None:
    (client_r, client_w), (server_r, server_w) = await stream_pair()

    async def server_side() -> rapidws.Connection:
        pending = await rapidws.server_handshake(server_r, server_w, subprotocols=["chat"])
        assert pending.request.path == "/room/1"
        accept = pending.accept(headers=[("X-Room", "1")])
        return await rapidws.attach(  # type: ignore[return-value]
            server_r,
            server_w,
            side="server",
            handshake=False,
            subprotocol=accept.subprotocol,
            extensions=accept.extensions,
        )

    serving = asyncio.create_task(server_side())
    outcome = await rapidws.client_handshake(
        client_r, client_w, "ws://example.com/room/1", subprotocols=["chat"]
    )
    assert isinstance(outcome, rapidws.Accepted)
    assert outcome.response.headers["X-Room"] == "1"
    client = await rapidws.attach(
        client_r,
        client_w,
        handshake=False,
        subprotocol=outcome.subprotocol,
        extensions=outcome.extensions,
    )
    server = await serving
    assert client.subprotocol == server.subprotocol == "chat"
    message = "compressed, as negotiated " * 100
    await client.send(message)
    assert await server.recv() == message
    await server.send(b"back")
    assert await client.recv() == b"back"
    closing = asyncio.create_task(client.close())
    with pytest.raises(rapidws.ConnectionClosedOK):
        await server.recv()
    await server.close()
    await closing


async def test_frames_right_behind_the_request_reach_the_connection() -> None:
    (peer_r, peer_w), (server_r, server_w) = await stream_pair()
    peer_w.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        + Frame(Opcode.TEXT, b"eager").serialize(mask=True)
    )
    pending = await rapidws.server_handshake(server_r, server_w, compression=None)
    accept = pending.accept()
    server = await rapidws.attach(
        server_r, server_w, side="server", handshake=False, extensions=accept.extensions
    )
    assert await server.recv() == "eager"
    assert (await peer_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    peer_w.close()
    await server.wait_closed()


@pytest.mark.parametrize("answer", ["redirect", "reject"])
async def test_redirect_and_reject_leave_the_stream_open(answer: str) -> None:
    (client_r, client_w), (server_r, server_w) = await stream_pair()

    async def server_side() -> None:
        pending = await rapidws.server_handshake(server_r, server_w)
        if answer == "redirect":
            pending.redirect(307, "/moved")
        else:
            pending.reject(401, "Who are you?", [("WWW-Authenticate", "Basic")])
        assert await server_r.readline() == b"still here\n"

    serving = asyncio.create_task(server_side())
    outcome = await rapidws.client_handshake(client_r, client_w, "ws://x/")
    if answer == "redirect":
        assert isinstance(outcome, rapidws.Redirect)
        assert (outcome.status_code, outcome.location) == (307, "/moved")
    else:
        assert isinstance(outcome, rapidws.Rejected)
        assert outcome.status_code == 401
        assert outcome.headers["WWW-Authenticate"] == "Basic"
        assert outcome.body == b"Who are you?\n"
    client_w.write(b"still here\n")
    await serving
    client_w.close()
    server_w.close()


async def test_garbage_is_answered_400_and_raises() -> None:
    (peer_r, peer_w), (server_r, server_w) = await stream_pair()
    peer_w.write(b"GARBAGE\r\n\r\n")
    with pytest.raises(InvalidHandshake):
        await rapidws.server_handshake(server_r, server_w)
    assert (await peer_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    peer_w.close()
    server_w.close()


@pytest.mark.parametrize("side", ["client", "server"])
async def test_no_answer_times_out_naming_the_step(side: str) -> None:
    (client_r, client_w), (server_r, server_w) = await stream_pair()
    with pytest.raises(TimeoutError, match=f"{side}_handshake.*0.1 seconds"):
        if side == "client":
            await rapidws.client_handshake(client_r, client_w, "ws://x/", timeout=0.1)
        else:
            await rapidws.server_handshake(server_r, server_w, timeout=0.1)
    client_w.close()
    server_w.close()

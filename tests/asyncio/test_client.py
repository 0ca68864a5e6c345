"""The client over real loopback sockets, against rapidws and hand-driven servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme

import rapidws
from rapidws.exceptions import InvalidHeaderValue, InvalidURI, NegotiationError
from rapidws.protocol.frames import Close, Frame, Opcode
from rapidws.protocol.handshake import accept_key
from rapidws.protocol.http11 import RequestParser

from .helpers import echo, running_server

Respond = Callable[[str], bytes]  # Sec-WebSocket-Key -> bytes to answer with


@contextlib.asynccontextmanager
async def raw_server(respond: Respond | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server that answers the handshake with ``respond(key)`` then records frames."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RequestParser()
        buffer = b""
        while (parsed := parser.parse(buffer)) is None:
            data = await reader.read(4096)
            if not data:
                return
            buffer += data
        request, _ = parsed
        if respond is None:
            await reader.read()  # never answer
            return
        writer.write(respond(request.headers["Sec-WebSocket-Key"]))
        while data := await reader.read(65536):
            received.append(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/", received
    finally:
        server.close()


def switching(key: str, extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n{extra}\r\n"
    ).encode()


async def test_frames_sent_right_after_the_101_are_not_lost() -> None:
    def respond(key: str) -> bytes:
        return switching(key) + Frame(Opcode.TEXT, b"early").serialize()

    async with raw_server(respond) as (uri, _):
        ws = await rapidws.connect(uri, close_timeout=0.1)
        assert await ws.recv() == "early"
        ws.transport.abort()  # type: ignore[union-attr]


async def test_wrong_accept_key_fails_the_handshake() -> None:
    async with raw_server(lambda key: switching("x" + key)) as (uri, _):
        with pytest.raises(InvalidHeaderValue):
            await rapidws.connect(uri)


async def test_subprotocol_not_offered_fails_the_handshake() -> None:
    respond: Respond = lambda key: switching(key, "Sec-WebSocket-Protocol: evil\r\n")  # noqa: E731
    async with raw_server(respond) as (uri, _):
        with pytest.raises(NegotiationError):
            await rapidws.connect(uri, subprotocols=["good"])


async def test_extension_not_offered_fails_the_handshake() -> None:
    respond: Respond = lambda key: switching(key, "Sec-WebSocket-Extensions: x-evil\r\n")  # noqa: E731
    async with raw_server(respond) as (uri, _):
        with pytest.raises(NegotiationError):
            await rapidws.connect(uri)


async def test_rejection_raises_invalid_status_with_the_response() -> None:
    body = b"go away\n"
    respond: Respond = lambda key: (  # noqa: E731
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    async with raw_server(respond) as (uri, _):
        with pytest.raises(rapidws.InvalidStatus) as info:
            await rapidws.connect(uri)
    assert info.value.response.status_code == 403
    assert info.value.response.body == body


async def test_garbage_response_raises_invalid_message() -> None:
    async with raw_server(lambda key: b"SSH-2.0-OpenSSH\r\n\r\n") as (uri, _):
        with pytest.raises(rapidws.InvalidMessage):
            await rapidws.connect(uri)


async def test_open_timeout_when_the_server_never_answers() -> None:
    async with raw_server(None) as (uri, _):
        with pytest.raises(asyncio.TimeoutError):
            await rapidws.connect(uri, open_timeout=0.2)


async def test_redirects_are_followed() -> None:
    async with running_server() as (_, target):
        respond: Respond = lambda key: (  # noqa: E731
            f"HTTP/1.1 302 Found\r\nLocation: {target}/moved\r\nContent-Length: 0\r\n\r\n".encode()
        )
        async with raw_server(respond) as (uri, _), rapidws.connect(uri) as ws:
            assert ws.request is not None and ws.request.path == "/moved"
            await ws.send("here")
            assert await ws.recv() == "here"


async def test_redirect_loop_is_bounded() -> None:
    holder: list[str] = []
    respond: Respond = lambda key: (  # noqa: E731
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {holder[0]}\r\n\r\n".encode()
    )
    async with raw_server(respond) as (uri, _):
        holder.append(uri)
        with pytest.raises(rapidws.SecurityError):
            await rapidws.connect(uri, max_redirects=3)


async def test_client_max_size_closes_1009() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send(b"x" * 2000)
        await ws.wait_closed()

    async with running_server(handler) as (_, uri):
        ws = await rapidws.connect(uri, max_size=1000)
        with pytest.raises(rapidws.ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.sent_code == 1009
        assert isinstance(info.value.__cause__, rapidws.PayloadTooBig)


async def test_masked_frame_from_server_closes_1002() -> None:
    def respond(key: str) -> bytes:
        return switching(key) + Frame(Opcode.TEXT, b"masked").serialize(mask=True)

    async with raw_server(respond) as (uri, received):
        ws = await rapidws.connect(uri, close_timeout=0.2)
        with pytest.raises(rapidws.ConnectionClosedError):
            await ws.recv()
        await ws.wait_closed()
    parsed = Frame.parse(b"".join(received))
    assert parsed is not None
    frame, masked, _ = parsed
    assert masked and frame.opcode == Opcode.CLOSE
    assert Close.parse(frame.payload).code == 1002


@pytest.mark.parametrize(
    "uri", ["http://example.com/", "ws://", "ws://host/#fragment", "ws://host:99999/"]
)
async def test_invalid_uri(uri: str) -> None:
    with pytest.raises(InvalidURI):
        await rapidws.connect(uri)


# --- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_wss_with_a_trusted_ca(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with rapidws.serve(
        lambda ws: ws.send("secure"), "127.0.0.1", 0, ssl=server_context
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(
            f"wss://127.0.0.1:{port}/", ssl=client_context, server_hostname="localhost"
        ) as ws:
            assert await ws.recv() == "secure"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object") is not None


async def test_wss_echoes_small_and_large_messages_both_apis(ca: trustme.CA) -> None:
    """TLS delivers reads through the shared read buffer too, many frames at a time."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    class Echo(rapidws.Listener):
        def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
            conn.send(data)
            if data == "close":
                conn.close(4000, "asked")  # a TLS close inside the read's handling

    sizes = [0, 1, 125, 70_000, 1_000_000]
    async with (
        rapidws.serve(echo, "127.0.0.1", 0, ssl=server_context, max_size=None) as server1,
        rapidws.serve_listener(
            lambda request: Echo(), "127.0.0.1", 0, ssl=server_context, max_size=None
        ) as server2,
    ):
        for server in (server1, server2):
            port = next(iter(server.sockets)).getsockname()[1]
            async with rapidws.connect(
                f"wss://127.0.0.1:{port}/",
                ssl=client_context,
                server_hostname="localhost",
                max_size=None,
            ) as ws:
                payloads = [os.urandom(size) for size in sizes] + ["text" * 1000] * 50
                for payload in payloads:  # all in flight at once
                    await ws.send(payload)
                for payload in payloads:
                    assert await ws.recv() == payload
                if server is server2:
                    await ws.send("close")
                    assert await ws.recv() == "close"
                    with pytest.raises(rapidws.ConnectionClosed) as exc_info:
                        await ws.recv()
                    assert exc_info.value.rcvd is not None
                    assert exc_info.value.rcvd.code == 4000


async def test_wss_rejects_an_untrusted_certificate(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    async with rapidws.serve(
        lambda ws: ws.send("secure"), "127.0.0.1", 0, ssl=server_context
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await rapidws.connect(f"wss://127.0.0.1:{port}/", server_hostname="localhost")

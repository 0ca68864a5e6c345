"""attach / detach: WebSocket on streams the application opened, and back."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

import rapidws
from rapidws.exceptions import ConnectionClosedOK, InvalidState
from rapidws.listener import Listener, ListenerConnection
from rapidws.protocol.frames import Close, Frame, Opcode


async def stream_pair() -> tuple[
    tuple[asyncio.StreamReader, asyncio.StreamWriter],
    tuple[asyncio.StreamReader, asyncio.StreamWriter],
]:
    """Two ends of a socketpair, as asyncio streams."""
    a, b = socket.socketpair()
    return await asyncio.open_connection(sock=a), await asyncio.open_connection(sock=b)


async def attach_both(**options: Any) -> tuple[Any, Any]:
    (client_r, client_w), (server_r, server_w) = await stream_pair()
    return await asyncio.gather(
        rapidws.attach(client_r, client_w, side="client", uri="ws://example.com/chat", **options),
        rapidws.attach(server_r, server_w, side="server", **options),
    )


@pytest.mark.parametrize("handshake", [True, False])
async def test_conversation_then_detach_then_a_line_protocol(handshake: bool) -> None:
    client, server = await attach_both(handshake=handshake)
    if handshake:
        assert server.request.path == "/chat"
        assert server.request.headers["Host"] == "example.com"
        assert client.response.status_code == 101
    await client.send("hello")
    assert await server.recv() == "hello"
    await server.send(b"\x00\x01")
    assert await client.recv() == b"\x00\x01"

    # The client detaches: the server sees the close, then detaches too.
    detached = asyncio.create_task(client.detach())
    with pytest.raises(ConnectionClosedOK):
        await server.recv()
    server_reader, server_writer = await server.detach()
    client_reader, client_writer = await detached
    assert client.state == server.state == rapidws.State.CLOSED
    assert client.close_code == server.close_code == 1000

    # The same socket now carries lines, both ways.
    client_writer.write(b"PING line\n")
    assert await server_reader.readline() == b"PING line\n"
    server_writer.write(b"PONG line\n")
    assert await client_reader.readline() == b"PONG line\n"
    client_writer.close()
    assert await server_reader.read() == b""
    server_writer.close()


async def test_bytes_after_the_close_frame_are_read_first_after_detach() -> None:
    (peer_r, peer_w), (server_r, server_w) = await stream_pair()
    server = await rapidws.attach(server_r, server_w, side="server", handshake=False)
    # One write: a message, the close frame, then the next protocol's bytes.
    peer_w.write(
        Frame(Opcode.TEXT, b"last").serialize(mask=True)
        + Frame(Opcode.CLOSE, Close(1000, "bye").serialize()).serialize(mask=True)
        + b"after the close\n"
    )
    assert await server.recv() == "last"
    reader, writer = await server.detach()
    assert await reader.readline() == b"after the close\n"
    # The server's close frame went out, and nothing after it.
    head = await peer_r.readexactly(2)
    assert head[0] == 0x88
    payload = await peer_r.readexactly(head[1])
    assert Close.parse(payload).code == 1000
    writer.write(b"reply\n")
    assert await peer_r.readline() == b"reply\n"
    writer.close()
    peer_w.close()


async def test_bytes_buffered_in_the_reader_before_attach_are_not_lost() -> None:
    (_, peer_w), (server_r, server_w) = await stream_pair()
    peer_w.write(b"PROTO websocket\n" + Frame(Opcode.BINARY, b"early").serialize(mask=True))
    assert await server_r.readline() == b"PROTO websocket\n"  # the rest waits in the reader
    server = await rapidws.attach(server_r, server_w, side="server", handshake=False)
    assert await server.recv() == b"early"
    peer_w.close()
    await server.wait_closed()
    assert server.close_code == 1006


async def test_frames_sent_before_the_101_went_out_are_not_lost() -> None:
    (peer_r, peer_w), (server_r, server_w) = await stream_pair()
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    peer_w.write(request + Frame(Opcode.TEXT, b"eager").serialize(mask=True))
    server = await rapidws.attach(server_r, server_w, side="server", compression=None)
    assert await server.recv() == "eager"
    assert (await peer_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    peer_w.close()
    await server.wait_closed()


async def test_a_handshake_head_that_never_ends_times_out() -> None:
    (_, peer_w), (server_r, server_w) = await stream_pair()
    peer_w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    with pytest.raises(TimeoutError):
        await rapidws.attach(server_r, server_w, side="server", open_timeout=0.2)
    assert server_w.transport.is_closing()
    peer_w.close()


async def test_close_on_an_attached_connection_closes_the_stream() -> None:
    client, server = await attach_both()
    closing = asyncio.create_task(client.close())
    with pytest.raises(ConnectionClosedOK):
        await server.recv()
    await server.close()
    await closing
    assert client.close_code == 1000


async def test_detach_needs_an_attached_connection() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with rapidws.serve(echo, "127.0.0.1", 0) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        async with rapidws.connect(f"ws://127.0.0.1:{port}") as ws:
            with pytest.raises(InvalidState):
                await ws.detach()


async def test_detach_times_out_without_the_peers_close_frame() -> None:
    (_, peer_w), (server_r, server_w) = await stream_pair()
    server = await rapidws.attach(server_r, server_w, side="server", handshake=False)
    with pytest.raises(TimeoutError, match="detach"):
        await server.detach(timeout=0.1)
    peer_w.close()


class Recorder(Listener):
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.got = asyncio.Event()
        self.closed: tuple[int, str] | None = None

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        self.messages.append(data)
        self.got.set()

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_attach_with_a_listener() -> None:
    (client_r, client_w), (server_r, server_w) = await stream_pair()
    recorder = Recorder()
    server, client = await asyncio.gather(
        rapidws.attach(server_r, server_w, side="server", listener=recorder),
        rapidws.attach(client_r, client_w, side="client", uri="ws://x/"),
    )
    assert isinstance(server, ListenerConnection)
    await client.send("to the listener")
    await recorder.got.wait()
    assert recorder.messages == ["to the listener"]
    closing = asyncio.create_task(client.close())
    while recorder.closed is None:  # on_close comes with the closing handshake
        await asyncio.sleep(0)
    assert recorder.closed == (1000, "")
    server.close()  # the stream too
    await closing
    await server.wait_closed()
    assert recorder.closed == (1000, "")


async def test_attach_over_tls() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    attached: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ws = await rapidws.attach(reader, writer, side="server")
        attached.set_result(ws)
        async for message in ws:
            await ws.send(message)
        await ws.close()  # the closing handshake is over: close the stream too

    tcp = await asyncio.start_server(on_stream, "127.0.0.1", 0, ssl=server_ctx)
    async with tcp:
        port = tcp.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        ws = await rapidws.attach(reader, writer, side="client", uri="wss://localhost/")
        for message in ("over TLS", b"\xff" * 100_000):
            await ws.send(message)
            assert await ws.recv() == message
        await ws.close()
        await (await attached).wait_closed()


async def test_attach_checks_its_arguments() -> None:
    (client_r, client_w), _ = await stream_pair()
    with pytest.raises(ValueError, match="side"):
        await rapidws.attach(client_r, client_w, side="peer")
    with pytest.raises(ValueError, match="uri"):
        await rapidws.attach(client_r, client_w, side="client")
    with pytest.raises(TypeError):
        await rapidws.attach(client_r, client_w, side="client", bogus=1)  # type: ignore[call-arg]


async def test_serve_on_a_listening_socket() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        async with (
            rapidws.serve(echo, sock=listening),
            rapidws.connect(f"ws://127.0.0.1:{port}") as ws,
        ):
            await ws.send("on the socket given")
            assert await ws.recv() == "on the socket given"


async def test_serve_on_a_connected_socket_points_to_attach() -> None:
    a, b = socket.socketpair()
    with a, b, pytest.raises(ValueError, match=r"listening socket.*rapidws\.attach"):
        await rapidws.serve(lambda ws: None, sock=a)  # type: ignore[arg-type,return-value]

"""The server over real loopback sockets, with well-behaved and hostile clients."""

from __future__ import annotations

import asyncio
import logging

import pytest

import rapidws
from rapidws.protocol.frames import Opcode
from rapidws.protocol.handshake import ServerHandshake
from rapidws.protocol.http11 import Request, Response

from .helpers import REQUEST, RawClient, port_of, running_server


async def assert_still_serving(uri: str) -> None:
    async with rapidws.connect(uri) as ws:
        await ws.send("still there?")
        assert await ws.recv() == "still there?"


async def test_handler_sees_request_and_subprotocol() -> None:
    seen: dict[str, object] = {}

    async def handler(ws: rapidws.ServerConnection) -> None:
        assert ws.request is not None
        seen["path"] = ws.request.path
        seen["header"] = ws.request.headers["X-Test"]
        seen["subprotocol"] = ws.subprotocol
        seen["remote"] = ws.remote_address
        await ws.send("hi")

    async with (
        running_server(handler, subprotocols=["chat.v2", "chat.v1"]) as (_, uri),
        rapidws.connect(
            uri + "/room?id=1",
            subprotocols=["chat.v1", "chat.v2"],
            additional_headers={"X-Test": "yes"},
        ) as ws,
    ):
        assert await ws.recv() == "hi"
        assert ws.subprotocol == "chat.v2"  # the server's preference
        assert ws.response is not None and ws.response.status_code == 101
    assert seen["path"] == "/room?id=1"
    assert seen["header"] == "yes"
    assert seen["subprotocol"] == "chat.v2"
    assert seen["remote"][0] == "127.0.0.1"  # type: ignore[index]


async def test_handler_exception_closes_1011_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            if message == "boom":
                raise RuntimeError("boom")
            await ws.send(message)

    with caplog.at_level(logging.ERROR, logger="rapidws"):
        async with running_server(handler) as (_, uri):
            async with rapidws.connect(uri) as ws:
                await ws.send("boom")
                with pytest.raises(rapidws.ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1011
            await assert_still_serving(uri)
    assert any(
        record.name == "rapidws" and record.exc_info and "boom" in str(record.exc_info[1])
        for record in caplog.records
    )


async def test_server_close_sends_1001_to_every_connection() -> None:
    async with running_server() as (server, uri):
        clients = [await rapidws.connect(uri) for _ in range(3)]
        server.close()
        await server.wait_closed()
        for ws in clients:
            with pytest.raises(rapidws.ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001
        assert not server.connections


async def test_process_request_answers_http() -> None:
    handshake = ServerHandshake()

    def route(ws: rapidws.ServerConnection, request: Request) -> Response | None:
        if request.path == "/health":
            return handshake.reject(200, "OK")
        if request.path != "/ws":
            return handshake.reject(404, "Not Found")
        return None

    async with running_server(process_request=route) as (_, uri):
        with pytest.raises(rapidws.InvalidStatus) as info:
            await rapidws.connect(uri + "/nope")
        assert info.value.response.status_code == 404
        assert info.value.response.body == b"Not Found\n"
        async with rapidws.connect(uri + "/ws") as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"


# --- hostile handshakes ---------------------------------------------------------

BAD_REQUESTS = [
    # (request, status, header that must be in the response)
    (
        REQUEST.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        426,
        ("Sec-WebSocket-Version", "13"),
    ),
    (REQUEST.replace(b"Upgrade: websocket", b"Upgrade: h2c"), 426, ("Upgrade", "websocket")),
    (REQUEST.replace(b"Connection: Upgrade", b"Connection: keep-alive"), 426, None),
    (REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="), 400, None),
    (REQUEST.replace(b"Host: 127.0.0.1\r\n", b""), 400, None),
    (REQUEST.replace(b"GET", b"POST"), 405, ("Allow", "GET")),
    (REQUEST.replace(b"\r\n\r\n", b"\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n"), 431, None),
    (REQUEST.replace(b"\r\n\r\n", b"\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"), 431, None),
    (REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400, None),
    (REQUEST.replace(b"HTTP/1.1", b"HTTP/2.0", 1), 505, None),
    (b"GARBAGE\r\n\r\n", 400, None),
]


@pytest.mark.parametrize(("request_bytes", "status", "header"), BAD_REQUESTS)
async def test_bad_handshake_gets_http_error(
    request_bytes: bytes, status: int, header: tuple[str, str] | None
) -> None:
    async with running_server() as (server, uri):
        raw, response = await RawClient.open(port_of(server), request_bytes)
        assert response is not None
        assert response.status_code == status
        if header is not None:
            assert header[1] in response.headers.get_all(header[0])
        assert await raw.read_eof() == b""  # the server closes after answering
        raw.close()
        await assert_still_serving(uri)


async def test_connection_closed_mid_handshake_is_cleaned_up() -> None:
    async with running_server() as (server, uri):
        raw, _ = await RawClient.open(port_of(server), request=None)
        raw.writer.write(REQUEST[:30])
        await raw.writer.drain()
        raw.close()
        await assert_still_serving(uri)
        while server.connections and len(server.connections) > 0:
            conn = next(iter(server.connections))
            await conn.wait_closed()
        assert not server.connections


async def test_open_timeout_drops_silent_clients() -> None:
    async with running_server(open_timeout=0.2) as (server, _):
        raw, _ = await RawClient.open(port_of(server), request=None)
        assert await raw.read_eof() == b""
        raw.close()


async def test_frames_sent_with_the_handshake_are_not_lost() -> None:
    from rapidws.protocol.frames import Frame

    async with running_server() as (server, _):
        early = Frame(Opcode.TEXT, b"early").serialize(mask=True)
        raw, response = await RawClient.open(port_of(server), REQUEST + early)
        assert response is not None and response.status_code == 101
        frame = await raw.read_frame()
        assert frame is not None and frame.payload == b"early"
        raw.close()


# --- hostile frames -------------------------------------------------------------

BAD_FRAMES = [
    # (description, frame arguments, expected close code)
    ("unmasked", dict(opcode=Opcode.TEXT, payload=b"x", mask=False), 1002),
    ("reserved opcode", dict(opcode=3, payload=b"x"), 1002),
    ("rsv1 without extension", dict(opcode=Opcode.TEXT, payload=b"x", rsv1=True), 1002),
    ("continuation first", dict(opcode=Opcode.CONT, payload=b"x"), 1002),
    ("fragmented ping", dict(opcode=Opcode.PING, payload=b"x", fin=False), 1002),
    ("big ping", dict(opcode=Opcode.PING, payload=b"x" * 126), 1002),
    ("invalid utf-8", dict(opcode=Opcode.TEXT, payload=b"\xff\xfe"), 1007),
    ("too big", dict(opcode=Opcode.BINARY, payload=b"x" * 2000), 1009),
    ("bad close code", dict(opcode=Opcode.CLOSE, payload=b"\x03\xed"), 1002),
    ("one-byte close", dict(opcode=Opcode.CLOSE, payload=b"\x03"), 1002),
    ("close reason not utf-8", dict(opcode=Opcode.CLOSE, payload=b"\x03\xe8\xff"), 1007),
]


@pytest.mark.parametrize(
    ("name", "frame", "code"), BAD_FRAMES, ids=[case[0] for case in BAD_FRAMES]
)
async def test_bad_frame_gets_close_code_and_server_keeps_serving(
    name: str, frame: dict[str, object], code: int
) -> None:
    closed: asyncio.Future[rapidws.ConnectionClosed] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except rapidws.ConnectionClosed as exc:
            closed.set_result(exc)

    async with running_server(handler, max_size=1000) as (server, uri):
        raw, _ = await RawClient.open(port_of(server))
        raw.send_frame(**frame)  # type: ignore[arg-type]
        close = await raw.read_close()
        assert close.code == code
        assert await raw.read_eof() == b""  # then the server closes TCP
        raw.close()
        exc = await closed
        assert isinstance(exc, rapidws.ConnectionClosedError)
        assert exc.sent_code == code
        assert isinstance(exc.__cause__, rapidws.ProtocolError)
        await assert_still_serving(uri)


async def test_after_a_clean_close_the_server_closes_tcp_without_waiting() -> None:
    async with running_server(close_timeout=60) as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        conn = next(iter(server.connections))
        raw.send_frame(Opcode.CLOSE, b"\x03\xe8")
        close = await raw.read_close()
        assert close.code == 1000
        assert await raw.read_eof() == b""
        # We never close our side: the server does not wait for it (nor for
        # close_timeout), since after its close frame the client sends nothing.
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert conn.close_code == 1000
        raw.close()


async def test_after_a_failure_the_server_half_closes_and_aborts_a_client_that_stays() -> None:
    async with running_server(close_timeout=0.2) as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        conn = next(iter(server.connections))
        raw.send_frame(3, b"reserved opcode")
        close = await raw.read_close()
        assert close.code == 1002
        assert await raw.read_eof() == b""  # the server's FIN: a half-close
        raw.send_frame(Opcode.BINARY, b"still sending")  # read and dropped, no reset
        await raw.writer.drain()
        # We never close our side; after close_timeout the server gives up.
        await conn.wait_closed()
        assert conn.close_code == 1006
        raw.close()


async def test_keepalive_closes_1011_without_pong() -> None:
    async with running_server(ping_interval=0.05, ping_timeout=0.05) as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        # Read frames but never answer pings.
        close = await raw.read_close()
        assert close.code == 1011
        raw.close()


class PongCounter(rapidws.ServerConnection):
    pongs: asyncio.Queue[float]

    def on_pong(self, payload: bytes) -> None:
        super().on_pong(payload)
        self.pongs.put_nowait(self.latency)


async def test_keepalive_pings_measure_latency_and_stay_open() -> None:
    PongCounter.pongs = asyncio.Queue()
    options = {"ping_interval": 0.02, "ping_timeout": 5, "create_connection": PongCounter}
    async with (
        running_server(**options) as (server, uri),
        rapidws.connect(uri, ping_interval=None) as ws,
    ):
        for _ in range(3):  # three keepalive rounds, each answered in time
            assert await PongCounter.pongs.get() > 0
        (conn,) = server.connections
        assert conn.latency > 0
        assert conn.state == ws.state == rapidws.State.OPEN


async def test_messages_before_a_bad_frame_are_answered_first() -> None:
    async with running_server() as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        raw.send_frame(Opcode.TEXT, b"valid")
        raw.send_frame(Opcode.TEXT, b"rsv", rsv1=True)
        frame = await raw.read_frame()
        assert frame is not None and (frame.opcode, frame.payload) == (Opcode.TEXT, b"valid")
        assert (await raw.read_close()).code == 1002
        raw.close()

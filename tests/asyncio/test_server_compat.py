"""websockets' asyncio server API on rapidws: hooks of both kinds, respond,
basic_auth, unix_serve, handlers per subprotocol, and what the logs say."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import tempfile
from typing import Any

import pytest

import rapidws
from rapidws.asyncio.server import basic_auth, unix_serve
from rapidws.protocol.frames import Opcode
from rapidws.protocol.http11 import Request, Response

from .helpers import REQUEST, RawClient, echo, port_of, running_server


async def assert_still_serving(uri: str, **kwargs: Any) -> None:
    async with rapidws.connect(uri, **kwargs) as ws:
        await ws.send("still there?")
        assert await ws.recv() == "still there?"


def request_with(*headers: bytes) -> bytes:
    return REQUEST[:-2] + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


# -- process_request and process_response, sync and async -------------------------


async def test_async_process_request_answers_http() -> None:
    async def hook(conn: rapidws.ServerConnection, request: Request) -> Response | None:
        await asyncio.sleep(0)
        if request.path == "/health":
            return conn.respond(200, "OK")
        return None

    async with running_server(process_request=hook) as (server, uri):
        raw, response = await RawClient.open(port_of(server), REQUEST.replace(b"/chat", b"/health"))
        assert response is not None and response.status_code == 200
        assert response.body == b"OK\n"
        assert response.headers["Content-Length"] == "3"
        assert response.headers["Server"] == "rapidws"
        raw.close()
        await assert_still_serving(uri)


async def test_sync_process_request_still_works() -> None:
    def hook(conn: rapidws.ServerConnection, request: Request) -> Response | None:
        return conn.respond(403, "Forbidden") if request.path == "/no" else None

    async with running_server(process_request=hook) as (_, uri):
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri + "/no")
        assert caught.value.response.status_code == 403
        await assert_still_serving(uri)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_hook_that_raises_gives_500_and_a_log_line(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_hook(conn: Any, request: Request) -> None:
        if request.path == "/boom":
            raise RuntimeError("boom")

    async def async_hook(conn: Any, request: Request) -> None:
        sync_hook(conn, request)

    hook = sync_hook if kind == "sync" else async_hook
    with caplog.at_level(logging.ERROR, logger="rapidws"):
        async with running_server(process_request=hook) as (server, uri):
            raw, response = await RawClient.open(
                port_of(server), REQUEST.replace(b"/chat", b"/boom")
            )
            assert response is not None and response.status_code == 500
            assert b"See server log" in response.body
            assert await raw.read_eof() == b""
            raw.close()
            await assert_still_serving(uri)
    failed = [r for r in caplog.records if r.getMessage() == "process_request failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None and str(failed[0].exc_info[1]) == "boom"


async def test_frames_sent_while_an_async_hook_runs_are_not_lost() -> None:
    release = asyncio.Event()

    async def hook(conn: Any, request: Request) -> None:
        await release.wait()

    async with running_server(process_request=hook) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        raw = RawClient(reader, writer)
        writer.write(REQUEST)
        raw.send_frame(Opcode.TEXT, b"early")  # before the 101: waits for the hook
        await writer.drain()
        await asyncio.sleep(0)
        release.set()
        response = await raw.read_response()
        assert response.status_code == 101
        frame = await raw.read_frame()
        assert frame is not None and frame.payload == b"early"
        raw.close()


async def test_a_hook_that_hangs_past_open_timeout_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hook(conn: Any, request: Request) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with running_server(process_request=hook, open_timeout=0.1) as (server, _):
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(REQUEST)
        assert await raw.read_eof() == b""  # aborted at the deadline, no answer
        await cancelled.wait()
        raw.close()
        await asyncio.wait_for(_no_connections(server), 5)


async def _no_connections(server: rapidws.Server) -> None:
    """Until every connection of ``server`` is gone (each unregisters as it closes)."""
    while server.connections:
        await next(iter(server.connections)).wait_closed()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_process_response_adds_headers_or_replaces(kind: str) -> None:
    def sync_hook(conn: Any, request: Request, response: Response) -> Response | None:
        if request.path == "/replace":
            return conn.respond(418, "teapot")  # type: ignore[no-any-return]
        response.headers["X-Seen"] = "yes"
        return None

    async def async_hook(conn: Any, request: Request, response: Response) -> Response | None:
        return sync_hook(conn, request, response)

    hook = sync_hook if kind == "sync" else async_hook
    async with running_server(process_response=hook) as (_, uri):
        async with rapidws.connect(uri) as ws:
            assert ws.response is not None and ws.response.headers["X-Seen"] == "yes"
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri + "/replace")
        assert caught.value.response.status_code == 418


async def test_process_response_that_raises_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    def hook(conn: Any, request: Request, response: Response) -> None:
        raise ValueError("nope")

    with caplog.at_level(logging.ERROR, logger="rapidws"):
        async with running_server(process_response=hook) as (_, uri):
            with pytest.raises(rapidws.InvalidStatus) as caught:
                await rapidws.connect(uri)
            assert caught.value.response.status_code == 500
    assert [r.getMessage() for r in caplog.records] == ["process_response failed"]


async def test_a_hook_returning_something_else_is_a_500() -> None:
    async with running_server(process_request=lambda conn, request: "oops") as (_, uri):
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri)
        assert caught.value.response.status_code == 500


# -- select_subprotocol, both signatures --------------------------------------------


async def test_select_subprotocol_with_websockets_signature() -> None:
    seen: list[Any] = []

    def select(conn: rapidws.ServerConnection, subprotocols: list[str]) -> str | None:
        seen.append((conn.request.path if conn.request else None, subprotocols))
        return subprotocols[-1] if subprotocols else None

    async with (
        running_server(select_subprotocol=select) as (_, uri),
        rapidws.connect(uri + "/x", subprotocols=["a", "b"]) as ws,
    ):
        assert ws.subprotocol == "b"
    assert seen == [("/x", ["a", "b"])]


async def test_select_subprotocol_with_one_argument_still_works() -> None:
    async with (
        running_server(select_subprotocol=lambda offers: offers[0]) as (_, uri),
        rapidws.connect(uri, subprotocols=["a", "b"]) as ws,
    ):
        assert ws.subprotocol == "a"


# -- basic_auth ---------------------------------------------------------------------


def auth_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_basic_auth() -> None:
    seen: list[str | None] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        seen.append(ws.username)
        await ws.send("hi")

    hook = basic_auth(realm="test", credentials=("alice", "s3cret"))
    async with running_server(handler, process_request=hook) as (_, uri):
        async with rapidws.connect(uri, additional_headers=auth_header("alice", "s3cret")) as ws:
            assert await ws.recv() == "hi"
        for headers, text in [
            ({}, b"Missing credentials\n"),
            (auth_header("alice", "wrong"), b"Invalid credentials\n"),
            (auth_header("bob", "s3cret"), b"Invalid credentials\n"),
            ({"Authorization": "Bearer xyz"}, b"Unsupported credentials\n"),
            ({"Authorization": "Basic !!!"}, b"Unsupported credentials\n"),
        ]:
            with pytest.raises(rapidws.InvalidStatus) as caught:
                await rapidws.connect(uri, additional_headers=headers)
            response = caught.value.response
            assert response.status_code == 401
            assert response.body == text
            assert response.headers["WWW-Authenticate"] == 'Basic realm="test", charset="UTF-8"'
    assert seen == ["alice"]


async def test_basic_auth_with_an_async_check() -> None:
    async def check(user: str, password: str) -> bool:
        await asyncio.sleep(0)
        return user == password

    async with running_server(process_request=basic_auth(check_credentials=check)) as (_, uri):
        await assert_still_serving(uri, additional_headers=auth_header("x", "x"))
        with pytest.raises(rapidws.InvalidStatus):
            await rapidws.connect(uri, additional_headers=auth_header("x", "y"))


def test_basic_auth_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        basic_auth()
    with pytest.raises(ValueError):
        basic_auth(credentials=("a", "b"), check_credentials=lambda u, p: True)
    with pytest.raises(TypeError):
        basic_auth(credentials=[("a", "b"), "c"])  # type: ignore[list-item]


# -- unix_serve ----------------------------------------------------------------------


async def test_unix_serve() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send(await ws.recv())

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ws.sock")
        async with unix_serve(handler, path):
            reader, writer = await asyncio.open_unix_connection(path)
            ws = await rapidws.attach(reader, writer, uri="ws://localhost/")
            assert isinstance(ws, rapidws.Connection)
            await ws.send("over a unix socket")
            assert await ws.recv() == "over a unix socket"
            await ws.close()


# -- handlers per subprotocol ---------------------------------------------------------


async def named(ws: rapidws.ServerConnection) -> None:
    await ws.send(f"{ws.subprotocol}: {await ws.recv()}")


async def test_handlers_per_subprotocol() -> None:
    async def echo(ws: rapidws.ServerConnection) -> None:
        await ws.send(await ws.recv())

    async with running_server({"chat": named, "echo": echo}) as (_, uri):  # type: ignore[arg-type]
        async with rapidws.connect(uri, subprotocols=["echo"]) as ws:
            assert ws.subprotocol == "echo"
            await ws.send("x")
            assert await ws.recv() == "x"
        # The server's preference (the mapping's order) among the offers.
        async with rapidws.connect(uri, subprotocols=["echo", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("x")
            assert await ws.recv() == "chat: x"
        for offers in (None, ["other"]):
            with pytest.raises(rapidws.InvalidStatus) as caught:
                await rapidws.connect(uri, subprotocols=offers)
            response = caught.value.response
            assert response.status_code == 400
            assert b"supported: chat, echo" in response.body


async def test_a_default_handler_takes_clients_offering_none() -> None:
    handlers = {"chat": named, None: named}
    async with running_server(handlers) as (_, uri):  # type: ignore[arg-type]
        for offers, expected in ((None, "None: x"), (["other"], "None: x"), (["chat"], "chat: x")):
            async with rapidws.connect(uri, subprotocols=offers) as ws:
                await ws.send("x")
                assert await ws.recv() == expected


def test_handlers_per_subprotocol_are_checked() -> None:
    with pytest.raises(ValueError, match="neither subprotocols"):
        rapidws.serve({"chat": named}, subprotocols=["chat"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rapidws.serve({"chat": 42})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        rapidws.serve({1: named})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        rapidws.serve({})


async def test_serve_listener_with_factories_per_subprotocol() -> None:
    class Named(rapidws.Listener):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
            conn.send(f"{self.name}: {data}")

    factories = {"a": lambda request: Named("a"), "b": lambda request: Named("b")}
    async with rapidws.serve_listener(factories, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}"
        async with rapidws.connect(uri, subprotocols=["b"]) as ws:
            await ws.send("x")
            assert await ws.recv() == "b: x"
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri)
        assert caught.value.response.status_code == 400


async def test_attach_runs_the_subprotocol_handler() -> None:
    server_sock, client_sock = socket.socketpair()
    sreader, swriter = await asyncio.open_connection(sock=server_sock)
    creader, cwriter = await asyncio.open_connection(sock=client_sock)
    serving = asyncio.ensure_future(
        rapidws.attach(sreader, swriter, side="server", handler={"chat": named})  # type: ignore[dict-item]
    )
    ws = await rapidws.attach(creader, cwriter, uri="ws://localhost/", subprotocols=["chat"])
    assert isinstance(ws, rapidws.Connection)
    await ws.send("x")
    assert await ws.recv() == "chat: x"
    await ws.close()
    server_conn = await serving  # the handler returned, the connection is closed
    assert server_conn.state == rapidws.State.CLOSED
    assert server_conn.close_code == 1000


# -- hostile offers --------------------------------------------------------------------


async def test_a_thousand_subprotocols_offered() -> None:
    offers = b", ".join(b"p%d" % i for i in range(1000))
    async with running_server({"chat": echo}) as (server, uri):  # type: ignore[arg-type]
        raw, response = await RawClient.open(
            port_of(server), request_with(b"Sec-WebSocket-Protocol: " + offers)
        )
        assert response is not None and response.status_code == 400
        assert b"supported: chat" in response.body
        assert len(response.body) < 300  # the offers are not echoed back whole
        raw.close()
        raw, response = await RawClient.open(
            port_of(server), request_with(b"Sec-WebSocket-Protocol: " + offers + b", chat")
        )
        assert response is not None and response.status_code == 101
        assert response.headers["Sec-WebSocket-Protocol"] == "chat"
        raw.close()
        await assert_still_serving(uri, subprotocols=["chat"])


async def test_a_64_kib_subprotocol_header_is_refused() -> None:
    async with running_server({"chat": echo}) as (server, uri):  # type: ignore[arg-type]
        raw, response = await RawClient.open(
            port_of(server), request_with(b"Sec-WebSocket-Protocol: " + b"x" * 65536)
        )
        assert response is not None and response.status_code == 431
        raw.close()
        await assert_still_serving(uri, subprotocols=["chat"])


# -- what a keepalive timeout says ----------------------------------------------------


async def test_keepalive_timeout_is_logged_once_and_says_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: asyncio.Future[rapidws.ConnectionClosed] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            await ws.recv()
        except rapidws.ConnectionClosed as exc:
            seen.set_result(exc)
            raise

    options = {"ping_interval": 0.05, "ping_timeout": 0.05, "close_timeout": 0.2}
    with caplog.at_level(logging.INFO, logger="rapidws"):
        async with running_server(handler, **options) as (server, _):
            raw, _ = await RawClient.open(port_of(server))  # never answers pings
            exc = await seen
            raw.close()
            await asyncio.wait_for(_no_connections(server), 5)
    assert exc.sent is not None and exc.sent.code == 1011
    assert exc.rcvd is None
    assert str(exc) == "sent 1011 (internal error) keepalive ping timeout; no close frame received"
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info == ["keepalive ping timed out; closing the connection"]


# -- keyword arguments checked at the call -----------------------------------------------


def test_a_misspelt_option_is_named_at_the_call() -> None:
    with pytest.raises(
        TypeError, match=r"rapidws.serve\(\) .* 'open_timout'; did you mean 'open_timeout'"
    ):
        rapidws.serve(named, "127.0.0.1", 0, open_timout=1)
    with pytest.raises(
        TypeError, match=r"rapidws.unix_serve\(\) .* 'bakclog'; did you mean 'backlog'"
    ):
        unix_serve(named, "/tmp/x.sock", bakclog=5)
    with pytest.raises(TypeError, match=r"rapidws.serve_listener\(\) .* 'max_sise'"):
        rapidws.serve_listener(lambda request: rapidws.Listener(), max_sise=5)
    rapidws.serve(named, "127.0.0.1", 0, backlog=5, reuse_port=True)  # the loop's own: fine


# -- origins ---------------------------------------------------------------------------------


async def test_origins_refuse_other_sites_with_403() -> None:
    import re

    origins = ["https://chat.example", re.compile(r"https://[a-z]+\.example\.org"), None]
    async with running_server(origins=origins) as (server, uri):
        for origin in ("https://chat.example", "https://app.example.org", None):
            await assert_still_serving(uri, origin=origin)
        for origin in ("https://evil.example", "https://chat.example.evil", "null"):
            with pytest.raises(rapidws.InvalidStatus) as caught:
                await rapidws.connect(uri, origin=origin)
            assert caught.value.response.status_code == 403
        raw, response = await RawClient.open(
            port_of(server), request_with(b"Origin: https://chat.example", b"Origin: https://x")
        )
        assert response is not None and response.status_code == 403  # two Origins: refused
        raw.close()
    async with running_server(origins=["https://chat.example"]) as (_, uri):
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri)  # no Origin: not allowed unless None is listed
        assert caught.value.response.status_code == 403


# -- max_connections -------------------------------------------------------------------------


async def test_past_max_connections_a_client_gets_503_with_retry_after() -> None:
    async with running_server(max_connections=2) as (server, uri):
        first = await rapidws.connect(uri)
        second = await rapidws.connect(uri)
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(uri)
        response = caught.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        (server_side,) = [
            conn for conn in server.connections if conn.remote_address == first.local_address
        ]
        await first.close()
        await server_side.wait_closed()  # type: ignore[attr-defined]
        await assert_still_serving(uri)  # room again
        await second.close()

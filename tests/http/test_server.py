"""The plain HTTP/1.1 path of serve(), with and without an App, over loopback."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import pytest

import rapidws
from rapidws.protocol.http11 import Request, Response
from tests.asyncio.helpers import REQUEST, RawClient, port_of, running_server


def app_with_routes() -> rapidws.App:
    app = rapidws.App()

    @app.get("/")
    async def index(request: rapidws.HTTPRequest) -> Response:
        return rapidws.text_response("hello\n")

    @app.post("/echo")
    async def echo(request: rapidws.HTTPRequest) -> Response:
        return rapidws.bytes_response(await request.body())

    @app.get("/stream")
    async def stream(request: rapidws.HTTPRequest) -> Response:
        async def parts() -> Any:
            for i in range(3):
                yield f"part {i}\n".encode()

        return rapidws.stream_response(parts(), content_type="text/plain")

    @app.get("/bye")
    def bye(request: rapidws.HTTPRequest) -> Response:
        return rapidws.text_response("bye\n", headers={"Connection": "close"})

    @app.websocket("/ws")
    async def ws_echo(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    return app


def fetch(port: int, requests: list[tuple[str, str, bytes | None, dict[str, str]]]) -> list[Any]:
    """Send requests on one keep-alive connection with http.client (in a thread)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for method, path, body, headers in requests:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            out.append((response.status, dict(response.getheaders()), response.read()))
    finally:
        conn.close()
    return out


async def test_keep_alive_with_http_client() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        port = port_of(server)
        results = await asyncio.to_thread(
            fetch,
            port,
            [
                ("GET", "/", None, {}),
                ("POST", "/echo", b"x" * 100_000, {}),
                ("HEAD", "/", None, {}),
                ("GET", "/stream", None, {}),
                ("GET", "/", None, {}),
            ],
        )
        assert len(server.connections) <= 1
    (s1, h1, b1), (s2, h2, b2), (s3, h3, b3), (s4, h4, b4), (s5, _, b5) = results
    assert (s1, b1, h1["Content-Length"]) == (200, b"hello\n", "6")
    assert h1["Server"] == "rapidws" and h1["Date"].endswith("GMT")
    assert (s2, len(b2), h2["Content-Length"]) == (200, 100_000, "100000")
    assert (s3, b3, h3["Content-Length"]) == (200, b"", "6")  # HEAD: the length, no body
    assert (s4, b4, h4["Transfer-Encoding"]) == (200, b"part 0\npart 1\npart 2\n", "chunked")
    assert (s5, b5) == (200, b"hello\n")


async def test_chunked_request_body() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext\r\n!\r\n0\r\nTrailer: x\r\n\r\n"
        )
        response = await raw.read_response()
        assert (response.status_code, response.body) == (200, b"hello!")
        raw.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    app = rapidws.App()

    @app.get("/{n:int}")
    async def number(request: rapidws.HTTPRequest) -> Response:
        n = request.params["n"]
        for _ in range(5 - n % 5):  # later ones may finish first
            await asyncio.sleep(0)
        return rapidws.text_response(str(n))

    async with rapidws.serve(app, "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(50)))
        for n in range(50):
            response = await raw.read_response()
            assert response.body == str(n).encode()
        raw.close()


async def test_connection_close_both_ways() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        port = port_of(server)
        # the client's
        raw, response = await RawClient.open(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert response is not None and response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""
        raw.close()
        # the handler's
        raw, response = await RawClient.open(port, b"GET /bye HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None and response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""
        raw.close()


async def test_http_then_websocket_on_one_connection() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, response = await RawClient.open(port_of(server), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None and response.status_code == 200
        raw.writer.write(REQUEST.replace(b"/chat", b"/ws"))
        response = await raw.read_response()
        assert response.status_code == 101
        raw.send_frame(rapidws.Opcode.TEXT, b"hi")
        frame = await raw.read_frame()
        assert frame is not None and frame.payload == b"hi"
        raw.close()


STATUSES = [
    (b"GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", 404, None),
    (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 405, ("Allow", "GET, HEAD")),
    (b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", 426, ("Upgrade", "websocket")),
    (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413, None),
    (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n", 431, None),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431, None),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, None),
]


@pytest.mark.parametrize(("request_bytes", "status", "header"), STATUSES)
async def test_statuses(request_bytes: bytes, status: int, header: tuple[str, str] | None) -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, response = await RawClient.open(port_of(server), request_bytes)
        assert response is not None
        assert response.status_code == status
        assert b"WebSocket" not in response.body  # plain words for a plain request
        assert response.headers["Content-Length"] == str(len(response.body))
        if header is not None:
            assert response.headers[header[0]] == header[1]
        raw.close()


# --- serve(handler) without an App --------------------------------------------------


async def test_without_app_a_plain_get_is_426_and_keeps_the_connection() -> None:
    async with running_server() as (server, _):
        raw, response = await RawClient.open(port_of(server), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None and response.status_code == 426
        assert response.headers["Upgrade"] == "websocket"
        assert b"WebSocket handshake" in response.body
        raw.writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
        response = await raw.read_response()
        assert response.status_code == 405 and response.headers["Allow"] == "GET"
        raw.writer.write(REQUEST)
        response = await raw.read_response()
        assert response.status_code == 101
        raw.close()


async def test_process_request_response_keeps_alive() -> None:
    def health(ws: rapidws.ServerConnection, request: Request) -> Response | None:
        if request.path == "/health":
            return ws.respond(200, "OK")
        if request.path == "/raw":
            return Response(200, "OK", rapidws.Headers(), b"no length set")
        return None

    async with running_server(process_request=health) as (server, _):
        results = await asyncio.to_thread(
            fetch,
            port_of(server),
            [
                ("GET", "/health", None, {}),
                ("HEAD", "/health", None, {}),
                ("GET", "/raw", None, {}),
            ],
        )
    assert [(s, b) for s, _, b in results] == [(200, b"OK\n"), (200, b""), (200, b"no length set")]
    assert results[1][1]["Content-Length"] == "3"


async def test_websocket_handshake_failures_still_close() -> None:
    async with running_server() as (server, _):
        bad = REQUEST.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
        raw, response = await RawClient.open(port_of(server), bad)
        assert response is not None and response.status_code == 426
        assert await raw.read_eof() == b""
        raw.close()


async def test_keepalive_timeout_closes_idle_connections() -> None:
    async with running_server(keepalive_timeout=0.05) as (server, _):
        raw, response = await RawClient.open(port_of(server), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None
        assert await raw.read_eof() == b""
        raw.close()


async def test_half_closed_client_gets_every_answer() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 3)
        raw.writer.write_eof()
        for _ in range(3):
            response = await raw.read_response()
            assert response.body == b"hello\n"
        assert await raw.read_eof() == b""
        raw.close()


async def test_host_header_is_required() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, response = await RawClient.open(port_of(server), b"GET / HTTP/1.1\r\n\r\n")
        assert response is not None and response.status_code == 400
        raw.close()


async def test_failing_hook_on_a_plain_request_answers_a_plain_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(ws: rapidws.ServerConnection, request: Request) -> Response | None:
        raise RuntimeError("broken hook")

    async with running_server(process_request=broken) as (server, _):
        raw, response = await RawClient.open(port_of(server), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None and response.status_code == 500
        assert b"WebSocket" not in response.body
        raw.writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")  # still open
        assert (await raw.read_response()).status_code == 500
        raw.close()
    assert "process_request failed" in caplog.text


async def test_no_reference_cycle_left_after_a_plain_connection() -> None:
    import gc
    import weakref

    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, response = await RawClient.open(
            port_of(server), b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert response is not None and response.status_code == 200
        conn = next(iter(server.connections))
        ref = weakref.ref(conn)
        await raw.read_eof()
        raw.close()
        await conn.wait_closed()
        del conn
    gc.disable()
    try:
        for _ in range(10):
            await asyncio.sleep(0)  # let the loop drop its callbacks
        assert ref() is None, gc.get_referrers(ref())
    finally:
        gc.enable()

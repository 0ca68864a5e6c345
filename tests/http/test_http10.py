"""HTTP/1.0 clients on the plain HTTP path (RFC 9112 9.3, 6.1; RFC 9110 2.5, 10.1.1)."""

from __future__ import annotations

import asyncio
import http.client

import pytest

import rapidws
from rapidws.http.server import close_delimited, keeps_alive, serialize_head
from rapidws.protocol.http11 import Request, Response
from tests.asyncio.helpers import REQUEST, RawClient, port_of
from tests.http.test_server import app_with_routes


def split(data: bytes) -> tuple[str, int, dict[str, str], bytes]:
    """Status line's version, status, headers and body of one response read until EOF."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    version, status, _ = lines[0].split(" ", 2)
    return version, int(status), headers, body


def fetch10(
    port: int, path: str, headers: dict[str, str]
) -> tuple[int, int, dict[str, str], bytes]:
    """One request with http.client speaking HTTP/1.0 (in a thread)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn._http_vsn = 10  # type: ignore[attr-defined]
    conn._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.version, response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


async def test_http_client_speaking_http10() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        port = port_of(server)
        version, status, headers, body = await asyncio.to_thread(fetch10, port, "/", {})
        assert (version, status, body) == (11, 200, b"hello\n")  # RFC 9110 2.5: HTTP/1.1
        assert headers["Connection"] == "close" and headers["Content-Length"] == "6"
        # a streamed body of unknown length: no chunked coding, the end is the close
        version, status, headers, body = await asyncio.to_thread(fetch10, port, "/stream", {})
        assert (status, body) == (200, b"part 0\npart 1\npart 2\n")
        assert "Transfer-Encoding" not in headers and "Content-Length" not in headers


async def test_http10_closes_after_the_response_without_keep_alive() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(b"GET / HTTP/1.0\r\n\r\n")  # no Host: allowed in HTTP/1.0
        version, status, headers, body = split(await raw.read_eof())
        assert (version, status, body) == ("HTTP/1.1", 200, b"hello\n")
        assert headers["Connection"] == "close"
        raw.close()


async def test_http10_keep_alive() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        for _ in range(2):
            raw.writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = await raw.read_response()
            assert (response.status_code, response.body) == (200, b"hello\n")
            assert response.headers["Connection"] == "keep-alive"
        raw.writer.write(
            b"POST /echo HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc"
        )
        response = await raw.read_response()
        assert (response.body, response.headers["Connection"]) == (b"abc", "keep-alive")
        # HEAD of a streamed body: no body, so no need to close
        raw.writer.write(b"HEAD /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = await raw.read_response()
        assert response.headers["Connection"] == "keep-alive"
        assert "Transfer-Encoding" not in response.headers
        # a streamed body of unknown length ends the keep-alive connection
        raw.writer.write(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, status, headers, body = split(await raw.read_eof())
        assert (status, headers["Connection"], body) == (200, "close", b"part 0\npart 1\npart 2\n")
        assert "Transfer-Encoding" not in headers
        raw.close()


async def test_http10_then_http11_on_one_connection() -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        assert (await raw.read_response()).headers["Connection"] == "keep-alive"
        response = await raw.read_response()
        assert response.headers["Transfer-Encoding"] == "chunked"  # an HTTP/1.1 request
        assert "Connection" not in response.headers
        raw.close()


HTTP10_REFUSED = [
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing
    (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    # RFC 6455 4.2.1: the opening handshake is HTTP/1.1 or higher
    (REQUEST.replace(b"/chat HTTP/1.1", b"/ws HTTP/1.0"), 400),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # RFC 9112 3.2
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
    (b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
]


@pytest.mark.parametrize(("request_bytes", "status"), HTTP10_REFUSED)
async def test_refused(request_bytes: bytes, status: int) -> None:
    async with rapidws.serve(app_with_routes(), "127.0.0.1", 0) as server:
        raw, response = await RawClient.open(port_of(server), request_bytes)
        assert response is not None and response.status_code == status
        assert response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""
        raw.close()


async def test_websocket_handshake_over_http10_without_an_app() -> None:
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send("no")

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        request = REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        raw, response = await RawClient.open(port_of(server), request)
        assert response is not None and response.status_code == 400
        assert b"needs HTTP/1.1" in response.body
        raw.close()


@pytest.mark.parametrize(("version", "first"), [(b"HTTP/1.1", 100), (b"HTTP/1.0", 200)])
async def test_100_continue_is_not_sent_to_http10(version: bytes, first: int) -> None:
    """RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue expectation is ignored."""
    app = rapidws.App()
    reading = asyncio.Event()

    @app.post("/")
    async def echo(request: rapidws.HTTPRequest) -> Response:
        reading.set()
        return rapidws.bytes_response(await request.body())

    async with app.serve("127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(
            b"POST / "
            + version
            + b"\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        await reading.wait()  # the handler asked for the body before it was sent
        raw.writer.write(b"abc")
        response = await raw.read_response()
        assert response.status_code == first
        if first == 100:
            response = await raw.read_response()
        assert response.body == b"abc"
        raw.close()


# (version, Connection header, persists): RFC 9112 9.3, sans I/O
PERSISTENCE = [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "keep-alive", True),
    ("HTTP/1.1", "Upgrade, Close", False),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.0", "foo, keep-alive", True),
    ("HTTP/1.0", "keep-alive, close", False),
    ("HTTP/1.0", "keepalive", False),
]


@pytest.mark.parametrize(("version", "connection", "persists"), PERSISTENCE)
def test_keeps_alive(version: str, connection: str | None, persists: bool) -> None:
    headers = rapidws.Headers([("Host", "h")])
    if connection is not None:
        headers["Connection"] = connection
    assert keeps_alive(Request("/", headers, "GET", version)) is persists


@pytest.mark.parametrize(
    ("http10", "keep_alive", "framing", "connection"),
    [
        (False, True, "Transfer-Encoding: chunked", None),
        (True, True, None, "keep-alive"),
        (True, False, None, "close"),
        (False, False, "Transfer-Encoding: chunked", "close"),
    ],
)
def test_streamed_head(
    http10: bool, keep_alive: bool, framing: str | None, connection: str | None
) -> None:
    response = rapidws.stream_response(iter([b"x"]))
    head, chunked = serialize_head(
        response, head_only=False, keep_alive=keep_alive, server_header=None, http10=http10
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")  # RFC 9110 2.5, whatever the request's
    assert chunked is (framing is not None)
    assert (b"Transfer-Encoding: chunked" in head) is (framing is not None)
    if connection is None:
        assert b"Connection" not in head
    else:
        assert b"Connection: " + connection.encode() + b"\r\n" in head
    assert close_delimited(response) and not close_delimited(rapidws.text_response("x"))

"""Hostile plain-HTTP clients: smuggling, slowloris, endless bodies, request floods."""

from __future__ import annotations

import asyncio

import pytest

import rapidws
from rapidws.http.server import PIPELINE_BUFFER
from rapidws.protocol.http11 import Response
from tests.asyncio.helpers import RawClient, port_of


def make_app(sizes: list[int] | None = None) -> rapidws.App:
    app = rapidws.App()

    @app.route("/", methods=["GET", "POST"])
    async def index(request: rapidws.HTTPRequest) -> Response:
        if sizes is not None:
            sizes.append(len(request.connection._hs_buf))
        return rapidws.text_response(f"ok {len(await request.body())}")

    return app


async def still_serving(port: int) -> None:
    raw, response = await RawClient.open(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response is not None and response.body == b"ok 0"
    raw.close()


SMUGGLING = [
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    (b"Content-Length: 5\r\nContent-Length: 4\r\n\r\nhello", 400),
    (b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    (b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    (b"Transfer-Encoding:\x0bchunked\r\n\r\n", 400),
    (b"Content-Length: 5\r\n X: y\r\n\r\nhello", 400),  # obs-fold
    (b"Content-Length: 5\rX: y\r\n\r\nhello", 400),  # bare CR
    (b"X: y\n\r\n", 400),  # bare LF
    (b"Transfer-Encoding: chunked\r\n\r\nZ\r\n", 400),
    (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloGET / HTTP/1.1\r\n\r\n", 400),
    (b"Content-Length: 2000000\r\n\r\n", 413),
    (b"Transfer-Encoding: chunked\r\n\r\nffff\r\n" + b"a" * 65535 + b"\r\nffff\r\n", 413),
]


@pytest.mark.parametrize(("lines", "status"), SMUGGLING)
async def test_smuggling_attempts(lines: bytes, status: int) -> None:
    app = make_app()
    app.max_body = 100_000
    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        raw, response = await RawClient.open(port, b"POST / HTTP/1.1\r\nHost: h\r\n" + lines)
        assert response is not None and response.status_code == status
        assert response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""  # nothing else is answered: no smuggled request
        raw.close()
        await still_serving(port)


async def test_slowloris_head_gets_408() -> None:
    async with make_app().serve("127.0.0.1", 0, open_timeout=0.2) as server:
        port = port_of(server)
        raw, _ = await RawClient.open(port, None)
        raw.writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")  # and never the end
        response = await raw.read_response()
        assert response.status_code == 408
        raw.close()
        # the same on a keep-alive connection, after a first request
        raw, response = await RawClient.open(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        raw.writer.write(b"GET / HTTP/1.1\r\n")
        response = await raw.read_response()
        assert response.status_code == 408
        raw.close()
        await still_serving(port)


async def test_body_that_never_ends_gets_408() -> None:
    async with make_app().serve("127.0.0.1", 0, open_timeout=0.2) as server:
        port = port_of(server)
        for head in (
            b"Content-Length: 100\r\n\r\nabc",
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nab",
        ):
            raw, response = await RawClient.open(port, b"POST / HTTP/1.1\r\nHost: h\r\n" + head)
            assert response is not None and response.status_code == 408
            assert await raw.read_eof() == b""
            raw.close()
        await still_serving(port)


async def test_ten_thousand_pipelined_requests_in_bounded_memory() -> None:
    sizes: list[int] = []
    count = 10_000
    async with make_app(sizes).serve("127.0.0.1", 0) as server:
        port = port_of(server)
        raw, _ = await RawClient.open(port, None)
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"

        async def send() -> None:
            for _ in range(count // 100):
                raw.writer.write(request * 100)
                await raw.writer.drain()

        sender = asyncio.create_task(send())
        for _ in range(count):
            response = await raw.read_response()
            assert response.body == b"ok 0"
        await sender
        raw.close()
        await still_serving(port)
    assert len(sizes) == count + 1
    # What waits behind the request answered: the pause threshold plus one read.
    assert max(sizes) < PIPELINE_BUFFER + 262144 + len(request)


async def test_origin_null_is_refused() -> None:
    app = make_app()

    @app.websocket("/ws")
    async def handler(ws: rapidws.ServerConnection) -> None:
        await ws.send("in")

    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        with pytest.raises(rapidws.InvalidStatus) as info:
            await rapidws.connect(f"ws://127.0.0.1:{port}/ws", origin="null")
        assert info.value.response.status_code == 403
        await still_serving(port)

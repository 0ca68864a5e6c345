"""Request bodies streamed to handlers: backpressure, bounded memory, limits, unread bodies."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

import rapidws
from rapidws.http import server as http_server
from rapidws.http.server import BODY_BUFFER
from rapidws.protocol.http11 import Response
from tests.asyncio.helpers import RawClient, port_of

MiB = 2**20


def rss() -> int:
    """This process's resident memory, in bytes (Linux)."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def upload(port: int, head: bytes, total: int, chunked: bool) -> bytes:
    """Send ``total`` bytes of body from one 1 MiB buffer (in a thread); return the response."""
    piece = memoryview(bytes(range(256)) * 4096)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        left = total
        while left:
            part = piece[: min(left, len(piece))]
            if chunked:
                sock.sendall(b"%x\r\n" % len(part))
            sock.sendall(part)
            if chunked:
                sock.sendall(b"\r\n")
            left -= len(part)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while more := sock.recv(65536):
            data += more
        return data


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_64_mib_upload_streams_in_bounded_memory(chunked: bool) -> None:
    total = 64 * MiB
    app = rapidws.App(max_body=total)
    seen: dict[str, Any] = {"bytes": 0, "peak": 0, "pieces": 0}

    @app.post("/upload")
    async def receive(request: rapidws.HTTPRequest) -> Response:
        async for chunk in request.stream():
            seen["bytes"] += len(chunk)
            seen["pieces"] += 1
            if seen["pieces"] % 16 == 0:
                seen["peak"] = max(seen["peak"], rss())
        return rapidws.text_response(str(seen["bytes"]))

    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    head = b"POST /upload HTTP/1.1\r\nHost: h\r\n" + framing + b"\r\n\r\n"
    async with app.serve("127.0.0.1", 0) as server:
        before = rss()
        data = await asyncio.to_thread(upload, port_of(server), head, total, chunked)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n%d" % total)
    assert seen["bytes"] == total and seen["pieces"] > 16
    # The server held a few reads at a time, not the body: well under 64 MiB.
    assert seen["peak"] - before < 16 * MiB


async def test_reading_pauses_while_the_handler_does_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paused = asyncio.Event()
    pause_body = http_server.HTTPPath._pause_body

    def spy(self: http_server.HTTPPath) -> None:
        pause_body(self)
        paused.set()

    monkeypatch.setattr(http_server.HTTPPath, "_pause_body", spy)
    app = rapidws.App(max_body=16 * MiB)
    held: list[int] = []

    @app.post("/")
    async def slow(request: rapidws.HTTPRequest) -> Response:
        await paused.wait()
        conn = request.connection
        held.append(request._stream.buffered + len(conn._hs_buf))  # type: ignore[union-attr]
        assert conn._read_pauses & http_server.READS_PAUSED_FOR_BODY
        first = b""
        async for chunk in request.stream():
            first = chunk
            break
        rest = await request.body()  # the rest, after what stream() gave
        return rapidws.text_response(f"{len(first) + len(rest)}")

    async with app.serve("127.0.0.1", 0) as server:
        head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (8 * MiB)
        data = await asyncio.to_thread(upload, port_of(server), head, 8 * MiB, False)
    assert data.endswith(b"\r\n\r\n%d" % (8 * MiB))
    assert held[0] <= BODY_BUFFER + 262144  # the pause threshold plus one read


async def test_body_over_max_body_mid_stream_gets_413() -> None:
    app = rapidws.App(max_body=100_000)
    errors: list[BaseException] = []
    got = 0
    started = asyncio.Event()

    @app.post("/")
    async def receive(request: rapidws.HTTPRequest) -> Response:
        nonlocal got
        try:
            async for chunk in request.stream():
                got += len(chunk)
                started.set()
        except rapidws.InvalidMessage as exc:
            errors.append(exc)
            raise
        return rapidws.text_response("not reached")

    async with app.serve("127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"2710\r\n" + b"a" * 10_000 + b"\r\n"
        raw.writer.write(chunk)
        await started.wait()  # the handler reads the body as it comes
        for _ in range(20):
            raw.writer.write(chunk)
        response = await raw.read_response()
        assert response.status_code == 413 and response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""
        raw.close()
    assert got <= 100_000
    assert [getattr(exc, "status", None) for exc in errors] == [413]


async def test_streamed_body_that_stops_coming_gets_408() -> None:
    app = rapidws.App()
    errors: list[int] = []

    @app.post("/")
    async def receive(request: rapidws.HTTPRequest) -> Response:
        try:
            async for _ in request.stream():
                pass
        except rapidws.InvalidMessage as exc:
            errors.append(exc.status)
            raise
        return rapidws.text_response("not reached")

    async with app.serve("127.0.0.1", 0, open_timeout=0.2) as server:
        raw, response = await RawClient.open(
            port_of(server),
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 1000,
        )
        assert response is not None and response.status_code == 408
        assert await raw.read_eof() == b""
        raw.close()
    assert errors == [408]


@pytest.mark.parametrize(
    "body",
    [
        b"Content-Length: 1000000\r\n\r\n" + b"x" * 1_000_000,
        b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"186a0\r\n" + b"x" * 100_000 + b"\r\n") * 10
        + b"0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_unread_body_is_dropped_before_the_next_pipelined_request(body: bytes) -> None:
    app = rapidws.App(max_body=2 * MiB)

    @app.post("/ignore")
    async def ignore(request: rapidws.HTTPRequest) -> Response:
        return rapidws.text_response("ignored")

    @app.get("/")
    async def index(request: rapidws.HTTPRequest) -> Response:
        return rapidws.text_response("hello")

    async with app.serve("127.0.0.1", 0) as server:
        raw, _ = await RawClient.open(port_of(server), None)
        raw.writer.write(b"POST /ignore HTTP/1.1\r\nHost: h\r\n" + body)
        raw.writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        first = await raw.read_response()
        assert (first.status_code, first.body) == (200, b"ignored")
        assert "Connection" not in first.headers  # kept alive
        second = await raw.read_response()
        assert (second.status_code, second.body) == (200, b"hello")
        raw.close()


async def test_unwanted_body_behind_100_continue_closes() -> None:
    """The handler answers without the body the client waits to send: close (RFC 9110 10.1.1)."""
    app = rapidws.App()

    @app.post("/")
    async def refuse(request: rapidws.HTTPRequest) -> Response:
        return rapidws.text_response("no", status=403)

    async with app.serve("127.0.0.1", 0) as server:
        raw, response = await RawClient.open(
            port_of(server),
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        assert response is not None and response.status_code == 403  # no 100 first
        assert response.headers["Connection"] == "close"
        assert await raw.read_eof() == b""
        raw.close()


async def test_small_body_with_the_head_comes_whole() -> None:
    app = rapidws.App()
    bodies: list[Any] = []

    @app.post("/")
    async def receive(request: rapidws.HTTPRequest) -> Response:
        bodies.append(request._body)
        return rapidws.json_response(await request.json())

    async with app.serve("127.0.0.1", 0) as server:
        raw, response = await RawClient.open(
            port_of(server), b'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n{"a": 1}'
        )
        assert response is not None and response.body == b'{"a":1}'
        raw.close()
    assert bodies == [b'{"a": 1}']  # pre-read: no stream


async def test_echo_streams_the_body_back_as_it_arrives() -> None:
    app = rapidws.App(max_body=8 * MiB)

    @app.post("/echo")
    async def echo(request: rapidws.HTTPRequest) -> Response:
        return rapidws.stream_response(request.stream())  # chunked, read as it comes

    piece = bytes(range(256)) * 4096
    async with app.serve("127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))

        async def send() -> None:  # while the echo is read: no deadlock on full buffers
            writer.write(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n" % (4 * MiB))
            writer.write(b"Connection: close\r\n\r\n")
            for _ in range(4):
                writer.write(piece)
                await writer.drain()

        sender = asyncio.create_task(send())
        data = await reader.read()
        await sender
        writer.close()
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head_bytes
    parsed = bytearray()
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        parsed += body[:size]
        body = body[size + 2 :]
    assert parsed == piece * 4

"""Static files: content types, ETag, Range, HEAD, and no way out of the folder."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rapidws
from rapidws.http import static
from rapidws.http.static import INLINE_SIZE
from rapidws.protocol.http11 import Response
from tests.asyncio.helpers import RawClient, port_of


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "sub").mkdir(parents=True)
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "app.js").write_text("let x = 1;")
    (public / "sub" / "data.json").write_text('{"a": 1}')
    (public / "big.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB: streamed
    (tmp_path / "secret.txt").write_text("secret")
    (public / "escape").symlink_to(tmp_path / "secret.txt")
    (public / "inside").symlink_to(public / "app.js")
    return public


async def raw_get(port: int, path: bytes, headers: bytes = b"", method: bytes = b"GET") -> bytes:
    """The whole response to one request, read until the server closes."""
    raw, _ = await RawClient.open(port, None)
    raw.writer.write(
        method + b" " + path + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + headers + b"\r\n"
    )
    data = await raw.read_eof()
    raw.close()
    return data


def split(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(params=[INLINE_SIZE, 0], ids=["inline", "executor"])
async def port(folder: Path, request: pytest.FixtureRequest) -> AsyncIterator[int]:
    app = rapidws.App()
    app.static("/static", str(folder), inline_size=request.param)
    async with app.serve("127.0.0.1", 0) as server:
        yield port_of(server)


async def test_content_types_and_index(port: int) -> None:
    status, headers, body = split(await raw_get(port, b"/static/app.js"))
    assert status == 200 and body == b"let x = 1;"
    assert headers["Content-Type"] in (
        "text/javascript; charset=utf-8",
        "application/javascript; charset=utf-8",
    )
    status, headers, body = split(await raw_get(port, b"/static/sub/data.json"))
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    status, headers, body = split(await raw_get(port, b"/static/"))
    assert (status, body) == (200, b"<h1>home</h1>")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    status, _, body = split(await raw_get(port, b"/static/inside"))  # a symlink within
    assert (status, body) == (200, b"let x = 1;")


async def test_etag_and_if_none_match(port: int) -> None:
    status, headers, _ = split(await raw_get(port, b"/static/app.js"))
    etag = headers["ETag"]
    status, headers, body = split(
        await raw_get(port, b"/static/app.js", b"If-None-Match: " + etag.encode() + b"\r\n")
    )
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    status, _, _ = split(await raw_get(port, b"/static/app.js", b'If-None-Match: "other"\r\n'))
    assert status == 200


async def test_big_file_streamed_whole_and_in_ranges(port: int, folder: Path) -> None:
    content = (folder / "big.bin").read_bytes()
    status, headers, body = split(await raw_get(port, b"/static/big.bin"))
    assert status == 200 and body == content
    assert headers["Content-Length"] == str(len(content))
    assert headers["Content-Type"] == "application/octet-stream"
    cases = [
        (b"bytes=0-9", content[:10], "bytes 0-9/262144"),
        (b"bytes=100000-", content[100000:], "bytes 100000-262143/262144"),
        (b"bytes=-5", content[-5:], "bytes 262139-262143/262144"),
        (b"bytes=262140-999999", content[262140:], "bytes 262140-262143/262144"),
    ]
    for spec, expected, content_range in cases:
        status, headers, body = split(
            await raw_get(port, b"/static/big.bin", b"Range: " + spec + b"\r\n")
        )
        assert (status, body, headers["Content-Range"]) == (206, expected, content_range)
    status, headers, body = split(
        await raw_get(port, b"/static/big.bin", b"Range: bytes=300000-\r\n")
    )
    assert (status, headers["Content-Range"]) == (416, "bytes */262144")
    status, _, body = split(await raw_get(port, b"/static/big.bin", b"Range: bytes=0-1,5-6\r\n"))
    assert status == 200 and body == content  # several ranges: the whole file
    status, headers, body = split(await raw_get(port, b"/static/big.bin", method=b"HEAD"))
    assert (status, body, headers["Content-Length"]) == (200, b"", "262144")


TRAVERSALS = [
    b"/static/../secret.txt",
    b"/static/sub/../../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/sub%2f..%2f..%2fsecret.txt",
    b"/static/..%5csecret.txt",
    b"/static/escape",
    b"/static/app.js%00.png",
    b"/static/%ff",
    b"/static/./app.js",
    b"/static/nothing",
    b"/static/sub",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_no_way_out_of_the_folder(port: int, path: bytes) -> None:
    status, _, body = split(await raw_get(port, path))
    assert status == 404
    assert b"secret" not in body


def test_static_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        rapidws.App().static("/s", str(tmp_path / "missing"))
    assert os.path.isdir(tmp_path)


async def test_medium_file_is_read_whole(port: int, folder: Path) -> None:
    content = os.urandom(40_000)  # over inline_size, under chunk_size
    (folder / "medium.bin").write_bytes(content)
    status, headers, body = split(await raw_get(port, b"/static/medium.bin"))
    assert (status, body, headers["Content-Length"]) == (200, content, "40000")
    status, headers, body = split(
        await raw_get(port, b"/static/medium.bin", b"Range: bytes=30000-30009\r\n")
    )
    assert (status, body) == (206, content[30000:30010])


LARGE = 8 * 2**20


@pytest.fixture
def large(folder: Path) -> bytes:
    content = os.urandom(2**16) * (LARGE // 2**16 - 1) + os.urandom(2**16)
    (folder / "large.bin").write_bytes(content)
    return content


@pytest.mark.parametrize("cached", [True, False], ids=["page-cache", "disk"])
async def test_large_file_does_not_block_the_loop(
    folder: Path, large: bytes, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    # Every read: (thread, RWF_NOWAIT or not, bytes).  "disk": RWF_NOWAIT
    # finds nothing cached, as for a file not read lately.
    reads: list[tuple[int, bool, int]] = []
    pread, preadv = os.pread, os.preadv

    def spy_pread(fd: int, size: int, offset: int) -> bytes:
        data = pread(fd, size, offset)
        reads.append((threading.get_ident(), False, len(data)))
        return data

    def spy_preadv(fd: int, buffers: Any, offset: int, flags: int = 0) -> int:
        if not cached:
            raise BlockingIOError(11, "not in the page cache")
        got = preadv(fd, buffers, offset, flags)
        reads.append((threading.get_ident(), flags == static._RWF_NOWAIT, got))
        return got

    monkeypatch.setattr(static.os, "pread", spy_pread)
    monkeypatch.setattr(static.os, "preadv", spy_preadv)
    app = rapidws.App()
    app.static("/static", str(folder))
    read_when_answered: list[int] = []

    @app.get("/ping")
    async def ping(request: rapidws.HTTPRequest) -> Response:
        read_when_answered.append(sum(size for _, _, size in reads))
        return rapidws.text_response("pong")

    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        # A client that takes the file slowly: a small receive window, and it stops reading.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /static/large.bin HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b" 200 " in head and b"Content-Length: %d" % LARGE in head
        first = await reader.readexactly(65536)
        # Meanwhile, on another connection:
        raw, response = await RawClient.open(port, b"GET /ping HTTP/1.1\r\nHost: h\r\n\r\n")
        assert response is not None and response.body == b"pong"
        raw.close()
        # The other request was answered while the file was still being sent,
        # held back by the slow client (backpressure: not read ahead).
        assert read_when_answered[0] < LARGE
        rest = await reader.readexactly(LARGE - 65536)
        assert first + rest == large
        writer.close()
    assert sum(size for _, _, size in reads) == LARGE
    assert max(size for _, _, size in reads) <= 65536
    loop_thread = threading.get_ident()
    # On the loop's thread, only reads that cannot wait for the disk.
    assert all(nowait for thread, nowait, _ in reads if thread == loop_thread)
    if not cached:
        assert all(thread != loop_thread for thread, _, _ in reads)


async def test_range_of_a_large_file(port: int, large: bytes) -> None:
    for spec, start, end in [
        (b"bytes=1000000-5000000", 1_000_000, 5_000_001),
        (b"bytes=65535-131073", 65535, 131074),
        (b"bytes=-3000000", LARGE - 3_000_000, LARGE),
    ]:
        status, headers, body = split(
            await raw_get(port, b"/static/large.bin", b"Range: " + spec + b"\r\n")
        )
        assert status == 206 and body == large[start:end]
        assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{LARGE}"
    status, headers, body = split(await raw_get(port, b"/static/large.bin", method=b"HEAD"))
    assert (status, body, headers["Content-Length"]) == (200, b"", str(LARGE))


async def test_inline_size_0_runs_every_file_call_off_the_loop(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[int] = set()
    real_stat = os.stat

    def spy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).startswith(str(folder)):
            threads.add(threading.get_ident())
        return real_stat(path, *args, **kwargs)

    app = rapidws.App()
    app.static("/static", str(folder), inline_size=0)
    monkeypatch.setattr(static.os, "stat", spy)  # the requests' calls, not the setup's
    async with app.serve("127.0.0.1", 0) as server:
        status, _, body = split(await raw_get(port_of(server), b"/static/app.js"))
    assert (status, body) == (200, b"let x = 1;")
    assert threads and threading.get_ident() not in threads


async def test_small_file_not_in_the_page_cache_is_read_off_the_loop(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_cached(fd: int, buffers: Any, offset: int, flags: int = 0) -> int:
        raise BlockingIOError(11, "not in the page cache")

    monkeypatch.setattr(static.os, "preadv", not_cached)
    app = rapidws.App()
    app.static("/static", str(folder))
    async with app.serve("127.0.0.1", 0) as server:
        port = port_of(server)
        status, headers, body = split(await raw_get(port, b"/static/app.js"))
        assert (status, body, headers["Content-Length"]) == (200, b"let x = 1;", "10")
        status, _, body = split(await raw_get(port, b"/static/app.js", b"Range: bytes=4-4\r\n"))
        assert (status, body) == (206, b"x")

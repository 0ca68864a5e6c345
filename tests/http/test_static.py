"""Static files: content types, ETag, Range, HEAD, and no way out of the folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import rapidws
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


@pytest.fixture
async def port(folder: Path) -> AsyncIterator[int]:
    app = rapidws.App()
    app.static("/static", str(folder))
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

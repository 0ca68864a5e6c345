"""Request bodies, sans I/O: RFC 9112's framing rules (6.1, 6.3) and BodyReader, as tables."""

from __future__ import annotations

import time

import pytest

from rapidws.exceptions import InvalidHandshake, InvalidMessage
from rapidws.protocol.headers import Headers
from rapidws.protocol.http11 import CHUNKED, BodyReader, RequestParser, body_length

HEAD = b"POST /x HTTP/1.1\r\nHost: h\r\n"

# (extra header lines, expected length or status of the error)
FRAMING = [
    (b"", 0),
    (b"Content-Length: 0\r\n", 0),
    (b"Content-Length: 5\r\n", 5),
    (b"Content-Length: 007\r\n", 7),
    (b"Content-Length: 5\r\nContent-Length: 5\r\n", 5),
    (b"Transfer-Encoding: chunked\r\n", CHUNKED),
    (b"Transfer-Encoding: Chunked\r\n", CHUNKED),
    # smuggling: both headers, differing lengths, lists, non-final chunked
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", 400),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    (b"Content-Length: 5, 5\r\n", 400),
    (b"Content-Length: -1\r\n", 400),
    (b"Content-Length: +5\r\n", 400),
    (b"Content-Length: 0x10\r\n", 400),
    (b"Content-Length: 99999999999999999999\r\n", 413),
    (b"Transfer-Encoding: chunked, identity\r\n", 400),
    (b"Transfer-Encoding: gzip\r\n", 400),
    (b"Transfer-Encoding: gzip, chunked\r\n", 501),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
    # obs-fold, bare CR, bare LF in the head
    (b"Content-Length: 5\r\n 5\r\n", 400),
    (b"X-A: 1\r\n\tfolded\r\n", 400),
    (b"X-A: a\rb\r\n", 400),
    (b"Content-Length: 5\rX: 1\r\n", 400),
    (b"X-A: 1\n", 400),
    (b"Transfer-Encoding : chunked\r\n", 400),
]


@pytest.mark.parametrize(("lines", "expected"), FRAMING)
def test_framing_rules(lines: bytes, expected: int) -> None:
    raw = HEAD + lines + b"\r\n"
    parser = RequestParser(bodies=True)
    if expected >= 100:
        with pytest.raises(InvalidHandshake) as info:
            parser.parse(raw)
        assert info.value.status == expected
        return
    parsed = parser.parse(raw)
    assert parsed is not None
    request, consumed = parsed
    assert consumed == len(raw)
    assert body_length(request.headers) == expected


# (request line, extra header lines, bodies, the version parsed or the error's status)
VERSIONS = [
    (b"GET / HTTP/1.1", b"", True, "HTTP/1.1"),
    (b"GET / HTTP/1.0", b"", True, "HTTP/1.0"),
    (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", True, "HTTP/1.0"),
    (b"POST / HTTP/1.0", b"Content-Length: 5\r\n", True, "HTTP/1.0"),
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing
    (b"POST / HTTP/1.0", b"Transfer-Encoding: chunked\r\n", True, 400),
    (b"POST / HTTP/1.0", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", True, 400),
    # RFC 6455 4.2.1: a WebSocket handshake is HTTP/1.1 or higher
    (b"GET / HTTP/1.0", b"Upgrade: websocket\r\nConnection: Upgrade\r\n", True, 400),
    (b"GET / HTTP/1.0", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", True, 400),
    (b"GET / HTTP/1.0", b"", False, 400),  # a handshake-only parser
    # other versions: 505 (RFC 9110 15.6.6), whatever the parser
    (b"GET / HTTP/2.0", b"", True, 505),
    (b"GET / HTTP/3.0", b"", True, 505),
    (b"GET / HTTP/0.9", b"", True, 505),
    (b"GET / HTTP/1.2", b"", True, 505),
    (b"GET / HTTP/2.0", b"", False, 505),
    (b"GET / HTTP/1", b"", True, 400),
    (b"GET / HTTP/1.0.0", b"", True, 400),
]


@pytest.mark.parametrize(("start", "lines", "bodies", "expected"), VERSIONS)
def test_versions(start: bytes, lines: bytes, bodies: bool, expected: str | int) -> None:
    raw = start + b"\r\nHost: h\r\n" + lines + b"\r\n"
    parser = RequestParser(bodies=bodies)
    if isinstance(expected, int):
        with pytest.raises(InvalidHandshake) as info:
            parser.parse(raw)
        assert info.value.status == expected
        return
    parsed = parser.parse(raw)
    assert parsed is not None
    assert parsed[0].version == expected
    assert parsed[0].serialize().startswith(start + b"\r\n")


def test_parser_without_bodies_still_refuses_them() -> None:
    with pytest.raises(InvalidMessage, match="body not supported"):
        RequestParser().parse(HEAD + b"Content-Length: 1\r\n\r\n")


# (length, wire bytes, the body, what stays in the buffer)
READS = [
    (0, b"GET / HTTP/1.1", b"", b"GET / HTTP/1.1"),
    (5, b"hello", b"hello", b""),
    (5, b"helloGET", b"hello", b"GET"),
    (CHUNKED, b"0\r\n\r\n", b"", b""),
    (CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    (CHUNKED, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", b"hello world", b"NEXT"),
    (CHUNKED, b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
    (CHUNKED, b"5;ext=1;b\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    (CHUNKED, b"5 ;e\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    (CHUNKED, b"5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nZ", b"hello", b"Z"),
    (CHUNKED, b"0000\r\n\r\n", b"", b""),
]


@pytest.mark.parametrize(("length", "wire", "body", "rest"), READS)
def test_reads_at_once_and_byte_by_byte(length: int, wire: bytes, body: bytes, rest: bytes) -> None:
    reader = BodyReader(length, 1000)
    buf = bytearray(wire)
    assert reader.read(buf) == body
    assert reader.done
    assert bytes(buf) == rest
    # the same, one byte at a time
    reader = BodyReader(length, 1000)
    buf = bytearray()
    got = b""
    for i in range(len(wire)):
        if reader.done:
            buf += wire[i:]
            break
        buf.append(wire[i])
        got += reader.read(buf)
    assert reader.done
    assert got == body
    assert bytes(buf) == rest


# (length, wire bytes, max_body, status)
BAD_READS = [
    (CHUNKED, b"x\r\n", 100, 400),
    (CHUNKED, b"\r\n", 100, 400),
    (CHUNKED, b"-5\r\n", 100, 400),
    (CHUNKED, b"5\nhello", 100, 400),
    (CHUNKED, b"5\r\nhelloXX", 100, 400),
    (CHUNKED, b"5\r\nhello\n0\r\n\r\n", 100, 400),
    (CHUNKED, b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", 100, 400),
    (CHUNKED, b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", 100, 400),
    (CHUNKED, b"5\r\x00\r\n", 100, 400),
    (CHUNKED, b"11111111111111111\r\n", 100, 400),
    (CHUNKED, b"65\r\n", 100, 413),
    (CHUNKED, b"32\r\n" + b"a" * 50 + b"\r\n33\r\n", 100, 413),
    (CHUNKED, b"1" * 5000, 100, 400),
    (CHUNKED, b"0\r\n" + b"X: y\r\n" * 3000, 100, 431),
    (101, b"", 100, 413),
]


@pytest.mark.parametrize(("length", "wire", "max_body", "status"), BAD_READS)
def test_bad_bodies(length: int, wire: bytes, max_body: int, status: int) -> None:
    with pytest.raises(InvalidMessage) as info:
        BodyReader(length, max_body).read(bytearray(wire))
    assert info.value.status == status


def test_chunk_size_line_dripped_byte_by_byte_is_linear() -> None:
    """A long chunk extension, one byte per call: bounded by MAX_LINE, scanned once."""
    wire = b"1;" + b"e" * (BodyReader.MAX_LINE - 8) + b"\r\nx\r\n0\r\n\r\n"
    reader = BodyReader(CHUNKED, 100)
    buf = bytearray()
    started = time.perf_counter()
    body = b""
    for byte in wire:
        buf.append(byte)
        body += reader.read(buf)
    assert reader.done and body == b"x"
    assert time.perf_counter() - started < 1.0


def test_body_length_on_headers_directly() -> None:
    assert body_length(Headers([("Content-Length", "12")])) == 12
    assert body_length(Headers()) == 0

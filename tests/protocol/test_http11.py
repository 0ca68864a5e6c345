from __future__ import annotations

from typing import Any

import pytest

from rapidws.exceptions import InvalidHandshake, InvalidMessage, SecurityError
from rapidws.protocol.headers import Headers
from rapidws.protocol.http11 import (
    Request,
    RequestParser,
    Response,
    ResponseParser,
    parse_request,
    parse_response,
)

REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)

FRAME = b"\x81\x05hello"


def request_with(*lines: bytes, start: bytes = b"GET / HTTP/1.1") -> bytes:
    return start + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def response_with(*lines: bytes, start: bytes = b"HTTP/1.1 200 OK", body: bytes = b"") -> bytes:
    return start + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


# -- serialization -------------------------------------------------------------


def test_request_serialize() -> None:
    request = Request("/chat", Headers([("Host", "example.com")]))
    assert request.method == "GET"
    assert request.serialize() == b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/a b"), ("GET", "/\r\nX: y"), ("GET", ""), ("GE T", "/"), ("GET", "/\xe9")],
)
def test_request_serialize_unsafe(method: str, path: str) -> None:
    with pytest.raises(ValueError):
        Request(path, Headers(), method).serialize()


def test_response_serialize() -> None:
    response = Response(404, "Not Found", Headers([("Content-Length", "3")]), b"no\n")
    assert response.serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"


@pytest.mark.parametrize(("status", "reason"), [(99, "X"), (1000, "X"), (200, "O\r\nK")])
def test_response_serialize_unsafe(status: int, reason: str) -> None:
    with pytest.raises(ValueError):
        Response(status, reason, Headers()).serialize()


def test_roundtrip() -> None:
    request = Request("/p?q", Headers([("Host", "h"), ("X", "\xe9t\xe9")]))
    assert parse_request(request.serialize()) == (request, len(request.serialize()))
    response = Response(200, "OK", Headers([("Content-Length", "2")]), b"hi")
    assert parse_response(response.serialize()) == (response, len(response.serialize()))


# -- parse_request -------------------------------------------------------------


def test_parse_request() -> None:
    parsed = parse_request(REQUEST)
    assert parsed is not None
    request, consumed = parsed
    assert consumed == len(REQUEST)
    assert request.method == "GET"
    assert request.path == "/chat?x=1"
    assert request.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert list(request.headers) == [
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
    ]


@pytest.mark.parametrize("data_type", [bytes, bytearray])
def test_parse_request_keeps_trailing_bytes(data_type: type[bytes] | type[bytearray]) -> None:
    buf = data_type(REQUEST + FRAME)
    parsed = parse_request(buf)
    assert parsed is not None
    _, consumed = parsed
    assert buf[consumed:] == FRAME


def test_parse_request_incremental() -> None:
    expected = parse_request(REQUEST)
    for size in range(len(REQUEST)):
        assert parse_request(REQUEST[:size]) is None
    buf = bytearray()
    results = []
    for byte in REQUEST + FRAME:
        buf.append(byte)
        results.append(parse_request(buf))
    assert results[: len(REQUEST) - 1] == [None] * (len(REQUEST) - 1)
    assert all(result == expected for result in results[len(REQUEST) - 1 :])


def test_parse_request_header_values() -> None:
    parsed = parse_request(request_with(b"A:   x  y \t", b"B:", b"C:\tz", b"D: caf\xe9"))
    assert parsed is not None
    assert parsed[0].headers.items() == [("A", "x  y"), ("B", ""), ("C", "z"), ("D", "caf\xe9")]


def test_parse_request_other_method() -> None:
    parsed = parse_request(request_with(start=b"OPTIONS * HTTP/1.1"))
    assert parsed is not None
    assert (parsed[0].method, parsed[0].path) == ("OPTIONS", "*")


INVALID_REQUESTS = [
    (request_with(start=b"GET /"), 400, "invalid request line"),  # missing version
    (request_with(start=b"GET / HTTP/1.0"), 400, "needs HTTP/1.1"),
    (request_with(start=b"GET / HTTP/2.0"), 505, "unsupported HTTP version"),
    (request_with(start=b"GET / http/1.1"), 400, "invalid HTTP version"),
    (request_with(start=b"GET / HTTP/1.1 "), 400, "invalid request line"),
    (request_with(start=b"GET  / HTTP/1.1"), 400, "invalid request line"),
    (request_with(start=b"G(T / HTTP/1.1"), 400, "invalid method"),
    (request_with(start=b"GET /\x7f HTTP/1.1"), 400, "invalid request target"),
    (request_with(start=b"GET /\xe9 HTTP/1.1"), 400, "invalid request target"),
    (request_with(start=b"GET\t/ HTTP/1.1"), 400, "invalid request line"),
    (b"\r\nGET / HTTP/1.1\r\n\r\n", 400, "empty line"),
    (b"GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF"),
    (request_with(b"Host: a\rb"), 400, "invalid value"),
    (request_with(b"Host: a\x00b"), 400, "invalid value"),
    (request_with(b"Host: a\x7fb"), 400, "invalid value"),
    (request_with(b"Host: a", b" folded"), 400, "obs-fold"),
    (request_with(b"\tHost: a"), 400, "obs-fold"),
    (request_with(b"Host : a"), 400, "invalid header line"),
    (request_with(b"Host"), 400, "invalid header line"),
    (request_with(b": a"), 400, "invalid header line"),
    (request_with(b"H\xe9: a"), 400, "invalid header line"),
    (request_with(b"Content-Length: 5"), 400, "request body"),
    (request_with(b"Content-Length: 0", b"Content-Length: 0"), 400, "multiple Content"),
    (request_with(b"Content-Length: -1"), 400, "invalid Content-Length"),
    (request_with(b"Content-Length: 1, 1"), 400, "invalid Content-Length"),
    (request_with(b"Transfer-Encoding: chunked"), 400, "request body"),
]


@pytest.mark.parametrize(("data", "status", "message"), INVALID_REQUESTS)
def test_parse_request_invalid(data: bytes, status: int, message: str) -> None:
    with pytest.raises(InvalidMessage) as exc_info:
        parse_request(data)
    assert exc_info.value.status == status
    assert message in str(exc_info.value)


def test_parse_request_zero_content_length() -> None:
    assert parse_request(request_with(b"Content-Length: 0")) is not None


def test_parse_request_bare_lf_detected_early() -> None:
    with pytest.raises(InvalidMessage, match="bare LF"):
        parse_request(b"GET / HTTP/1.1\nHost")


# -- limits --------------------------------------------------------------------


def test_request_line_limit() -> None:
    line = b"GET /" + b"a" * 95 + b" HTTP/1.1"  # 109 bytes
    assert parse_request(request_with(start=line), max_line=len(line)) is not None
    with pytest.raises(InvalidMessage) as exc_info:
        parse_request(request_with(start=line), max_line=len(line) - 1)
    assert exc_info.value.status == 414


def test_endless_request_line() -> None:
    buf = b"GET /" + b"a" * 8190
    assert parse_request(buf[:8193]) is None
    with pytest.raises(InvalidMessage) as exc_info:
        parse_request(buf)
    assert exc_info.value.status == 414


def test_header_line_limit() -> None:
    line = b"X: " + b"v" * 97  # 100 bytes
    assert parse_request(request_with(line), max_line=100) is not None
    with pytest.raises(SecurityError) as exc_info:
        parse_request(request_with(line), max_line=99)
    assert exc_info.value.status == 431


def test_endless_header_line() -> None:
    buf = b"GET / HTTP/1.1\r\nX-Endless: " + b"a" * 9000
    with pytest.raises(SecurityError, match="header line too long") as exc_info:
        parse_request(buf)
    assert exc_info.value.status == 431
    # rejected as soon as the limit is exceeded, not when the buffer is huge
    with pytest.raises(SecurityError):
        parse_request(buf[: 16 + 8192 + 2])
    assert parse_request(buf[: 16 + 8192 + 1]) is None


def test_header_count_limit() -> None:
    lines = [b"X-%d: v" % i for i in range(4)]
    assert parse_request(request_with(*lines), max_headers=4) is not None
    with pytest.raises(SecurityError, match="too many headers"):
        parse_request(request_with(*lines), max_headers=3)


def test_ten_thousand_headers() -> None:
    buf = request_with(*[b"X: y"] * 10_000)
    with pytest.raises(SecurityError) as exc_info:
        parse_request(buf)
    assert exc_info.value.status == 431
    # also while incomplete
    with pytest.raises(SecurityError):
        parse_request(buf[:-2])


def test_header_block_limit() -> None:
    data = request_with(b"X: " + b"v" * 50, b"Y: " + b"v" * 50)
    assert parse_request(data, max_header_bytes=len(data)) is not None
    with pytest.raises(SecurityError, match="too large"):
        parse_request(data, max_header_bytes=len(data) - 1)
    # incomplete head already over the limit
    with pytest.raises(SecurityError, match="too large"):
        parse_request(data[:-2], max_header_bytes=len(data) - 3)
    assert parse_request(data[:-2], max_header_bytes=len(data) - 2) is None


def test_limits_are_security_errors_with_431() -> None:
    exc = SecurityError("x")
    assert isinstance(exc, InvalidHandshake)
    assert exc.status == 431


# -- parse_response ------------------------------------------------------------


def test_parse_response_101() -> None:
    parsed = parse_response(RESPONSE)
    assert parsed is not None
    response, consumed = parsed
    assert consumed == len(RESPONSE)
    assert (response.status_code, response.reason_phrase, response.body) == (
        101,
        "Switching Protocols",
        b"",
    )
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_parse_response_101_keeps_trailing_bytes() -> None:
    buf = bytearray(RESPONSE + FRAME)
    parsed = parse_response(buf)
    assert parsed is not None
    assert buf[parsed[1] :] == FRAME


def test_parse_response_101_ignores_content_length() -> None:
    data = response_with(b"Content-Length: 5", start=b"HTTP/1.1 101 Switching Protocols")
    parsed = parse_response(data + FRAME)
    assert parsed is not None
    assert parsed[0].body == b""
    assert parsed[1] == len(data)


def test_parse_response_incremental() -> None:
    data = response_with(b"Content-Length: 5", body=b"hello")
    expected = parse_response(data)
    assert expected is not None
    assert expected[0].body == b"hello"
    buf = bytearray()
    for byte in data[:-1]:
        buf.append(byte)
        assert parse_response(buf) is None
    for byte in data[-1:] + FRAME:
        buf.append(byte)
        assert parse_response(buf) == expected


@pytest.mark.parametrize(
    ("lines", "status_line", "body"),
    [
        ((b"Content-Length: 3",), b"HTTP/1.1 200 OK", b"abc"),
        ((b"Content-Length: 003",), b"HTTP/1.1 200 OK", b"abc"),
        ((b"Content-Length: 0",), b"HTTP/1.1 404 Not Found", b""),
        ((), b"HTTP/1.1 200 OK", b""),  # no Content-Length: no body read
        ((b"Transfer-Encoding: chunked", b"Content-Length: 3"), b"HTTP/1.1 200 OK", b""),
        ((b"Content-Length: 3",), b"HTTP/1.1 204 No Content", b""),
        ((b"Content-Length: 3",), b"HTTP/1.1 304 Not Modified", b""),
        ((b"Content-Length: 3",), b"HTTP/1.1 100 Continue", b""),
    ],
)
def test_parse_response_body(lines: tuple[bytes, ...], status_line: bytes, body: bytes) -> None:
    head = response_with(*lines, start=status_line)
    parsed = parse_response(head + b"abc" + FRAME)
    assert parsed is not None
    response, consumed = parsed
    assert response.body == body
    assert consumed == len(head) + len(body)


@pytest.mark.parametrize(
    ("status_line", "code", "reason"),
    [
        (b"HTTP/1.1 200 OK", 200, "OK"),
        (b"HTTP/1.1 200 ", 200, ""),
        (b"HTTP/1.1 200", 200, ""),
        (b"HTTP/1.1 599 Custom\tphrase \xe9", 599, "Custom\tphrase \xe9"),
    ],
)
def test_parse_status_line(status_line: bytes, code: int, reason: str) -> None:
    parsed = parse_response(response_with(start=status_line))
    assert parsed is not None
    assert (parsed[0].status_code, parsed[0].reason_phrase) == (code, reason)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (response_with(start=b"HTTP/1.0 200 OK"), "unsupported HTTP version"),
        (response_with(start=b"HTTP/2 200 OK"), "invalid status line"),
        (response_with(start=b"HTTP/1.1 20 OK"), "invalid status line"),
        (response_with(start=b"HTTP/1.1 2000 OK"), "invalid status line"),
        (response_with(start=b"HTTP/1.1 099 OK"), "invalid status code"),
        (response_with(start=b"HTTP/1.1 600 OK"), "invalid status code"),
        (response_with(start=b"HTTP/1.1 200 O\x00K"), "invalid status line"),
        (response_with(start=b"ICY 200 OK"), "invalid status line"),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"),
        (response_with(b"X: a\x00"), "invalid value"),
        (response_with(b"Content-Length: 1", b"Content-Length: 1", body=b"a"), "multiple"),
        (response_with(b"Content-Length: x"), "invalid Content-Length"),
        (response_with(b"Content-Length: +1", body=b"a"), "invalid Content-Length"),
    ],
)
def test_parse_response_invalid(data: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        parse_response(data)


@pytest.mark.parametrize("length", [b"1048577", b"99999999999999999999999999", b"9" * 5000])
def test_parse_response_huge_content_length(length: bytes) -> None:
    with pytest.raises(SecurityError):
        parse_response(response_with(b"Content-Length: " + length))


def test_parse_response_max_body() -> None:
    data = response_with(b"Content-Length: 10", body=b"0123456789")
    assert parse_response(data, max_body=10) is not None
    with pytest.raises(SecurityError, match="body too large"):
        parse_response(data, max_body=9)


def test_parse_response_limits() -> None:
    with pytest.raises(InvalidMessage, match="status line too long"):
        parse_response(b"HTTP/1.1 200 " + b"x" * 10_000)
    with pytest.raises(SecurityError, match="header line too long"):
        parse_response(b"HTTP/1.1 200 OK\r\nX: " + b"x" * 10_000)
    with pytest.raises(SecurityError, match="too many headers"):
        parse_response(response_with(*[b"X: y"] * 129))
    with pytest.raises(SecurityError, match="too large"):
        parse_response(response_with(b"X: " + b"y" * 100), max_header_bytes=100)


# -- RequestParser / ResponseParser ---------------------------------------------


def feed(parser: RequestParser | ResponseParser, data: bytes, chunk: int = 1) -> list[Any]:
    """Grow a buffer ``chunk`` bytes at a time, parsing after each step."""
    buf = bytearray()
    results = []
    for i in range(0, len(data), chunk):
        buf += data[i : i + chunk]
        results.append(parser.parse(buf))
    return results


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1000])
def test_request_parser_incremental(chunk: int) -> None:
    data = REQUEST + FRAME
    results = feed(RequestParser(), data, chunk)
    complete = [result for result in results if result is not None]
    assert complete
    assert all(result == parse_request(REQUEST) for result in complete)
    first = results.index(complete[0])
    assert (first + 1) * chunk >= len(REQUEST) > first * chunk
    _, consumed = complete[-1]
    assert data[consumed:] == FRAME


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_response_parser_incremental(chunk: int) -> None:
    data = response_with(b"Content-Length: 5", body=b"hello")
    results = feed(ResponseParser(), data + FRAME, chunk)
    complete = [result for result in results if result is not None]
    assert complete
    assert all(result == parse_response(data) for result in complete)
    assert results.index(complete[0]) == (len(data) - 1) // chunk


@pytest.mark.parametrize(("data", "status", "message"), INVALID_REQUESTS)
def test_request_parser_incremental_errors(data: bytes, status: int, message: str) -> None:
    with pytest.raises(InvalidMessage) as exc_info:
        feed(RequestParser(), data)
    assert exc_info.value.status == status
    assert message in str(exc_info.value)


def test_request_parser_endless_line_fails_at_limit() -> None:
    parser = RequestParser(max_line=100)
    buf = bytearray(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(SecurityError, match="header line too long"):
        while True:
            assert parser.parse(buf) is None
            buf += b"a"
    assert len(buf) == 16 + 102


def test_request_parser_endless_request_line_fails_at_limit() -> None:
    parser = RequestParser(max_line=100)
    buf = bytearray()
    with pytest.raises(InvalidMessage, match="request line too long") as exc_info:
        while True:
            buf += b"G"
            assert parser.parse(buf) is None
    assert exc_info.value.status == 414
    assert len(buf) == 102


def test_request_parser_header_flood_fails_early() -> None:
    parser = RequestParser()
    line = b"X: y\r\n"
    buf = bytearray(b"GET / HTTP/1.1\r\n")
    with pytest.raises(SecurityError, match="too many headers"):
        for _ in range(10_000):
            buf += line
            assert parser.parse(buf) is None
    assert len(buf) == 16 + 129 * len(line)


def test_request_parser_header_block_limit() -> None:
    parser = RequestParser(max_header_bytes=1000)
    buf = bytearray(b"GET / HTTP/1.1\r\n")
    with pytest.raises(SecurityError, match="header block too large"):
        while True:
            assert parser.parse(buf) is None
            buf += b"X: " + b"y" * 50 + b"\r\n"
    assert len(buf) <= 1000 + 55


def test_request_parser_bare_lf_fails_early() -> None:
    with pytest.raises(InvalidMessage, match="bare LF"):
        feed(RequestParser(), b"GET / HTTP/1.1\nHost: a")


VALID_HEADER_BLOCKS = [
    (b"Host: a",),
    (b"Host:a", b"X-Empty:", b"X-Spaces: \t v \t ", b"X-Inner: a  b\tc"),
    (b"X-Latin: caf\xe9 \xff", b"x-latin: second", b"X-LATIN:third"),
    (b"!#$%&'*+-.^_`|~09azAZ: token characters",),
    tuple(b"X-%d: %d" % (i, i) for i in range(128)),  # exactly max_headers
]


@pytest.mark.parametrize("lines", VALID_HEADER_BLOCKS)
def test_whole_and_byte_by_byte_heads_parse_the_same(lines: tuple[bytes, ...]) -> None:
    data = request_with(*lines)
    whole = parse_request(data)  # one read: the whole-head path
    dripped = feed(RequestParser(), data, 1)[-1]  # byte by byte: the line-by-line path
    assert whole is not None and whole == dripped
    request, consumed = whole
    assert consumed == len(data)
    expected = [line.partition(b":") for line in lines]
    assert request.headers.items() == [
        (name.decode(), value.strip(b" \t").decode("iso-8859-1")) for name, _, value in expected
    ]


def test_repeated_headers_keep_their_order_and_case() -> None:
    result = parse_request(request_with(b"X-A: 1", b"x-a: 2", b"Y: 3", b"X-a: 4"))
    assert result is not None
    headers = result[0].headers
    assert headers.get_all("X-A") == ["1", "2", "4"]
    assert [name for name, _ in headers.items()] == ["X-A", "x-a", "Y", "X-a"]

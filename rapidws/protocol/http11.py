"""Sans-I/O HTTP/1.1 messages and incremental parsers for the opening handshake.

:func:`parse_request` and :func:`parse_response` take everything received so
far and return ``None`` while the message is incomplete, else the message and
the number of bytes it used; bytes past that belong to the WebSocket stream.
They are stateless and O(len(buf)) per call; when the buffer grows over many
calls, :class:`RequestParser` and :class:`ResponseParser` give the same
results while scanning each byte once (a peer dripping a 64 KiB head byte by
byte costs linear, not quadratic, time).

The parsers are strict: lines must end with CRLF (a bare LF is an error, and
an empty line before the start line too), the version must be ``HTTP/1.1``
(or, for a plain request with ``bodies``, ``HTTP/1.0``: see
:func:`_check_http10`; other versions get 505),
names must be tokens, values may not contain control characters other than
tab, and obs-fold continuation lines are rejected.  Limits are enforced on
incomplete input as well, so an endless line fails as soon as it exceeds
``max_line``.

Bodies: by default requests may not have one (``Transfer-Encoding`` or a
non-zero ``Content-Length`` is an error, since those bytes would otherwise be
read as WebSocket frames).  ``RequestParser(bodies=True)``, for the plain
HTTP path, accepts them under RFC 9112's framing rules (see
:func:`body_length`) and :class:`BodyReader` reads them.  A response has a
body only when it has a status other than 1xx/204/304, no
``Transfer-Encoding`` and a ``Content-Length``; chunked and read-until-close
bodies are not read (``body`` is ``b""``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import InvalidHandshake, InvalidMessage, SecurityError
from .headers import Headers

__all__ = [
    "CHUNKED",
    "HTTP_10",
    "HTTP_11",
    "BodyReader",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "body_length",
    "parse_request",
    "parse_response",
]

#: :func:`body_length`'s answer for a chunked body.
CHUNKED = -1
#: :attr:`Request.version` values.
HTTP_11 = "HTTP/1.1"
HTTP_10 = "HTTP/1.0"

_token_re = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_target_re = re.compile(rb"[\x21-\x7e]+")
_version_re = re.compile(rb"HTTP/[0-9]\.[0-9]")
_status_re = re.compile(rb"(HTTP/[0-9]\.[0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_str_token_re = re.compile(_token_re.pattern.decode())
_str_target_re = re.compile(_target_re.pattern.decode())
_str_reason_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


@dataclass
class Request:
    """An HTTP request (``path`` and ``headers`` come first, as in ``websockets``)."""

    path: str
    headers: Headers = field(default_factory=Headers)
    method: str = "GET"
    #: ``HTTP/1.1``, or ``HTTP/1.0`` (the plain HTTP path serves both).
    version: str = "HTTP/1.1"

    def serialize(self) -> bytes:
        """Return the request line and headers; ``ValueError`` if they are unsafe."""
        if not _str_token_re.fullmatch(self.method):
            raise ValueError(f"invalid method: {self.method!r}")
        if not _str_target_re.fullmatch(self.path):
            raise ValueError(f"invalid request target: {self.path!r}")
        if self.version not in (HTTP_11, HTTP_10):
            raise ValueError(f"invalid version: {self.version!r}")
        start = f"{self.method} {self.path} {self.version}\r\n"
        return start.encode() + self.headers.serialize()


@dataclass
class Response:
    """An HTTP response; :meth:`serialize` adds no header (set ``Content-Length``)."""

    status_code: int
    reason_phrase: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def serialize(self) -> bytes:
        """Return the status line, headers and body; ``ValueError`` if unsafe."""
        if not 100 <= self.status_code <= 999:
            raise ValueError(f"invalid status code: {self.status_code}")
        if not _str_reason_re.fullmatch(self.reason_phrase):
            raise ValueError(f"invalid reason phrase: {self.reason_phrase!r}")
        status_line = f"HTTP/1.1 {self.status_code} {self.reason_phrase}\r\n"
        return status_line.encode("iso-8859-1") + self.headers.serialize() + self.body


def _invalid(message: str, status: int = 400) -> InvalidMessage:
    exc = InvalidMessage(message)
    exc.status = status
    return exc


def _show(data: bytes) -> str:
    """Short repr of peer data for error messages."""
    return repr(data[:64]) + ("..." if len(data) > 64 else "")


class _HeadScanner:
    """Finds the end of a head in a growing buffer, enforcing the limits.

    Each byte is scanned once across calls and each complete line is checked
    as soon as it arrives, so a never-ending line or header list fails as soon
    as it crosses a limit.
    """

    def __init__(
        self,
        max_line: int,
        max_headers: int,
        max_header_bytes: int,
        start_too_long: Callable[[], InvalidHandshake],
    ) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.start_too_long = start_too_long
        self._pos = 0  # end of the complete lines checked so far
        self._searched = 0  # no LF before this offset past _pos
        self._count = 0  # complete non-empty lines
        self._head: tuple[bytes, int] | None = None

    def scan(self, buf: bytes | bytearray) -> tuple[bytes, int] | None:
        """Return the head (without its final CRLF CRLF) and size, or None if incomplete."""
        if self._pos == 0 and self._head is None:
            head = self._scan_whole(buf)
            if head is not None:
                self._head = head
                self._pos = head[1]
        while self._head is None:
            end = buf.find(b"\n", max(self._pos, self._searched))
            if end == -1:
                self._searched = len(buf)
                if len(buf) - self._pos > self.max_line + 1:  # + 1: CR of a pending CRLF
                    raise self._line_too_long()
                if len(buf) > self.max_header_bytes:
                    raise SecurityError("header block too large")
                return None
            if end == 0 or buf[end - 1] != 0x0D:
                raise _invalid("line ending is a bare LF, not CRLF")
            if end - 1 - self._pos > self.max_line:
                raise self._line_too_long()
            empty = end - 1 == self._pos
            self._pos = end + 1
            if self._pos > self.max_header_bytes:
                raise SecurityError("header block too large")
            if empty:
                if self._count == 0:
                    raise _invalid("empty line instead of a start line")
                self._head = bytes(buf[: self._pos - 4]), self._pos
            else:
                self._count += 1
                if self._count > self.max_headers + 1:
                    raise SecurityError("too many headers")
        return self._head

    def _scan_whole(self, buf: bytes | bytearray) -> tuple[bytes, int] | None:
        """The usual case, a whole head in the first read, checked in a few C passes.

        Return ``None`` when the head is not all there or breaks a rule: the
        line-by-line scan then finds out which (and reports it).
        """
        end = buf.find(b"\r\n\r\n")
        if end <= 0 or buf.startswith(b"\r\n"):
            return None
        size = end + 4
        if size > self.max_header_bytes:
            return None
        crlf = buf.count(b"\r\n", 0, size)
        if buf.count(b"\n", 0, size) != crlf or crlf > self.max_headers + 2:
            return None  # a bare LF, or too many lines
        head = bytes(buf[:end])
        if size > self.max_line and max(map(len, head.split(b"\r\n"))) > self.max_line:
            return None
        return head, size

    def _line_too_long(self) -> InvalidHandshake:
        return self.start_too_long() if self._count == 0 else SecurityError("header line too long")


#: A whole header line: a token name, a colon, a value of field-value characters.
_HEADER_LINE = r"([-!#$%&'*+.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)"
_header_line_re = re.compile(_HEADER_LINE.encode())
#: The header lines of a head, decoded as ISO-8859-1 and joined by CRLF.
_header_block_re = re.compile(f"{_HEADER_LINE}(?:\r\n{_HEADER_LINE})*")
_header_pair_re = re.compile(_HEADER_LINE)


def _parse_headers(block: bytes) -> Headers:
    """Parse the header lines of a head (CRLF-separated, without the final CRLF)."""
    headers = Headers()
    if not block:
        return headers
    # Decoded once (ISO-8859-1 maps each byte to one character), checked
    # whole by one regex, then split into pairs by another.
    text = block.decode("iso-8859-1")
    if _header_block_re.fullmatch(text) is None:
        for line in block.split(b"\r\n"):
            if _header_line_re.fullmatch(line) is None:
                raise _header_line_error(line)
        raise _invalid("invalid header block")  # not reached: some line is invalid
    headers._add_pairs(_header_pair_re.findall(text))
    return headers


def _header_line_error(line: bytes) -> InvalidMessage:
    if line[:1] in (b" ", b"\t"):
        return _invalid(f"obs-fold line folding is not supported: {_show(line)}")
    name, colon, _ = line.partition(b":")
    if not colon or not _token_re.fullmatch(name):
        return _invalid(f"invalid header line: {_show(line)}")
    return _invalid(f"invalid value for header {name.decode()}: {_show(line)}")


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise _invalid("multiple Content-Length headers")
    value = values[0]
    if not (value.isascii() and value.isdigit()):
        raise _invalid(f"invalid Content-Length: {value[:64]!r}")
    if len(value.lstrip("0")) > 18:
        raise SecurityError("Content-Length too large")
    return int(value)


class RequestParser:
    """Parses a request from a buffer that grows between calls.

    :meth:`parse` behaves like :func:`parse_request`, but remembers how far
    it got, so feeding a request in many small pieces costs linear time.
    Pass the same buffer (or one with the same prefix) each time.
    """

    def __init__(
        self,
        *,
        max_line: int = 8192,
        max_headers: int = 128,
        max_header_bytes: int = 65536,
        bodies: bool = False,
    ) -> None:
        self._scanner = _HeadScanner(
            max_line,
            max_headers,
            max_header_bytes,
            lambda: _invalid("request line too long", 414),
        )
        self.bodies = bodies
        #: With ``bodies``, once parsed: whether the request is a WebSocket
        #: handshake and nothing else (``Upgrade`` or a key, and no body).
        self.upgrade_only = False

    def parse(self, buf: bytes | bytearray) -> tuple[Request, int] | None:
        """Return ``(request, consumed)`` or ``None`` if incomplete."""
        head = self._scanner.scan(buf)
        if head is None:
            return None
        head_bytes, consumed = head
        start, _, block = head_bytes.partition(b"\r\n")
        parts = start.split(b" ")
        if len(parts) != 3:
            raise _invalid(f"invalid request line: {_show(start)}")
        method, target, version = parts
        http10 = False
        if version != b"HTTP/1.1":
            if version != b"HTTP/1.0":
                if _version_re.fullmatch(version):
                    raise _invalid(f"unsupported HTTP version: {version.decode()}", 505)
                raise _invalid(f"invalid HTTP version: {_show(version)}")
            http10 = True
        if not _token_re.fullmatch(method):
            raise _invalid(f"invalid method: {_show(method)}")
        if not _target_re.fullmatch(target):
            raise _invalid(f"invalid request target: {_show(target)}")
        headers = _parse_headers(block)
        if http10:
            _check_http10(headers, self.bodies)
        if self.bodies:
            if body_length(headers) == 0:  # the framing rules: 400 (or 501) if broken
                names = headers._dict
                self.upgrade_only = "upgrade" in names or "sec-websocket-key" in names
        elif "Transfer-Encoding" in headers:
            raise _invalid("request body not supported (Transfer-Encoding)")
        elif _content_length(headers):
            raise _invalid("request body not supported (Content-Length)")
        request = Request(target.decode("ascii"), headers, method.decode("ascii"))
        if http10:
            request.version = HTTP_10
        return request, consumed


def _check_http10(headers: Headers, bodies: bool) -> None:
    """The rules of an HTTP/1.0 request (a plain one: a handshake needs HTTP/1.1).

    RFC 6455 4.2.1: the opening handshake is "an HTTP/1.1 or higher GET
    request"; one that is not gets "an appropriate error code (such as 400
    Bad Request)" (4.2.2).  Not 505: that refuses the request's *major*
    version (RFC 9110 15.6.6), and HTTP/1.0 requests are served.  A parser
    without ``bodies`` reads handshakes only, so every HTTP/1.0 request
    fails there.  RFC 9112 6.1: an HTTP/1.0 message with
    ``Transfer-Encoding`` has faulty framing: 400 (RFC 9112 6.3).
    """
    names = headers._dict
    if not bodies or "upgrade" in names or "sec-websocket-key" in names:
        raise _invalid("a WebSocket handshake needs HTTP/1.1, not HTTP/1.0 (RFC 6455 4.2.1)")
    if "transfer-encoding" in names:
        raise _invalid("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)")


class ResponseParser:
    """Parses a response from a buffer that grows between calls.

    Like :class:`RequestParser`, for :func:`parse_response`.
    """

    def __init__(
        self,
        *,
        max_line: int = 8192,
        max_headers: int = 128,
        max_header_bytes: int = 65536,
        max_body: int = 2**20,
    ) -> None:
        self._scanner = _HeadScanner(
            max_line,
            max_headers,
            max_header_bytes,
            lambda: _invalid("status line too long"),
        )
        self.max_body = max_body

    def parse(self, buf: bytes | bytearray) -> tuple[Response, int] | None:
        """Return ``(response, consumed)`` or ``None`` if incomplete."""
        head = self._scanner.scan(buf)
        if head is None:
            return None
        head_bytes, consumed = head
        start, _, block = head_bytes.partition(b"\r\n")
        match = _status_re.fullmatch(start)
        if match is None:
            raise _invalid(f"invalid status line: {_show(start)}")
        version, code, reason = match.groups()
        if version != b"HTTP/1.1":
            raise _invalid(f"unsupported HTTP version: {version.decode()}")
        status_code = int(code)
        if not 100 <= status_code <= 599:
            raise _invalid(f"invalid status code: {status_code}")
        headers = _parse_headers(block)
        body = b""
        if status_code >= 200 and status_code not in (204, 304):
            length = None if "Transfer-Encoding" in headers else _content_length(headers)
            if length:
                if length > self.max_body:
                    raise SecurityError(f"body too large: {length} bytes")
                if len(buf) < consumed + length:
                    return None
                body = bytes(buf[consumed : consumed + length])
                consumed += length
        phrase = (reason or b"").decode("iso-8859-1")
        return Response(status_code, phrase, headers, body), consumed


def body_length(headers: Headers) -> int:
    """The length of a request's body: 0 for none, :data:`CHUNKED`, or a byte count.

    RFC 9112 6.1 and 6.3, against request smuggling: ``Transfer-Encoding``
    with ``Content-Length`` is an error (400), as are differing
    ``Content-Length`` values and a ``Transfer-Encoding`` whose final coding
    is not ``chunked``; other transfer codings are not implemented (501).
    Obs-fold and bare CR never get this far: the head parser refuses them.
    """
    codings = headers._values("transfer-encoding")
    lengths = headers._values("content-length")
    if codings:
        if lengths:
            raise _invalid("both Transfer-Encoding and Content-Length (RFC 9112 6.1)")
        names = [name.strip(" \t").lower() for value in codings for name in value.split(",")]
        if names[-1] != "chunked":
            raise _invalid("Transfer-Encoding must end with chunked (RFC 9112 6.3)")
        if len(names) > 1:
            raise _invalid(f"unsupported Transfer-Encoding: {', '.join(names)[:64]}", 501)
        return CHUNKED
    if not lengths:
        return 0
    value = lengths[0]
    for other in lengths:  # a loop, not any(): no generator on the handshake path
        if other != value:
            raise _invalid("differing Content-Length values (RFC 9112 6.3)")
    if not (value.isascii() and value.isdigit()):
        raise _invalid(f"invalid Content-Length: {value[:64]!r}")
    if len(value.lstrip("0")) > 18:
        raise _invalid("Content-Length too large", 413)
    return int(value)


_chunk_size_re = re.compile(rb"([0-9A-Fa-f]{1,16})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?")

# BodyReader states.
_SIZE = 0  # a chunk-size line
_DATA = 1  # chunk data (or the whole Content-Length body)
_DATA_END = 2  # the CRLF after a chunk's data
_TRAILER = 3  # trailer lines, up to an empty one
_DONE = 4


class BodyReader:
    """Reads a request body out of a buffer as it comes (RFC 9112 6.3 and 7.1).

    ``length`` is :func:`body_length`'s answer.  :meth:`read` takes the body's
    bytes from the front of ``buf`` (a bytearray the caller appends to) and
    returns them, leaving what follows the body (a pipelined request); it
    raises :class:`~rapidws.exceptions.InvalidMessage` with ``status`` 400
    for a malformed chunk and 413 once the body exceeds ``max_body``.
    Chunk extensions and trailers are dropped.  Each byte is looked at a
    bounded number of times, so a body dripped byte by byte costs linear time.
    """

    MAX_LINE = 4096  #: a chunk-size line, with its extensions
    MAX_TRAILERS = 16384  #: all trailer lines together

    def __init__(self, length: int, max_body: int) -> None:
        if length > max_body:
            raise _invalid(f"body too large: {length} bytes (max_body is {max_body})", 413)
        self.max_body = max_body
        self.received = 0
        self._chunked = length == CHUNKED
        self._left = 0 if self._chunked else length  # bytes of the current piece of data
        self._state = _SIZE if self._chunked else _DATA
        self._searched = 0  # no LF in buf before this offset (size and trailer lines)
        self._trailers = 0
        if not self._chunked and length == 0:
            self._state = _DONE

    @property
    def done(self) -> bool:
        """Whether the whole body has been read."""
        return self._state == _DONE

    def read(self, buf: bytearray) -> bytes:
        """Take and return the body bytes at the front of ``buf`` (maybe none)."""
        out: list[bytes] = []
        while True:
            state = self._state
            if state == _DATA:
                take = min(self._left, len(buf))
                if take:
                    out.append(bytes(buf[:take]))
                    del buf[:take]
                    self._left -= take
                    self.received += take
                if self._left:
                    break
                self._state = _DATA_END if self._chunked else _DONE
            elif state == _DATA_END:
                if len(buf) < 2:
                    if buf and buf[0] != 0x0D:
                        raise _invalid("chunk data not followed by CRLF")
                    break
                if buf[:2] != b"\r\n":
                    raise _invalid("chunk data not followed by CRLF")
                del buf[:2]
                self._state = _SIZE
            elif state in (_SIZE, _TRAILER):
                line = self._line(buf)
                if line is None:
                    break
                if state == _SIZE:
                    self._chunk_size(line)
                elif not line:
                    self._state = _DONE
                else:
                    self._trailers += len(line) + 2
                    if self._trailers > self.MAX_TRAILERS:
                        raise _invalid("trailer section too large", 431)
                    if _header_line_re.fullmatch(line) is None:
                        raise _header_line_error(line)
            else:
                break
        return b"".join(out) if len(out) != 1 else out[0]

    def _line(self, buf: bytearray) -> bytes | None:
        """A whole CRLF-ended line from the front of ``buf`` (without the CRLF), or None."""
        end = buf.find(b"\n", self._searched)
        if end == -1:
            self._searched = len(buf)
            if len(buf) > self.MAX_LINE:
                raise _invalid("chunk-size or trailer line too long")
            return None
        self._searched = 0
        if end == 0 or buf[end - 1] != 0x0D:
            raise _invalid("line ending is a bare LF, not CRLF")
        if end > self.MAX_LINE:
            raise _invalid("chunk-size or trailer line too long")
        line = bytes(buf[: end - 1])
        del buf[: end + 1]
        if b"\r" in line:
            raise _invalid("bare CR in a chunked body")
        return line

    def _chunk_size(self, line: bytes) -> None:
        match = _chunk_size_re.fullmatch(line)
        if match is None:
            raise _invalid(f"invalid chunk size line: {_show(line)}")
        size = int(match.group(1), 16)
        if self.received + size > self.max_body:
            raise _invalid(f"body too large (max_body is {self.max_body})", 413)
        if size == 0:
            self._state = _TRAILER
        else:
            self._left = size
            self._state = _DATA


def parse_request(
    buf: bytes | bytearray,
    *,
    max_line: int = 8192,
    max_headers: int = 128,
    max_header_bytes: int = 65536,
) -> tuple[Request, int] | None:
    """Parse an HTTP/1.1 request from the start of ``buf``.

    Return ``None`` if incomplete, else ``(request, consumed)``.  Raise
    :class:`~rapidws.exceptions.InvalidMessage` on malformed input (``status``
    414 for a request line over ``max_line``, 400 for ``HTTP/1.0`` (a
    WebSocket handshake needs HTTP/1.1), 505 for another HTTP version)
    and :class:`~rapidws.exceptions.SecurityError` (431) when a header line,
    the header count or the whole head exceeds its limit.
    """
    parser = RequestParser(
        max_line=max_line, max_headers=max_headers, max_header_bytes=max_header_bytes
    )
    return parser.parse(buf)


def parse_response(
    buf: bytes | bytearray,
    *,
    max_line: int = 8192,
    max_headers: int = 128,
    max_header_bytes: int = 65536,
    max_body: int = 2**20,
) -> tuple[Response, int] | None:
    """Parse an HTTP/1.1 response (and its body, see the module notes).

    Return ``None`` if incomplete, else ``(response, consumed)``.  Raise
    :class:`~rapidws.exceptions.InvalidMessage` on malformed input and
    :class:`~rapidws.exceptions.SecurityError` when a limit is exceeded,
    including a ``Content-Length`` over ``max_body``.
    """
    parser = ResponseParser(
        max_line=max_line,
        max_headers=max_headers,
        max_header_bytes=max_header_bytes,
        max_body=max_body,
    )
    return parser.parse(buf)

"""The plain HTTP/1.1 path on a WebSocket server's port.

A request that is no WebSocket handshake (no ``Upgrade`` nor
``Sec-WebSocket-Key`` header) leaves the handshake path for this one; both
share the sans-I/O parser of :mod:`rapidws.protocol.http11`.  The path calls
the application once the head is in, with the body (``Content-Length`` or
chunked, up to ``max_body``: 413 beyond) whole if it came with the head, else
as a :class:`BodyStream` the handler reads as it arrives; it writes the
response with ``Content-Length`` computed (or chunked when streamed),
``Date`` and ``Server``, no body for ``HEAD``.  The connection then stays
open for the next request (RFC 9112 9.3, keep-alive) unless either side said
``Connection: close``; the next request may be a WebSocket handshake.

HTTP/1.0 requests are served too (see :func:`serialize_head`): persistent
only with ``Connection: keep-alive``, never a chunked response (a streamed
body without a length ends with the connection), no ``100 Continue``, no
``Host`` required; with ``Transfer-Encoding`` they are refused by the parser.

Requests are answered one at a time, in order: bytes pipelined behind the
one being answered wait in the connection's buffer, and reading pauses once
more than :data:`PIPELINE_BUFFER` bytes wait, so memory stays bounded however
many requests a client sends.  Timers: a request's head and body must come
within ``request_timeout`` (408 past it; time the connection does not read
because the handler is behind on the body does not count), and an idle
keep-alive connection is closed after ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json as json_module
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidHandshake, InvalidMessage
from ..io.transport import READS_PAUSED_FOR_BODY, READS_PAUSED_FOR_HOOK
from ..protocol.headers import Headers, HeadersLike
from ..protocol.http11 import HTTP_10, HTTP_11, BodyReader, Request, Response, body_length

if TYPE_CHECKING:
    from ..asyncio.server import ServerConnection

__all__ = [
    "BodyStream",
    "HTTPRequest",
    "StreamResponse",
    "bytes_response",
    "html_response",
    "json_response",
    "make_response",
    "stream_response",
    "text_response",
]

#: Bytes of pipelined requests held while one is answered; past it, reading pauses.
PIPELINE_BUFFER = 65536
#: Bytes of a streamed request body held while the handler does not read; past it, reading pauses.
BODY_BUFFER = 262144
#: The body size accepted by default (413 beyond).
DEFAULT_MAX_BODY = 2**20
#: How long an idle keep-alive connection stays open, by default.
KEEPALIVE_TIMEOUT = 5.0

_NO_BODY_STATUSES = frozenset({204, 304})


# -- responses ---------------------------------------------------------------------


@dataclass
class StreamResponse(Response):
    """A response whose body comes from an (async) iterable of bytes, sent as it comes.

    Without a ``Content-Length`` header it goes chunked (RFC 9112 7.1); with
    one, the iterable must give exactly that many bytes.
    """

    stream: AsyncIterable[bytes] | Iterable[bytes] | None = None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def make_response(
    status: int = 200,
    body: bytes = b"",
    content_type: str | None = None,
    headers: HeadersLike | None = None,
) -> Response:
    """A :class:`~rapidws.protocol.http11.Response` with this body; the path adds the length."""
    response_headers = Headers()
    if content_type is not None:
        response_headers["Content-Type"] = content_type
    if headers:
        response_headers.update(headers)
    return Response(status, _phrase(status), response_headers, body)


def text_response(text: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
    """A ``text/plain`` response (UTF-8)."""
    return make_response(status, text.encode(), "text/plain; charset=utf-8", headers)


def html_response(html: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
    """A ``text/html`` response (UTF-8)."""
    return make_response(status, html.encode(), "text/html; charset=utf-8", headers)


def json_response(data: Any, status: int = 200, headers: HeadersLike | None = None) -> Response:
    """An ``application/json`` response, as aiohttp's ``json_response``."""
    body = json_module.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return make_response(status, body, "application/json", headers)


def bytes_response(
    data: bytes,
    status: int = 200,
    headers: HeadersLike | None = None,
    content_type: str = "application/octet-stream",
) -> Response:
    """A response of raw bytes."""
    return make_response(status, bytes(data), content_type, headers)


def stream_response(
    stream: AsyncIterable[bytes] | Iterable[bytes],
    status: int = 200,
    headers: HeadersLike | None = None,
    content_type: str = "application/octet-stream",
) -> StreamResponse:
    """A response streamed from an (async) iterable of bytes (chunked unless sized)."""
    response_headers = Headers([("Content-Type", content_type)])
    if headers:
        response_headers.update(headers)
    return StreamResponse(status, _phrase(status), response_headers, b"", stream)


def error_response(status: int, detail: str = "", headers: HeadersLike | None = None) -> Response:
    """A plain-text error response: ``404 Not Found`` and the detail, if any."""
    text = f"{status} {_phrase(status)}".rstrip()
    if detail:
        text += f": {detail}"
    return text_response(text + "\n", status, headers)


def as_response(result: Any) -> Response:
    """What a handler returned, as a response (``str``, ``bytes``, ``dict``/``list`` too)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return text_response(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes_response(bytes(result))
    if isinstance(result, (dict, list)):
        return json_response(result)
    raise TypeError(f"a handler returned {type(result).__name__}, not a Response")


# -- requests ----------------------------------------------------------------------


class BodyStream:
    """A request body as it arrives: the HTTP path feeds it, the handler reads it.

    It holds at most about :data:`BODY_BUFFER` bytes the handler has not
    read: past that, the connection stops reading from the client until the
    handler catches up (backpressure).  :meth:`read` returns the next piece
    (``b""`` at the end) or raises the
    :class:`~rapidws.exceptions.InvalidMessage` that ended the body (413
    past ``max_body``, 400 for a broken chunk, 408 when it stopped coming).
    """

    __slots__ = ("_chunks", "_exc", "_path", "_waiter", "buffered", "done")

    def __init__(self, path: HTTPPath, first: bytes) -> None:
        self._path: HTTPPath | None = path
        self._chunks: deque[bytes] = deque()
        self.buffered = 0  #: bytes received, not read yet
        self.done = False  #: the whole body was received
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        if first:
            self.feed(first)

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._path = None  # no cycle with the connection
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self._exc = exc
        self._path = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def read(self) -> bytes:
        """The next piece of the body, ``b""`` once it is all read."""
        while not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self.done:
                return b""
            path = self._path
            if path is None:
                return b""
            waiter = self._waiter = path.conn.loop.create_future()
            path.wants_body()
            await waiter
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        path = self._path
        if path is not None and self.buffered <= BODY_BUFFER // 2:
            path.wants_body()
        return chunk


class HTTPRequest:
    """A plain HTTP request, as a handler gets it.

    ``method``, ``path`` (percent-decoded), ``raw_path``, ``query_string``,
    ``query`` (a dict, the last value of each name), ``headers``, ``version``
    (``"HTTP/1.1"`` or ``"HTTP/1.0"``), ``params`` (from the route's
    ``{name}`` parts) and ``connection``.  The body (within ``max_body``):
    ``async for chunk in request.stream()`` as it arrives, or whole with
    ``await body()``, ``await text()``, ``await json()``.  A body that came
    with the head is already there; a longer one is read while the handler
    runs, and what the handler leaves unread is dropped after its response.
    """

    __slots__ = (
        "_body",
        "_stream",
        "connection",
        "headers",
        "method",
        "params",
        "query_string",
        "raw_path",
        "version",
    )

    def __init__(
        self,
        request: Request,
        body: bytes | BodyStream = b"",
        params: dict[str, Any] | None = None,
        connection: Any = None,
    ) -> None:
        self.method = request.method
        raw_path, _, self.query_string = request.path.partition("?")
        self.raw_path = raw_path
        self.headers = request.headers
        self.version = request.version
        self.params: dict[str, Any] = params or {}
        self.connection = connection
        if isinstance(body, BodyStream):
            self._body: bytes | None = None
            self._stream: BodyStream | None = body
        else:
            self._body = body
            self._stream = None

    @property
    def path(self) -> str:
        return urllib.parse.unquote(self.raw_path)

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def remote_address(self) -> Any:
        return None if self.connection is None else self.connection.remote_address

    async def body(self) -> bytes:
        """The body, whole (what :meth:`stream` did not give yet, if it was used)."""
        if self._body is None:
            stream = self._stream
            assert stream is not None
            chunks = []
            while chunk := await stream.read():
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def text(self) -> str:
        return (await self.body()).decode()

    async def json(self) -> Any:
        return json_module.loads(await self.body())

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (as Starlette's ``request.stream()``)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        stream = self._stream
        assert stream is not None
        while chunk := await stream.read():
            yield chunk
        self._body = b""  # all given

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.raw_path}>"


# -- serialization (sans-I/O) ---------------------------------------------------------

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header's value for now (RFC 9110 6.6.1), computed once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def is_websocket_attempt(headers: Headers) -> bool:
    """Whether a request is meant as a WebSocket handshake (it has ``Upgrade`` or a key).

    Such a request takes the handshake path, whose errors say what is
    missing (RFC 6455 4.2.2); any other goes the plain HTTP path.
    """
    return bool(headers._values("upgrade") or headers._values("sec-websocket-key"))


def has_body(headers: Headers) -> bool:
    """Whether a request says it has a body (its length may still be 0)."""
    return bool(headers._values("content-length") or headers._values("transfer-encoding"))


def _has_connection_option(headers: Headers, option: str) -> bool:
    return any(
        token.strip(" \t").lower() == option
        for value in headers._values("connection")
        for token in value.split(",")
    )


def wants_close(headers: Headers) -> bool:
    """Whether ``Connection: close`` is among the headers (RFC 9112 9.6)."""
    return _has_connection_option(headers, "close")


def keeps_alive(request: Request) -> bool:
    """Whether the connection may persist after the response (RFC 9112 9.3).

    Not with the ``close`` option; else an HTTP/1.1 request persists, and an
    HTTP/1.0 one only with the ``keep-alive`` option (RFC 9112 9.3 and
    Appendix C.2.2: the response then says ``Connection: keep-alive``).
    """
    headers = request.headers
    if not headers._values("connection"):
        return request.version == HTTP_11
    if _has_connection_option(headers, "close"):
        return False
    return request.version == HTTP_11 or _has_connection_option(headers, "keep-alive")


def serialize_head(
    response: Response,
    *,
    head_only: bool,
    keep_alive: bool,
    server_header: str | None,
    http10: bool = False,
) -> tuple[bytes, bool]:
    """The status line and headers of ``response``, and whether the body goes chunked.

    ``Content-Length`` is computed for a whole body (a streamed one keeps the
    length it was given, else goes chunked), ``Date`` and ``Server`` are
    added unless set, ``Connection: close`` unless ``keep_alive``.

    ``http10``: the answer to an HTTP/1.0 request.  Its status line still
    says ``HTTP/1.1``: "A server SHOULD send a response version equal to the
    highest version to which the server is conformant that has a major
    version less than or equal to the one received in the request" (RFC 9110
    2.5).  No chunked coding: "A server MUST NOT send a response containing
    Transfer-Encoding unless the corresponding request indicates HTTP/1.1"
    (RFC 9112 6.1); a streamed body without a length is delimited by closing
    the connection (RFC 9112 6.3, last rule), so the caller passes
    ``keep_alive=False`` then (see :func:`close_delimited`).  A kept-alive
    HTTP/1.0 connection is said so: ``Connection: keep-alive``.
    """
    status = response.status_code
    headers = Headers()
    given_length: str | None = None
    for name, value in response.headers.raw_items():
        lower = name.lower()
        if lower == "content-length":
            given_length = value
        elif lower == "transfer-encoding" or (lower == "connection" and not keep_alive):
            continue
        else:
            headers._add(name, value)
    chunked = False
    if status >= 200 and status not in _NO_BODY_STATUSES:
        if isinstance(response, StreamResponse) and response.stream is not None:
            if given_length is not None:
                headers["Content-Length"] = given_length
            elif not http10:
                headers["Transfer-Encoding"] = "chunked"
                chunked = True
        else:
            headers["Content-Length"] = str(len(response.body))
    elif status == 304 and given_length is not None:
        headers["Content-Length"] = given_length  # the selected representation's length
    if "Date" not in headers:
        headers["Date"] = http_date()
    if server_header is not None and "Server" not in headers:
        headers["Server"] = server_header
    if not keep_alive:
        headers["Connection"] = "close"
    elif http10 and "Connection" not in headers:
        headers["Connection"] = "keep-alive"
    head = Response(status, response.reason_phrase or _phrase(status), headers).serialize()
    return head, chunked and not head_only


def close_delimited(response: Response) -> bool:
    """Whether ``response``'s body is streamed without a length (HTTP/1.0: ended by closing)."""
    status = response.status_code
    return (
        isinstance(response, StreamResponse)
        and response.stream is not None
        and status >= 200
        and status not in _NO_BODY_STATUSES
        and "Content-Length" not in response.headers
    )


# -- the asyncio path -------------------------------------------------------------------

Dispatch = Callable[[Request, "bytes | BodyStream"], "Awaitable[Response]"]


class HTTPPath:
    """A server connection's plain HTTP exchanges, one request at a time.

    The connection's handshake buffer is the input: while a request is read
    or answered (``busy``), the connection hands its bytes here; otherwise
    it parses the next head itself, and a plain one comes back to
    :meth:`start`.

    The handler runs as soon as the head is in.  A body that came whole with
    the head is handed over as bytes; a longer one as a :class:`BodyStream`
    fed as it arrives, reading pausing while the handler is over
    :data:`BODY_BUFFER` behind.  What the handler leaves unread is dropped
    after its response (within ``max_body`` and the timer) before the next
    request is read.  The body timer: the body must be whole within
    ``request_timeout`` of the time spent waiting on the client (not while
    reading pauses for the handler); 408 past it.
    """

    def __init__(
        self,
        conn: ServerConnection,
        dispatch: Dispatch,
        *,
        max_body: int,
        keepalive_timeout: float | None,
        request_timeout: float | None,
        server_header: str | None,
    ) -> None:
        self.conn = conn
        self.dispatch = dispatch
        self.max_body = max_body
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.server_header = server_header
        self.busy = False
        self._request: Request | None = None
        self._reader: BodyReader | None = None  # the body is still coming
        self._stream: BodyStream | None = None  # the handler's end of it, if streamed
        self._keep_alive = True
        self._http10 = False
        self._expect_continue = False  # a 100 (Continue) is due when the handler reads
        self._head_sent = False  # the response's head was written
        self._failed = False  # the request was answered with an error (and the connection closes)
        self._body_paused = False  # reading pauses until the handler reads
        self._timer_left: float | None = None  # the body timer's time left while paused
        self._discarded: asyncio.Future[None] | None = None  # the unread rest of a body is gone
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False  # the timer is the keep-alive one: no byte of a next request yet
        self._eof = False  # the client sent all it will (a half-close)
        self._task: asyncio.Task[None] | None = None

    def start(self, request: Request, rest: bytes) -> None:
        """A plain request's head came; ``rest`` is what followed it."""
        conn = self.conn
        if conn._open_timer is not None:  # this path keeps its own time
            conn._open_timer.cancel()
            conn._open_timer = None
        self._cancel_timer()
        self.busy = True
        self._request = request
        buf = conn._hs_buf = bytearray(rest)
        http10 = self._http10 = request.version == HTTP_10
        self._keep_alive = keeps_alive(request)
        self._head_sent = self._failed = False
        try:
            hosts = len(request.headers._values("host"))
            if hosts != 1 and (hosts or not http10):  # HTTP/1.0 may have none
                raise InvalidMessage("a request has one Host header (RFC 9112 3.2)")
            reader = BodyReader(body_length(request.headers), self.max_body)
            body = b"" if reader.done else reader.read(buf)
        except InvalidMessage as exc:
            self._fail(exc)
            return
        if reader.done:  # no body, or all of it came with the head
            self._task = conn.loop.create_task(self._respond(request, body))
        else:
            self._reader = reader
            stream = self._stream = BodyStream(self, body)
            expect = request.headers.get("Expect")
            # RFC 9110 10.1.1: the 100 (Continue) goes once the handler wants
            # the body; "A server that receives a 100-continue expectation in
            # an HTTP/1.0 request MUST ignore that expectation."
            self._expect_continue = (
                not body and not http10 and expect is not None and expect.lower() == "100-continue"
            )
            self._arm(self.request_timeout, self._timed_out)
            self._task = conn.loop.create_task(self._respond(request, stream))
            if stream.buffered > BODY_BUFFER:
                self._pause_body()
        if len(buf) > PIPELINE_BUFFER:
            conn._pause_reading(READS_PAUSED_FOR_HOOK)

    def data(self) -> None:
        """Bytes came while busy: the body, or pipelined requests that wait."""
        conn = self.conn
        buf = conn._hs_buf
        reader = self._reader
        if reader is not None:
            try:
                chunk = reader.read(buf)
            except InvalidMessage as exc:
                self._fail(exc)
                return
            stream = self._stream
            if stream is not None and chunk:
                stream.feed(chunk)  # else the handler is done with it: dropped
            if reader.done:
                self._reader = None
                self._cancel_timer()
                self._timer_left = None
                if stream is not None:
                    stream.finish()
                discarded = self._discarded
                if discarded is not None and not discarded.done():
                    discarded.set_result(None)
            elif stream is not None and stream.buffered > BODY_BUFFER:
                self._pause_body()
        if len(buf) > PIPELINE_BUFFER:
            conn._pause_reading(READS_PAUSED_FOR_HOOK)

    def _pause_body(self) -> None:
        """The handler is behind on the body: stop reading; the body timer stops too."""
        if self._body_paused:
            return
        self._body_paused = True
        self.conn._pause_reading(READS_PAUSED_FOR_BODY)
        timer = self._timer
        if timer is not None:
            self._timer_left = max(timer.when() - self.conn.loop.time(), 0.0)
            self._cancel_timer()

    def wants_body(self) -> None:
        """The handler waits for the body (or caught up): ask for it, read again."""
        if self._expect_continue:
            self._expect_continue = False
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._body_paused:
            self._body_paused = False
            self.conn._resume_reading(READS_PAUSED_FOR_BODY)
            left = self._timer_left
            if left is not None:
                self._timer_left = None
                self._arm(left, self._timed_out)

    async def _respond(self, request: Request, body: bytes | BodyStream) -> None:
        conn = self.conn
        try:
            response = await self.dispatch(request, body)
        except Exception:
            if self._failed:
                return  # the body failed: answered already, and the handler saw why
            conn.server.logger.error("HTTP handler failed", exc_info=True)
            response = error_response(500)
        if self._failed:
            return
        head_only = request.method == "HEAD"
        keep_alive = (
            self._keep_alive and not wants_close(response.headers) and not conn.server._closing
        )
        if self._expect_continue:
            # The client waits for a 100 (Continue) before it sends the body,
            # which the handler did not want: close rather than wait for a body
            # that may never come (RFC 9110 10.1.1, RFC 9112 9.6).
            keep_alive = False
        if self._http10 and keep_alive and not head_only and close_delimited(response):
            keep_alive = False  # the end of the body is the end of the connection
        try:
            await self._send(response, head_only, keep_alive)
        except Exception:
            if self._failed:
                return
            conn.server.logger.error("HTTP response failed", exc_info=True)
            keep_alive = False
        self._task = None
        if self._failed:
            return
        if not keep_alive or conn._lost.done() or (self._eof and not conn._hs_buf):
            self._close(InvalidMessage(f"HTTP {response.status_code}, connection closed"))
            return
        if self._reader is not None:
            # The handler left part of the body unread: drop the rest (within
            # max_body and the body timer) before the next request.
            stream = self._stream
            self._stream = None
            if stream is not None:  # for a task the handler left reading it
                stream.fail(
                    InvalidMessage("the response was sent; the rest of the body is dropped")
                )
            self._discarded = conn.loop.create_future()
            self.wants_body()  # read again, if reading paused for the handler
            await self._discarded
            self._discarded = None
            if self._failed:
                return
        self._stream = None
        # The client's requests wait while it does not read our answers.
        await conn._drain()
        self.busy = False
        self._request = None
        self._head_sent = False
        self._arm(self.keepalive_timeout, self._idle_timed_out)
        self._idle = True
        conn._resume_reading(READS_PAUSED_FOR_HOOK)
        if conn._hs_buf:
            try:
                conn._server_handshake_data()  # the next pipelined request
            except InvalidHandshake as exc:
                conn._handshake_failed(exc)
                return
            if self._eof and not self.busy and not conn._opened.done():
                self._fail(InvalidMessage("the connection closed in the middle of a request"))

    async def _send(self, response: Response, head_only: bool, keep_alive: bool) -> None:
        conn = self.conn
        head, chunked = serialize_head(
            response,
            head_only=head_only,
            keep_alive=keep_alive,
            server_header=self.server_header,
            http10=self._http10,
        )
        stream = response.stream if isinstance(response, StreamResponse) else None
        status = response.status_code
        bodiless = head_only or status < 200 or status in _NO_BODY_STATUSES
        self._head_sent = True
        if stream is None or bodiless:
            await _close_stream(stream)
            conn.write(head if bodiless else head + response.body)
            return
        conn.write(head)
        try:
            if isinstance(stream, AsyncIterable):
                async for chunk in stream:
                    await self._write_chunk(chunk, chunked)
            else:
                for chunk in stream:
                    await self._write_chunk(chunk, chunked)
        finally:
            await _close_stream(stream)
        if chunked and not conn._lost.done():
            conn.write(b"0\r\n\r\n")

    async def _write_chunk(self, chunk: bytes, chunked: bool) -> None:
        conn = self.conn
        if conn._lost.done() or self._failed:
            raise ConnectionError("the client went away")
        if not chunk:
            return
        if chunked:
            conn.write(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
        else:
            conn.write(bytes(chunk))
        await conn._drain()

    def _fail(self, exc: InvalidHandshake) -> None:
        """A broken or refused request: answer ``exc.status`` and close (RFC 9112 9.6).

        Once the response's head went out, only the closing tells.
        """
        self.busy = False
        self._failed = True
        self._reader = None
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream.fail(exc)
        discarded = self._discarded
        if discarded is not None and not discarded.done():
            discarded.set_result(None)
        if not self._head_sent:
            response = error_response(exc.status, str(exc))
            head, _ = serialize_head(
                response, head_only=False, keep_alive=False, server_header=self.server_header
            )
            self.conn.write(head + response.body)
        self._close(exc)

    def _close(self, exc: InvalidHandshake) -> None:
        """Done with this connection: let the last response arrive, then close."""
        self._cancel_timer()
        conn = self.conn
        self._body_paused = False
        conn._resume_reading(READS_PAUSED_FOR_BODY)
        conn._resume_reading(READS_PAUSED_FOR_HOOK)
        conn._handshake_failed(exc, respond=False)

    def _timed_out(self) -> None:
        self._timer = None
        exc = InvalidMessage("request not received in time")
        exc.status = 408
        self._fail(exc)

    def _idle_timed_out(self) -> None:
        self._timer = None
        if self.conn._hs_buf:  # a request began, and did not end in time
            self._timed_out()
            return
        transport = self.conn.transport
        self.conn.handshake_exc = InvalidMessage("keep-alive connection idle")
        if transport is not None:
            transport.close()

    def head_begun(self) -> None:
        """Bytes of the next request came: its head has ``request_timeout`` to come whole."""
        if self._idle:
            self._arm(self.request_timeout, self._timed_out)

    def _arm(self, delay: float | None, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        if delay is not None:
            self._timer = self.conn.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        self._idle = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def upgrade(self) -> None:
        """A WebSocket handshake follows on this connection: stop the idle timer."""
        self._cancel_timer()
        conn = self.conn
        if conn.open_timeout is not None and conn._open_timer is None:
            conn._open_timer = conn._call_later(conn.open_timeout, conn._open_timed_out)

    def eof(self) -> bool:
        """The client half-closed: answer what it sent, then close; True to keep writing."""
        self._eof = True
        if self.busy and self._reader is None:
            return True  # a response is being made; then those that wait, then close
        if self.busy or self.conn._hs_buf:
            exc = InvalidMessage("the connection closed in the middle of a request")
            self._fail(exc)
            return True
        self._close(InvalidMessage("the client closed the connection"))
        return False

    def lost(self) -> None:
        """The connection is gone."""
        self._cancel_timer()
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream.fail(ConnectionError("the client went away"))
        if self._task is not None:
            self._task.cancel()


async def _close_stream(stream: Any) -> None:
    """Close an async generator (or its like) that was not run to the end."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result
    elif hasattr(stream, "close") and callable(stream.close):
        stream.close()

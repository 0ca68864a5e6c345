"""``rapidws.App``: plain HTTP handlers, WebSocket handlers and static files on one port.

It reads like Starlette's and aiohttp's applications::

    app = rapidws.App()

    @app.get("/rooms/{name}")
    async def room(request):
        return rapidws.json_response({"room": request.params["name"]})

    @app.websocket("/ws/{name}")
    async def chat(ws, name):
        async for message in ws:
            await ws.send(f"{name}: {message}")

    app.static("/static", "public")
    async with rapidws.serve(app, "127.0.0.1", 8000):
        ...

Paths may hold ``{name}`` (one segment), ``{name:int}`` or ``{name:path}``
(the rest, slashes included).  A plain request gets the first route of its
path and method (``HEAD`` falls back to ``GET``); a path with routes of other
methods only answers 405 with ``Allow``, a WebSocket-only path 426, any other
404.  A WebSocket handshake gets the first WebSocket route of its path, else
404; its ``Origin`` is checked first (cross-site WebSocket hijacking).
"""

from __future__ import annotations

import inspect
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidOrigin
from ..protocol.http11 import Request, Response
from .server import DEFAULT_MAX_BODY, BodyStream, HTTPRequest, as_response, error_response
from .static import StaticFiles

if TYPE_CHECKING:
    from ..asyncio.server import ServerConnection, serve

__all__ = ["App", "Route"]

HTTPHandler = Callable[[HTTPRequest], Any]
ProcessHTTPResponse = Callable[
    [HTTPRequest, Response], "Response | Awaitable[Response | None] | None"
]
#: ``origins=ANY_ORIGIN``: no ``Origin`` check (the echo tools).
ANY_ORIGIN = "*"

_param_re = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|path))?\}")
_CONVERTERS = {"str": "[^/]+", "int": "[0-9]+", "path": ".*"}


def compile_path(path: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """The regex matching a route's raw (percent-encoded) path, and its parameters' types."""
    if not path.startswith("/"):
        raise ValueError(f"a route's path starts with '/': {path!r}")
    pattern = "^"
    kinds: dict[str, str] = {}
    end = 0
    for match in _param_re.finditer(path):
        name, kind = match.group(1), match.group(2) or "str"
        if name in kinds:
            raise ValueError(f"parameter {name!r} twice in {path!r}")
        kinds[name] = kind
        pattern += re.escape(path[end : match.start()]) + f"(?P<{name}>{_CONVERTERS[kind]})"
        end = match.end()
    pattern += re.escape(path[end:]) + "$"
    return re.compile(pattern), kinds


@dataclass
class Route:
    """One route: a plain HTTP handler for some methods, or a WebSocket endpoint."""

    path: str
    handler: Any
    methods: frozenset[str] = frozenset()  # empty: a WebSocket route
    listener: Any = None  # the callback API: a Listener, or a factory of them
    frames: bool = False
    stream: bool | str = False  # byte streams: handler(reader, writer, **params)
    regex: re.Pattern[str] = field(init=False)
    kinds: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.regex, self.kinds = compile_path(self.path)

    @property
    def websocket(self) -> bool:
        return not self.methods

    def match(self, raw_path: str) -> dict[str, Any] | None:
        """The path's parameters, decoded, if it matches."""
        found = self.regex.match(raw_path)
        if found is None:
            return None
        params: dict[str, Any] = {}
        for name, value in found.groupdict().items():
            value = urllib.parse.unquote(value)
            params[name] = int(value) if self.kinds[name] == "int" else value
        return params


class App:
    """Routes plain HTTP requests and WebSocket handshakes to handlers by path.

    ``origins``: the ``Origin`` values a WebSocket handshake may carry
    (strings, compiled patterns, ``None`` for no header); by default (``None``)
    the same origin only, that is an ``Origin`` whose host is the ``Host``
    header, or none (clients that are not browsers); ``"*"`` checks nothing.
    Others get 403 (RFC 6455 10.2), ``Origin: null`` included.
    ``max_body``: the largest request body read (413 beyond).
    ``process_response(request, response)``: called on each plain HTTP
    response, to change it or return another (may be a coroutine function).
    """

    def __init__(
        self,
        *,
        origins: Sequence[str | re.Pattern[str] | None] | str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        process_response: ProcessHTTPResponse | None = None,
    ) -> None:
        if isinstance(origins, str) and origins != ANY_ORIGIN:
            raise ValueError('origins is a list of origins, or "*" for any')
        self.origins = origins if isinstance(origins, str) or origins is None else list(origins)
        self.max_body = max_body
        self.process_response = process_response
        self.routes: list[Route] = []

    # -- declaring routes --------------------------------------------------------

    def add_route(self, path: str, handler: HTTPHandler, methods: Sequence[str] = ("GET",)) -> None:
        """Call ``handler(request)`` for ``methods`` on ``path``; it returns the response."""
        if not methods:
            raise ValueError("no method given")
        self.routes.append(Route(path, handler, frozenset(m.upper() for m in methods)))

    def route(
        self, path: str, methods: Sequence[str] = ("GET",)
    ) -> Callable[[HTTPHandler], HTTPHandler]:
        """Decorator form of :meth:`add_route`."""

        def decorator(handler: HTTPHandler) -> HTTPHandler:
            self.add_route(path, handler, methods)
            return handler

        return decorator

    def get(self, path: str) -> Callable[[HTTPHandler], HTTPHandler]:
        return self.route(path, ("GET",))

    def post(self, path: str) -> Callable[[HTTPHandler], HTTPHandler]:
        return self.route(path, ("POST",))

    def put(self, path: str) -> Callable[[HTTPHandler], HTTPHandler]:
        return self.route(path, ("PUT",))

    def patch(self, path: str) -> Callable[[HTTPHandler], HTTPHandler]:
        return self.route(path, ("PATCH",))

    def delete(self, path: str) -> Callable[[HTTPHandler], HTTPHandler]:
        return self.route(path, ("DELETE",))

    def websocket(
        self,
        path: str,
        handler: Callable[..., Awaitable[Any]] | None = None,
        *,
        listener: Any = None,
        frames: bool = False,
        stream: bool | str = False,
    ) -> Any:
        """A WebSocket endpoint at ``path``.

        ``handler(ws, **params)``: a coroutine function, as :func:`~rapidws.serve`
        runs (``frames=True``: ``ws`` receives frames, see ``recv_frame``;
        ``stream=True`` or ``"text"``: ``handler(reader, writer, **params)``
        with byte streams, see :mod:`rapidws.asyncio.streams`).
        ``listener``: the callback API instead, a
        :class:`~rapidws.Listener` (shared by the connections) or a factory
        called with the request, as :func:`~rapidws.serve_listener` takes.
        Without either, a decorator for the handler.
        """
        if handler is not None and listener is not None:
            raise ValueError("give a handler or a listener, not both")
        if stream:
            from ..asyncio.streams import is_text_stream

            is_text_stream(stream)  # ValueError now for a bad value
            if listener is not None:
                raise ValueError("stream= is for handlers, not listeners")
        if handler is None and listener is None:

            def decorator(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
                self.routes.append(Route(path, func, frames=frames, stream=stream))
                return func

            return decorator
        self.routes.append(Route(path, handler, listener=listener, frames=frames, stream=stream))
        return handler

    def static(self, prefix: str, folder: str, **options: Any) -> StaticFiles:
        """Serve the files under ``folder`` at ``prefix`` (see :class:`StaticFiles`)."""
        files = StaticFiles(folder, prefix=prefix.rstrip("/"), **options)
        self.add_route(prefix.rstrip("/") + "/{path:path}", files, ("GET",))
        return files

    def serve(self, host: str | None = None, port: int | None = None, **kwargs: Any) -> serve:
        """:func:`rapidws.serve` of this app."""
        from ..asyncio.server import serve

        return serve(self, host, port, **kwargs)

    # -- answering ---------------------------------------------------------------

    async def dispatch(
        self, conn: ServerConnection, request: Request, body: bytes | BodyStream
    ) -> Response:
        """Answer a plain HTTP request (``body``: whole, or still coming)."""
        raw_path = request.path.partition("?")[0]
        method = request.method
        allowed: set[str] = set()
        websocket = False
        http_request: HTTPRequest | None = None
        response: Response | None = None
        for route in self.routes:
            try:
                params = route.match(raw_path)
            except ValueError:  # bad percent-encoding or an int out of reach
                continue
            if params is None:
                continue
            if route.websocket:
                websocket = True
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                http_request = HTTPRequest(request, body, params, conn)
                result = route.handler(http_request)
                if inspect.isawaitable(result):
                    result = await result
                response = as_response(result)
                break
            allowed |= route.methods
        if response is None:
            if allowed:
                if "GET" in allowed:
                    allowed.add("HEAD")
                response = error_response(405, "", {"Allow": ", ".join(sorted(allowed))})
            elif websocket:
                response = error_response(426, "", {"Upgrade": "websocket"})
            else:
                response = error_response(404)
        if self.process_response is not None:
            if http_request is None:
                http_request = HTTPRequest(request, body, {}, conn)
            changed = self.process_response(http_request, response)
            if inspect.isawaitable(changed):
                changed = await changed
            if changed is not None:
                response = changed
        return response

    def websocket_route(self, conn: ServerConnection, request: Request, rest: bytes) -> bool:
        """Pick the WebSocket route of a handshake; True if another connection took it."""
        raw_path = request.path.partition("?")[0]
        for route in self.routes:
            if not route.websocket:
                continue
            try:
                params = route.match(raw_path)
            except ValueError:
                continue
            if params is None:
                continue
            origin = self._refused_origin(request)
            if origin is not None:
                conn.handshake_exc = InvalidOrigin(origin)
                conn._app_answer = conn.respond(403, f"Origin not allowed: {origin}")
                return False
            handler = partial(route.handler, **params) if params else route.handler
            if route.listener is not None:
                _hand_to_listener(conn, route, request, rest)
                return True
            if route.stream:
                _hand_to_stream(conn, route, handler, request, rest)
                return True
            conn._handler = handler
            conn.frame_mode = route.frames
            return False
        conn._app_answer = conn.respond(404, "Not Found")
        return False

    def _refused_origin(self, request: Request) -> str | None:
        """The ``Origin`` of a handshake, if it is refused (RFC 6455 4.2.2, 10.2)."""
        origins = self.origins
        if origins == ANY_ORIGIN:
            return None
        values = request.headers._values("origin")
        if len(values) > 1:
            return ", ".join(values)
        origin = values[0] if values else None
        if origins is None:
            if origin is None or _same_origin(origin, request.headers.get("Host")):
                return None
            return origin
        for allowed in origins:
            if allowed is None:
                if origin is None:
                    return None
            elif origin is not None:
                if isinstance(allowed, str) and isinstance(origins, list):
                    if origin == allowed:
                        return None
                elif isinstance(allowed, re.Pattern) and allowed.fullmatch(origin):
                    return None
        return "(none)" if origin is None else origin


_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin``'s host and port are those of the ``Host`` header."""
    if host is None:
        return False
    try:
        parts = urllib.parse.urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False
    default = _DEFAULT_PORTS[parts.scheme]
    netloc = f"{parts.hostname}:{port if port is not None else default}"
    name, colon, host_port = host.lower().rpartition(":")
    if not colon or not host_port.isdigit() or "]" in host_port:
        name, host_port = host.lower(), default
    return netloc == f"{name.strip('[]')}:{host_port}"


def _hand_to_listener(conn: ServerConnection, route: Route, request: Request, rest: bytes) -> None:
    """Give the TCP connection to a callback-API connection, which runs the handshake."""
    from ..listener import Listener, _ServerListenerConnection

    listener = route.listener
    factory = (lambda _request: listener) if isinstance(listener, Listener) else listener
    options = dict(conn.server.connection_options)
    options.pop("max_queue", None)
    options["frames"] = route.frames
    new = _ServerListenerConnection(conn.server, factory, handshake=conn.handshake, **options)
    _hand_over(conn, new, request, rest)


def _hand_to_stream(
    conn: ServerConnection, route: Route, handler: Any, request: Request, rest: bytes
) -> None:
    """Give the TCP connection to a stream-mode connection, which runs the handshake."""
    from ..asyncio.streams import stream_connection_class, stream_handler
    from ..protocol.handshake import ServerHandshake

    assert isinstance(conn.handshake, ServerHandshake)
    options = dict(conn.server.connection_options)
    options["frames"] = True
    cls = stream_connection_class(type(conn))
    new = cls(
        conn.server,
        stream_handler(handler, route.stream),
        conn.handshake,
        conn._process_request_hook,
        conn._process_response_hook,
        **options,
    )
    new._handed_over = True  # routed already: the App does not route it again
    _hand_over(conn, new, request, rest)


def _hand_over(conn: ServerConnection, new: Any, request: Request, rest: bytes) -> None:
    """Move the TCP connection from ``conn`` to ``new`` and replay the request to it."""
    transport = conn.transport
    assert transport is not None
    fd = conn._fd
    conn._fd = -1
    conn.transport = None
    transport.set_protocol(new)
    new.connection_made(transport)
    if fd >= 0:
        new._fd = fd
    conn.connection_lost(None)  # for this one, it is over
    new.data_received(request.serialize() + rest)

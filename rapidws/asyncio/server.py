"""The asyncio server: :func:`serve` runs a handler per WebSocket connection."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from ..exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidMessage
from ..http.router import App
from ..http.server import (
    DEFAULT_MAX_BODY,
    KEEPALIVE_TIMEOUT,
    BodyStream,
    HTTPPath,
    error_response,
)
from ..io import network, tls_server
from ..io.deadlines import Deadlines
from ..io.transport import KEEPALIVE_TIMEOUT_REASON, PLAIN_HTTP, PLAIN_HTTP_ALL, BaseConnection
from ..io.transport import logger as default_logger
from ..protocol.engine import SERVER
from ..protocol.extensions.base import ServerExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_server_permessage_deflate
from ..protocol.handshake import SelectSubprotocol, ServerHandshake
from ..protocol.http11 import Request, Response, body_length
from ..protocol.pipeline import Stage
from .auth import basic_auth
from .connection import Connection
from .hooks import ProcessRequest, ProcessResponse, answer
from .options import CREATE_SERVER, CREATE_UNIX_SERVER, check_keywords, option_names
from .streams import StreamHandler, stream_connection_class, stream_handler

__all__ = ["Server", "ServerConnection", "basic_auth", "serve", "unix_serve"]

T = TypeVar("T")

#: The ``Retry-After`` (seconds) of the 503 answering a connection past ``max_connections``.
RETRY_AFTER = "5"

Handler = Callable[["ServerConnection"], Awaitable[Any]]
#: One handler, or one per subprotocol (``None``: for clients that offer none of them).
Handlers = Handler | Mapping[str | None, Handler]


class ServerConnection(Connection):
    """The server side of a connection, handed to the handler."""

    side = SERVER

    def __init__(
        self,
        server: Server,
        handler: Handlers,
        handshake: ServerHandshake,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.server = server
        if server.app is not None:
            self.plain_http = PLAIN_HTTP_ALL  # the App routes handshakes too
        self._handler: Any = handler  # serve's: one, or one per subprotocol
        self.handshake = handshake
        self._process_request_hook = process_request
        self._process_response_hook = process_response
        self._handler_task: asyncio.Task[None] | None = None
        #: Set by :func:`~rapidws.asyncio.auth.basic_auth` once the client authenticated.
        self.username: str | None = None

    # -- the plain HTTP path (rapidws.http.server) -----------------------------------

    plain_http = PLAIN_HTTP  # with an App, or once a plain request came: PLAIN_HTTP_ALL
    # Class-level defaults, set on the instance only when used: a WebSocket
    # connection's __dict__ stays as small as before.
    _http: HTTPPath | None = None  # plain HTTP exchanges, once one came
    _app_answer: Response | None = None  # the App's answer to an upgrade request
    _handed_over = False  # an App routed the request already, to this connection

    def _http_handshake_data(self) -> None:
        """``_server_handshake_data`` once a plain request came (an instance attribute)."""
        http = self._http
        assert http is not None
        if http.busy:
            http.data()  # a body, or pipelined requests waiting their turn
            return
        http.head_begun()
        BaseConnection._server_handshake_data(self)

    def _plain_request(self, request: Request, rest: bytes) -> bool:
        """Send a request that is no WebSocket handshake down the plain HTTP path."""
        headers = request.headers
        names = headers._dict  # lower-case names: is_websocket_attempt, inlined
        if "upgrade" in names or "sec-websocket-key" in names:
            # The handshake path, as fast as before for serve(handler) (no App, no HTTP yet).
            if (
                self._http is None
                and self.server.app is None
                and "content-length" not in names
                and "transfer-encoding" not in names
            ):
                return False
            if body_length(headers):
                raise InvalidMessage("request body not supported on a WebSocket handshake")
            app = self.server.app
            if (
                app is not None
                and not self._handed_over
                and app.websocket_route(self, request, rest)
            ):
                return True  # handed to a connection of another model
            if self._http is not None:
                self._http.upgrade()
            return False
        http = self._http
        if http is None:
            app = self.server.app
            # From now on, received bytes go through the HTTP path first (see
            # _http_handshake_data); the attribute goes with the connection (_lost_hook).
            self._server_handshake_data = self._http_handshake_data  # type: ignore[method-assign]
            self.plain_http = PLAIN_HTTP_ALL  # a handshake now ends the idle keep-alive timer
            http = self._http = HTTPPath(
                self,
                self._dispatch_plain if app is None else partial(app.dispatch, self),
                max_body=self.server.max_body if app is None else app.max_body,
                keepalive_timeout=self.server.keepalive_timeout,
                request_timeout=self.open_timeout,
                server_header=getattr(self.handshake, "server_header", None),
            )
        http.start(request, rest)
        return True

    async def _dispatch_plain(self, request: Request, body: bytes | BodyStream) -> Response:
        """Without an App: the hooks answer, else 426 (GET, HEAD) or 405."""
        if self._process_request_hook is None and self._process_response_hook is None:
            return _not_websocket(request)
        result = answer(
            self,
            request,
            _not_websocket,
            self._process_request_hook,
            self._process_response_hook,
            self.server.logger,
        )
        if result is not None and not isinstance(result, Response):
            result = await result
        return _not_websocket(request) if result is None else result

    def error_response(self, exc: InvalidHandshake) -> Response | None:
        if self._http is not None or self.request is None:
            # Not (yet) a WebSocket handshake: plain words (RFC 9110 15.5).
            response = error_response(exc.status, str(exc))
            response.headers["Connection"] = "close"
            server_header = getattr(self.handshake, "server_header", None)
            if server_header is not None:
                response.headers["Server"] = server_header
            response.headers["Content-Length"] = str(len(response.body))
            return response
        return super().error_response(exc)

    def eof_received(self) -> bool | None:
        http = self._http
        if http is not None and self.engine is None and not self._opened.done():
            return http.eof()
        return super().eof_received()

    def _open_timed_out(self) -> None:
        if self._hs_buf and not self._opened.done() and self._hs_hook is None:
            # Part of a request came, not all of it (slowloris): 408 (RFC 9110 15.5.9).
            exc = InvalidMessage(f"request not received within {self.open_timeout:g} s")
            exc.status = 408
            self._handshake_failed(exc)
            return
        super()._open_timed_out()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._register(self)

    def process_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        server = self.server
        if server.max_connections is not None and len(server.connections) > server.max_connections:
            # Counted with the connections still in their handshake: this one among them.
            assert isinstance(self.handshake, ServerHandshake)
            self.handshake_exc = InvalidMessage("too many connections")
            return self.handshake.reject(
                503, "Too many connections; try again later.", [("Retry-After", RETRY_AFTER)]
            )
        app_answer = self._app_answer
        if app_answer is not None:  # the App refused the handshake (404, 403)
            self._app_answer = None
            if self.handshake_exc is None:
                self.handshake_exc = InvalidMessage(
                    f"request answered with HTTP {app_answer.status_code}"
                )
            return app_answer
        if self._process_request_hook is None and self._process_response_hook is None:
            return self._accept(request)
        return answer(
            self,
            request,
            self._accept,
            self._process_request_hook,
            self._process_response_hook,
            self.server.logger,
        )

    def _accept(self, request: Request) -> Response:
        response = self._accept_request(request)
        if response.status_code == 101 and self.server._closing:
            assert isinstance(self.handshake, ServerHandshake)
            self.handshake_exc = InvalidMessage("server shutting down")
            return self.handshake.reject(503, "Server is shutting down.")
        return response

    def respond(self, status: int, text: str) -> Response:
        """A plain-text HTTP response for ``process_request`` to return, as in websockets.

        Answering a plain HTTP request, it keeps the connection open.
        """
        assert isinstance(self.handshake, ServerHandshake)
        http = self._http
        if http is not None and http.busy:
            return self.handshake.reject(status, text, {"Connection": "keep-alive"})
        return self.handshake.reject(status, text)

    def _opened_hook(self) -> None:
        handler = self._handler
        if not callable(handler):
            # Handlers per subprotocol: the handshake chose one of theirs (or None).
            handler = for_subprotocol(handler, self.subprotocol)
        self._handler_task = self.loop.create_task(self._run_handler(handler))

    async def _run_handler(self, handler: Handler) -> None:
        try:
            await handler(self)
        except ConnectionClosed as exc:
            # The peer closed, or broke the protocol: not the handler's fault,
            # one line, no traceback.
            # A keepalive timeout was logged when it happened: not twice.
            quiet = isinstance(exc, ConnectionClosedOK) or (
                exc.rcvd is None and exc.sent_reason == KEEPALIVE_TIMEOUT_REASON
            )
            self.server.logger.log(
                logging.DEBUG if quiet else logging.INFO, "connection closed: %s", exc
            )
            await self.wait_closed()
            return
        except Exception:
            self.server.logger.error("connection handler failed", exc_info=True)
            # Failed, not closed: no more messages, as for a Listener whose callback raises.
            self.fail(1011, "internal error")
            await self.wait_closed()
            return
        await self.close()

    def _lost_hook(self) -> None:
        super()._lost_hook()
        if self._http is not None:
            self._http.lost()
            self._http = None  # it refers to this connection: no cycle left for the GC
            self.__dict__.pop("_server_handshake_data", None)  # a bound method: a cycle
        self.server._unregister(self)


def _not_websocket(request: Request) -> Response:
    """A plain request to a WebSocket-only server: 426 for GET and HEAD, else 405."""
    if request.method in ("GET", "HEAD"):
        return error_response(
            426,
            "this server speaks WebSocket; send a WebSocket handshake",
            {"Upgrade": "websocket"},
        )
    return error_response(405, f"{request.method} is not allowed here", {"Allow": "GET"})


class Server:
    """A running WebSocket server, as returned by :func:`serve`."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.logger = logger or default_logger
        #: The application (rapidws.App) routing requests, if any.
        self.app: Any = None
        #: The plain HTTP path's limits (rapidws.http.server).
        self.max_body = DEFAULT_MAX_BODY
        self.keepalive_timeout: float | None = KEEPALIVE_TIMEOUT
        #: The options each connection is made with (for connections of other models).
        self.connection_options: dict[str, Any] = {}
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[BaseConnection] = set()
        #: Past this many connections, new ones get HTTP 503 (see :func:`serve`).
        self.max_connections: int | None = None
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        #: The timers of every connection (handshake, closing, keepalive).
        self.deadlines = Deadlines()

    def _register(self, connection: BaseConnection) -> None:
        self.connections.add(connection)

    def _unregister(self, connection: BaseConnection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    @property
    def sockets(self) -> Iterable[Any]:
        """The listening sockets."""
        # asyncio.Server and SocketServer both have them; AbstractServer does not say so.
        return getattr(self.server, "sockets", ())

    def is_serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        except asyncio.CancelledError:
            if not self._closing:
                raise

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        assert self.server is not None
        return self.server.get_loop()

    async def start_serving(self) -> None:
        """Start accepting connections (``serve`` has, unless ``start_serving=False``)."""
        assert self.server is not None
        await self.server.start_serving()

    def close(
        self, close_connections: bool = True, code: int = 1001, reason: str = "server shutting down"
    ) -> None:
        """Stop listening and close every connection with ``code`` (1001: going away).

        Use :meth:`wait_closed` to wait until they are all closed.
        """
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._close_task = loop.create_task(self._close(close_connections, code, reason))

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        assert self._closed is not None
        try:
            if self.server is not None:
                self.server.close()
            if close_connections:
                # A plain HTTP response in flight is finished (with Connection:
                # close, as the server is closing) and its connection closes after it.
                await asyncio.gather(
                    *(
                        conn._close(code, reason)
                        for conn in list(self.connections)
                        if not _answering_http(conn)
                    ),
                    return_exceptions=True,
                )
            tasks = [
                task
                for conn in list(self.connections)
                if (task := getattr(conn, "_handler_task", None)) is not None
            ]
            if self.connections:
                self._idle = asyncio.get_running_loop().create_future()
                await self._idle
            if tasks:
                await asyncio.wait(tasks)
            if self.server is not None:
                await self.server.wait_closed()
        finally:
            self.deadlines.close()
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the server and all its connections are closed."""
        if self._closed is None:
            if self.server is not None:
                await self.server.wait_closed()
            return
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Start a WebSocket server on ``host``:``port`` calling ``handler(connection)``.

    Use ``async with serve(...) as server:`` or ``server = await serve(...)``.
    ``handler`` may be a mapping of subprotocols to handlers,
    ``{"chat": chat, "echo": echo}``: the server speaks those subprotocols
    (its preference in the mapping's order), and a client offering none of
    them gets HTTP 400 naming them, unless a handler is registered under
    ``None`` for such clients.
    Options match ``websockets.asyncio.server.serve``: ``subprotocols``,
    ``select_subprotocol(connection, subprotocols)``, ``origins`` (the
    ``Origin`` values allowed: strings, compiled patterns, ``None`` for
    clients that send none; others get 403),
    ``process_request(connection, request)`` (return a
    :class:`~rapidws.protocol.http11.Response` to answer with it instead of
    upgrading), ``process_response(connection, request, response)`` (both
    hooks may be coroutine functions; one that raises answers HTTP 500),
    ``server_header``, ``max_connections`` (past it, a new connection gets
    HTTP 503 with ``Retry-After``), ``compression``, ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``write_limit``, ``create_connection`` (a
    :class:`ServerConnection` subclass); plus ``max_body`` (of a plain
    HTTP request, 413 beyond; default 1 MiB) and ``keepalive_timeout`` (an
    idle keep-alive HTTP connection closes after it, 5 s), see
    :mod:`rapidws.http.server`; ``handler`` may be a :class:`rapidws.App`;
    ``max_fragment_size``, ``mode``
    (``"text"`` or ``"binary"``: a connection of that type only), ``ssl``
    (its ``sslobject_class`` becomes one that sends the TLS alert when a
    handshake fails: see :mod:`rapidws.io.tls_server`) and ``fastnet``
    (aiofastnet's transports: see :mod:`rapidws.io.network`).
    ``stream=True`` (or ``"text"``) calls ``handler(reader, writer)`` with
    byte streams instead (see :mod:`rapidws.asyncio.streams`).
    Other keyword arguments go to :meth:`asyncio.loop.create_server`; one
    that neither takes raises :class:`TypeError` at the call, naming the
    closest valid option.
    """

    def __init__(
        self,
        handler: Handlers | StreamHandler | Mapping[str | None, StreamHandler] | App,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        origins: Sequence[str | re.Pattern[str] | None] | None = None,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        server_header: str | None = "rapidws",
        compression: str | None = "deflate",
        extensions: Sequence[ServerExtensionFactory] | None = None,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = 2**20,
        max_queue: int | tuple[int, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = 2**15,
        max_fragment_size: int | None = None,
        max_connections: int | None = None,
        mode: str | None = None,
        frames: bool = False,
        stages: Sequence[Stage | Callable[[], Stage]] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        create_connection: type[ServerConnection] | None = None,
        fastnet: bool | None = None,
        stream: bool | str = False,
        max_body: int | None = None,
        keepalive_timeout: float | None = KEEPALIVE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        app: App | None = None
        if isinstance(handler, App):
            app, handler = handler, _routed
        if stream and app is not None:
            raise ValueError("with an App, stream= goes to app.websocket(path, stream=...)")
        if stream:
            # Byte streams: frames queue as they come (see streams.py).
            if callable(handler):
                handler = stream_handler(handler, stream)  # type: ignore[arg-type]
            elif isinstance(handler, Mapping):
                handler = {k: stream_handler(v, stream) for k, v in handler.items()}  # type: ignore[arg-type]
            create_connection = stream_connection_class(create_connection or ServerConnection)
            frames = True
        if compression == "deflate":
            extensions = enable_server_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        require_subprotocol = False
        if not callable(handler):
            handler, subprotocols, require_subprotocol = _per_subprotocol(
                handler, subprotocols, select_subprotocol
            )
        self.handler: Handlers = handler  # type: ignore[assignment]
        self.host = host
        self.port = port
        self.ssl = ssl
        self.handshake = ServerHandshake(
            subprotocols=subprotocols,
            extensions=extensions,
            server_header=server_header,
            select_subprotocol=select_subprotocol,
            require_subprotocol=require_subprotocol,
            origins=origins,
        )
        self.process_request = process_request
        self.process_response = process_response
        self.options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_size": max_size,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "max_fragment_size": max_fragment_size,
            "mode": mode,
            "frames": frames,
            "stages": stages,
        }
        self.unix: bool = kwargs.pop("unix", False)
        self.path: str | None = kwargs.pop("path", None)
        # The rest goes to the loop: a misspelt option fails here, named, not at await.
        check_keywords(
            "rapidws.unix_serve" if self.unix else f"rapidws.{type(self).__name__}",
            kwargs,
            own=option_names(serve.__init__),
            passed_to=CREATE_UNIX_SERVER if self.unix else CREATE_SERVER,
        )
        self.create_server_kwargs = kwargs
        self.fastnet = fastnet
        self.connection_class = create_connection or ServerConnection
        self.server = Server(logger)
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.server.max_connections = max_connections
        self.options["deadlines"] = self.server.deadlines
        self.server.app = app
        self.server.connection_options = self.options
        if max_body is not None:
            self.server.max_body = max_body
            if app is not None:
                app.max_body = max_body
        self.server.keepalive_timeout = keepalive_timeout

    def _factory(self) -> ServerConnection:
        return self.connection_class(
            self.server,
            self.handler,
            self.handshake,
            self.process_request,
            self.process_response,
            **self.options,
        )

    async def _start(self) -> Server:
        if self.ssl is not None:
            tls_server.send_alerts(self.ssl)  # a refused client learns why
        sock = self.create_server_kwargs.get("sock")
        if sock is not None:
            _check_listening(sock)
        if self.unix:
            loop = asyncio.get_running_loop()
            self.server.server = await loop.create_unix_server(
                self._factory, self.path, ssl=self.ssl, **self.create_server_kwargs
            )
            return self.server
        self.server.server = await network.create_server(
            self._factory,
            self.fastnet,
            host=self.host,
            port=self.port,
            ssl=self.ssl,
            **self.create_server_kwargs,
        )
        return self.server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.server.__aexit__(exc_type, exc, tb)


async def _routed(connection: ServerConnection) -> None:
    """The handler of an App's connections until a route sets theirs (never runs)."""
    raise RuntimeError("no WebSocket route chosen")  # pragma: no cover


def _check_listening(sock: socket.socket) -> None:
    """``serve(sock=...)`` takes a listening socket: say so, rather than ``EINVAL``."""
    try:
        peer = sock.getpeername()
    except OSError:
        return  # not connected: listening, or listen() will make it so
    raise ValueError(
        f"serve(sock=...) needs a listening socket; this one is connected to {peer!r}: "
        "to run WebSocket on a connected stream, use rapidws.attach()"
    )


def _answering_http(conn: BaseConnection) -> bool:
    """Whether ``conn`` is answering a plain HTTP request now."""
    http = getattr(conn, "_http", None)
    return conn.engine is None and http is not None and bool(http.busy)


def for_subprotocol(handlers: Mapping[str | None, T], subprotocol: str | None) -> T:
    """Of handlers per subprotocol, the negotiated one's, else the one under ``None``."""
    return handlers.get(subprotocol) or handlers[None]


def _per_subprotocol(
    handlers: Any, subprotocols: Sequence[str] | None, select_subprotocol: Any
) -> tuple[dict[str | None, Handler], list[str], bool]:
    """Check a mapping of handlers: (handlers, the subprotocols, whether one is required)."""
    if not isinstance(handlers, Mapping):
        raise TypeError("handler must be a coroutine function or a mapping of them")
    if subprotocols is not None or select_subprotocol is not None:
        raise ValueError(
            "with handlers per subprotocol, the mapping's keys are the subprotocols: "
            "pass neither subprotocols nor select_subprotocol"
        )
    if not handlers:
        raise ValueError("no handler given")
    for name, handler in handlers.items():
        if name is not None and not isinstance(name, str):
            raise TypeError(f"subprotocol names are str (or None), not {name!r}")
        if not callable(handler):
            raise TypeError(f"the handler for {name!r} is not callable")
    names = [name for name in handlers if name is not None]
    return dict(handlers), names, bool(names) and None not in handlers


def unix_serve(handler: Handlers, path: str | None = None, **kwargs: Any) -> serve:
    """Like :func:`serve`, on the Unix socket at ``path`` (``sock=`` for one already bound)."""
    return serve(handler, unix=True, path=path, **kwargs)

"""The asyncio server: :func:`serve` runs a handler per WebSocket connection."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..exceptions import ConnectionClosed, ConnectionClosedOK, InvalidMessage
from ..io import network
from ..io.deadlines import Deadlines
from ..io.transport import BaseConnection
from ..io.transport import logger as default_logger
from ..protocol.engine import SERVER
from ..protocol.extensions.base import ServerExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_server_permessage_deflate
from ..protocol.handshake import ServerHandshake
from ..protocol.http11 import Request, Response
from ..protocol.pipeline import Stage
from .connection import Connection
from .streams import StreamHandler, stream_connection_class, stream_handler

__all__ = ["Server", "ServerConnection", "serve"]

Handler = Callable[["ServerConnection"], Awaitable[Any]]
ProcessRequest = Callable[["ServerConnection", Request], "Response | None"]


class ServerConnection(Connection):
    """The server side of a connection, handed to the handler."""

    side = SERVER

    def __init__(
        self,
        server: Server,
        handler: Handler,
        handshake: ServerHandshake,
        process_request: ProcessRequest | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.server = server
        self.handler = handler
        self.handshake = handshake
        self._process_request_hook = process_request
        self._handler_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._register(self)

    def process_request(self, request: Request) -> Response | None:
        hook = self._process_request_hook
        if hook is not None:
            response = hook(self, request)
            if response is not None:
                self.handshake_exc = InvalidMessage(
                    f"request rejected with HTTP {response.status_code}"
                )
                return response
        return super().process_request(request)

    def _opened_hook(self) -> None:
        self._handler_task = self.loop.create_task(self._run_handler())

    async def _run_handler(self) -> None:
        try:
            await self.handler(self)
        except ConnectionClosed as exc:
            # The peer closed, or broke the protocol: not the handler's fault,
            # one line, no traceback.
            self.server.logger.log(
                logging.DEBUG if isinstance(exc, ConnectionClosedOK) else logging.INFO,
                "connection closed: %s",
                exc,
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
        self.server._unregister(self)


class Server:
    """A running WebSocket server, as returned by :func:`serve`."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.logger = logger or default_logger
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[BaseConnection] = set()
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

    def close(self, close_connections: bool = True) -> None:
        """Stop listening and close every connection with 1001 (going away).

        Use :meth:`wait_closed` to wait until they are all closed.
        """
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._close_task = loop.create_task(self._close(close_connections))

    async def _close(self, close_connections: bool) -> None:
        assert self._closed is not None
        try:
            if self.server is not None:
                self.server.close()
            if close_connections:
                await asyncio.gather(
                    *(conn._close(1001, "server shutting down") for conn in list(self.connections)),
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
    Options match ``websockets.asyncio.server.serve``: ``subprotocols``,
    ``select_subprotocol``, ``process_request(connection, request)`` (return a
    :class:`~rapidws.protocol.http11.Response` to answer with it instead of
    upgrading), ``server_header``, ``compression``, ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``write_limit``, ``create_connection`` (a
    :class:`ServerConnection` subclass); plus ``max_fragment_size``, ``mode``
    (``"text"`` or ``"binary"``: a connection of that type only), ``ssl`` and
    ``fastnet`` (aiofastnet's transports: see :mod:`rapidws.io.network`).
    ``stream=True`` (or ``"text"``) calls ``handler(reader, writer)`` with
    byte streams instead (see :mod:`rapidws.asyncio.streams`).
    Other keyword arguments go to :meth:`asyncio.loop.create_server`.
    """

    def __init__(
        self,
        handler: Handler | StreamHandler,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: Callable[[list[str]], str | None] | None = None,
        process_request: ProcessRequest | None = None,
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
        mode: str | None = None,
        frames: bool = False,
        stages: Sequence[Stage | Callable[[], Stage]] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        create_connection: type[ServerConnection] | None = None,
        fastnet: bool | None = None,
        stream: bool | str = False,
        **kwargs: Any,
    ) -> None:
        if stream:
            # Byte streams: frames queue as they come (see streams.py).
            handler = stream_handler(handler, stream)  # type: ignore[arg-type]
            create_connection = stream_connection_class(create_connection or ServerConnection)
            frames = True
        if compression == "deflate":
            extensions = enable_server_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.handler: Handler = handler  # type: ignore[assignment]
        self.host = host
        self.port = port
        self.ssl = ssl
        self.handshake = ServerHandshake(
            subprotocols=subprotocols,
            extensions=extensions,
            server_header=server_header,
            select_subprotocol=select_subprotocol,
        )
        self.process_request = process_request
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
        self.create_server_kwargs = kwargs
        self.fastnet = fastnet
        self.connection_class = create_connection or ServerConnection
        self.server = Server(logger)
        self.options["deadlines"] = self.server.deadlines

    def _factory(self) -> ServerConnection:
        return self.connection_class(
            self.server, self.handler, self.handshake, self.process_request, **self.options
        )

    async def _start(self) -> Server:
        sock = self.create_server_kwargs.get("sock")
        if sock is not None:
            _check_listening(sock)
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

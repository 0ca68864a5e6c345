"""The asyncio client: :func:`connect` opens a WebSocket connection."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import urllib.parse
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any, cast

from ..exceptions import InvalidRedirect, SecurityError
from ..http.uri import WebSocketURI, parse_uri
from ..io import network
from ..protocol.engine import CLIENT
from ..protocol.extensions.base import ClientExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_client_permessage_deflate
from ..protocol.handshake import ClientHandshake, HeadersLike, Redirect
from ..protocol.pipeline import Stage
from .connection import Connection

__all__ = ["ClientConnection", "connect"]


class _Redirected(Exception):
    def __init__(self, redirect: Redirect) -> None:
        self.redirect = redirect


class ClientConnection(Connection):
    """The client side of a connection, as returned by :func:`connect`."""

    side = CLIENT

    def __init__(self, handshake: ClientHandshake, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handshake = handshake
        self.request = handshake.request


class connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    Use ``async with connect(uri) as ws:`` or ``ws = await connect(uri)``.
    Options match ``websockets.asyncio.client.connect``: ``subprotocols``,
    ``additional_headers``, ``user_agent_header``, ``origin``,
    ``compression``, ``open_timeout`` (connecting and the handshake),
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``write_limit``; plus ``max_fragment_size``, ``mode``,
    ``max_redirects``, ``ssl``, ``server_hostname``, ``fastnet`` (aiofastnet's
    transports: see :mod:`rapidws.io.network`) and ``create_connection``
    (a :class:`ClientConnection` subclass to use).  Other keyword
    arguments go to :meth:`asyncio.loop.create_connection`.
    """

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] | None = None,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = "rapidws",
        origin: str | None = None,
        compression: str | None = "deflate",
        extensions: Sequence[ClientExtensionFactory] | None = None,
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
        max_redirects: int = 10,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        create_connection: type[ClientConnection] | None = None,
        fastnet: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if compression == "deflate":
            extensions = enable_client_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.uri = uri
        self.handshake_options: dict[str, Any] = {
            "subprotocols": subprotocols,
            "extensions": extensions,
            "additional_headers": additional_headers,
            "origin": origin,
            "user_agent": user_agent_header,
        }
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
        self.open_timeout = open_timeout
        self.max_redirects = max_redirects
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.create_connection_kwargs = kwargs
        self.fastnet = fastnet
        self.connection_class = create_connection or ClientConnection
        self.connection: ClientConnection | None = None

    async def _connect_once(self, wsuri: WebSocketURI) -> ClientConnection:
        handshake = ClientHandshake(
            host=wsuri.host_header, path=wsuri.resource_name, **self.handshake_options
        )
        ssl: ssl_module.SSLContext | None = None
        if wsuri.secure:
            ssl = self.ssl if isinstance(self.ssl, ssl_module.SSLContext) else None
            if ssl is None:
                ssl = ssl_module.create_default_context()
        elif self.ssl not in (None, False):
            raise ValueError("ssl= needs a wss:// URI")
        kwargs = dict(self.create_connection_kwargs)
        if ssl is not None:
            kwargs["ssl"] = ssl
            kwargs["server_hostname"] = self.server_hostname or wsuri.host
        if "sock" not in kwargs:
            kwargs["host"], kwargs["port"] = wsuri.host, wsuri.port
        _, protocol = await network.create_connection(
            lambda: self.connection_class(handshake, **self.options), self.fastnet, **kwargs
        )
        connection = cast(ClientConnection, protocol)
        try:
            await connection._opened
        except BaseException as exc:
            if connection.transport is not None:
                connection.transport.abort()
            if isinstance(exc, InvalidRedirect):
                result = handshake.check(exc.response)
                assert isinstance(result, Redirect)
                raise _Redirected(result) from None
            raise
        return connection

    async def _connect(self) -> ClientConnection:
        uri = self.uri
        for _ in range(self.max_redirects + 1):
            wsuri = parse_uri(uri)
            try:
                return await self._connect_once(wsuri)
            except _Redirected as redirected:
                location = redirected.redirect.location
                if location.startswith(("http://", "https://")):
                    location = "ws" + location[4:]
                new_uri = urllib.parse.urljoin(uri, location)
                if wsuri.secure and not parse_uri(new_uri).secure:
                    raise InvalidRedirect(redirected.redirect.response) from None
                uri = new_uri
        raise SecurityError(f"more than {self.max_redirects} redirects")

    async def _open(self) -> ClientConnection:
        if self.open_timeout is None:
            self.connection = await self._connect()
        else:
            self.connection = await asyncio.wait_for(self._connect(), self.open_timeout)
        return self.connection

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.close()

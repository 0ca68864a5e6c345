"""The asyncio client: :func:`connect`, and :func:`unix_connect` over a Unix socket.

As ``websockets.asyncio.client``: ``connect`` is awaitable, an async
context manager, and an endless async iterator that reconnects with
exponential backoff (:func:`backoff`) after errors that
:func:`process_exception` deems transient.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl as ssl_module
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from types import TracebackType
from typing import Any, Literal, cast

from ..exceptions import (
    InvalidMessage,
    InvalidRedirect,
    InvalidStatus,
    SecurityError,
    TLSAlert,
)
from ..http.uri import WebSocketURI, parse_uri
from ..io import network
from ..protocol.engine import CLIENT
from ..protocol.extensions.base import ClientExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_client_permessage_deflate
from ..protocol.handshake import ClientHandshake, HeadersLike
from ..protocol.headers import Headers, build_subprotocol_list
from ..protocol.pipeline import Stage
from .connection import Connection
from .opening import with_credentials
from .options import CREATE_CONNECTION, CREATE_UNIX_CONNECTION, check_keywords, option_names

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_INITIAL_DELAY",
    "BACKOFF_MAX_DELAY",
    "BACKOFF_MIN_DELAY",
    "MAX_REDIRECTS",
    "ClientConnection",
    "backoff",
    "connect",
    "process_exception",
    "unix_connect",
]


def _setting(name: str, default: str) -> str:
    """``RAPIDWS_<name>``, else websockets' ``WEBSOCKETS_<name>``, else ``default``."""
    return os.environ.get("RAPIDWS_" + name, os.environ.get("WEBSOCKETS_" + name, default))


#: How many redirects :func:`connect` follows (``max_redirects``'s default).
MAX_REDIRECTS = int(_setting("MAX_REDIRECTS", "10"))
#: :func:`backoff`'s constants, websockets' values and environment variables
#: (``RAPIDWS_BACKOFF_...`` first, then ``WEBSOCKETS_BACKOFF_...``).
BACKOFF_INITIAL_DELAY = float(_setting("BACKOFF_INITIAL_DELAY", "5"))
BACKOFF_MIN_DELAY = float(_setting("BACKOFF_MIN_DELAY", "3.1"))
BACKOFF_MAX_DELAY = float(_setting("BACKOFF_MAX_DELAY", "90.0"))
BACKOFF_FACTOR = float(_setting("BACKOFF_FACTOR", "1.618"))

USER_AGENT = "rapidws"

default_logger = logging.getLogger("rapidws.client")


def backoff(
    initial_delay: float | None = None,
    min_delay: float | None = None,
    max_delay: float | None = None,
    factor: float | None = None,
) -> Generator[float, None, None]:
    """Delays between reconnection attempts, in seconds, as websockets' ``backoff``.

    A random delay up to ``initial_delay`` first (RFC 6455 section 7.2.3: a
    crowd of clients must not come back at once), then ``min_delay``
    multiplied by ``factor`` each time up to ``max_delay``, then
    ``max_delay`` for ever.  The defaults are the module's ``BACKOFF_*``
    constants, read when called (so that tests may patch them).
    """
    initial = BACKOFF_INITIAL_DELAY if initial_delay is None else initial_delay
    delay = BACKOFF_MIN_DELAY if min_delay is None else min_delay
    maximum = BACKOFF_MAX_DELAY if max_delay is None else max_delay
    growth = BACKOFF_FACTOR if factor is None else factor
    yield random.random() * initial
    while delay < maximum:
        yield delay
        delay *= growth
    while True:
        yield maximum


def process_exception(exc: Exception) -> Exception | None:
    """Whether a failed connection attempt is worth retrying, as websockets' ``process_exception``.

    ``None`` (retry) for network errors: :class:`OSError`, :class:`TimeoutError`,
    :class:`~rapidws.exceptions.InvalidMessage` caused by an :class:`EOFError`
    (the server closed during the handshake), and
    :class:`~rapidws.exceptions.InvalidStatus` 500, 502, 503 or 504.  Anything
    else is fatal: return it, and ``async for ... in connect(...)`` raises it.
    """
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (500, 502, 503, 504):
        return None
    return exc


class ClientConnection(Connection):
    """The client side of a connection, as returned by :func:`connect`.

    ``request`` is the handshake request sent; ``response`` the server's.
    """

    side = CLIENT

    def __init__(self, handshake: ClientHandshake, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handshake = handshake
        self.request = handshake.request


# Options whose websockets form rapidws does not support: the reason, once.
_PROXY_UNSUPPORTED = (
    "rapidws does not connect through HTTP or SOCKS proxies; pass proxy=None to connect directly"
)

_UNSET: Any = object()


class connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    ``async with connect(uri) as ws:``, ``ws = await connect(uri)``, or, to
    reconnect after transient errors, ``async for ws in connect(uri):``
    (each iteration's connection is closed when the next begins; fatal
    errors, as :func:`process_exception` decides, end the loop).

    Options as ``websockets.asyncio.client.connect``: ``origin``,
    ``extensions``, ``subprotocols``, ``compression``, ``additional_headers``,
    ``user_agent_header``, ``proxy`` (``None``; a proxy raises
    :class:`NotImplementedError`), ``process_exception``, ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``,
    ``reconnect_delays``, ``max_size``, ``max_queue``, ``write_limit``,
    ``logger`` and ``create_connection`` (a :class:`ClientConnection`
    subclass or factory).  Credentials in the URI (``ws://user:pass@host/``)
    go as HTTP Basic ``Authorization``.

    Timeouts: ``connect_timeout`` bounds connecting (TCP, and TLS for
    ``wss://``), ``handshake_timeout`` the HTTP opening handshake, each per
    attempt; ``open_timeout`` (10 s) bounds both together, redirects
    included; left unset with the other two given, it is their sum.  A
    timeout raises :class:`TimeoutError` naming the phase and the limit.

    rapidws's own: ``max_fragment_size``, ``mode``, ``frames``, ``stages``,
    ``max_redirects``, ``ssl`` (a context, or ``True``), ``server_hostname``,
    ``fastnet`` (aiofastnet's transports: see :mod:`rapidws.io.network`).
    Other keyword arguments go to :meth:`asyncio.loop.create_connection`
    (``sock``, ``host``/``port`` to connect elsewhere than ``uri`` says,
    ``local_addr``, ``ssl_handshake_timeout``...); an unknown one raises
    :class:`TypeError` here, at the call.
    """

    #: The name unknown keyword arguments are reported under.
    _function = "rapidws.connect"

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: str | None = "deflate",
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        proxy: str | Literal[True] | None = None,
        process_exception: Callable[[Exception], Exception | None] = process_exception,
        open_timeout: float | None = _UNSET,
        connect_timeout: float | None = None,
        handshake_timeout: float | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        reconnect_delays: Callable[[], Generator[float, None, None]] = backoff,
        max_size: int | None = 2**20,
        max_queue: int | tuple[int, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = 2**15,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        create_connection: Callable[..., ClientConnection] | None = None,
        max_fragment_size: int | None = None,
        mode: str | None = None,
        frames: bool = False,
        stages: Sequence[Stage | Callable[[], Stage]] | None = None,
        max_redirects: int = MAX_REDIRECTS,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        fastnet: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # websockets' undocumented unix_connect spelling: connect(uri, unix=True, path=...).
        self.unix = bool(kwargs.pop("unix", False))
        self.path = kwargs.pop("path", None) if self.unix else None
        function = self._function
        proxy_options = [name for name in kwargs if name.startswith("proxy_")]
        if proxy_options:
            raise NotImplementedError(f"{function}({proxy_options[0]}=...): {_PROXY_UNSUPPORTED}")
        check_keywords(
            function,
            kwargs,
            own=option_names(connect.__init__) - {"uri"},
            passed_to=CREATE_UNIX_CONNECTION if self.unix else CREATE_CONNECTION,
        )
        if isinstance(proxy, str):
            raise NotImplementedError(f"{function}(proxy={proxy!r}): {_PROXY_UNSUPPORTED}")
        if isinstance(max_size, tuple):
            raise NotImplementedError(
                f"{function}(max_size=(message, fragment)): rapidws has no limit of its own "
                "for received fragments; pass max_size=<message limit>"
            )
        self.uri = uri
        self.ws_uri = parse_uri(uri)
        if not self.ws_uri.secure and ssl not in (None, False):
            raise ValueError(f"ssl= needs a wss:// URI, not {uri}")
        if subprotocols is not None:
            build_subprotocol_list(list(subprotocols))  # ValueError if not tokens
        if compression == "deflate":
            extensions = enable_client_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        if open_timeout is _UNSET:
            both = connect_timeout is not None and handshake_timeout is not None
            open_timeout = connect_timeout + handshake_timeout if both else 10  # type: ignore[operator]
        self.origin = origin
        self.extensions = extensions
        self.subprotocols = subprotocols
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.proxy = proxy
        self.process_exception = process_exception
        self.open_timeout: float | None = open_timeout
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.reconnect_delays = reconnect_delays
        self.logger = logger or default_logger
        self.options: dict[str, Any] = {
            # connect() times the opening itself (see _open_transport, _handshake).
            "open_timeout": None,
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
        self.max_redirects = max_redirects
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.create_connection_kwargs = kwargs
        self.fastnet = fastnet
        self.connection_class: Callable[..., ClientConnection] = (
            create_connection or ClientConnection
        )
        self.connection: ClientConnection | None = None

    # -- one attempt

    def _client_handshake(self, wsuri: WebSocketURI) -> ClientHandshake:
        return ClientHandshake(
            host=wsuri.host_header,
            path=wsuri.resource_name,
            subprotocols=self.subprotocols,
            extensions=self.extensions,
            additional_headers=with_credentials(wsuri, self.additional_headers),
            origin=self.origin,
            user_agent=self.user_agent_header,
        )

    def _where(self, wsuri: WebSocketURI) -> str:
        """Where the connection goes, for messages."""
        kwargs = self.create_connection_kwargs
        if self.unix:
            return str(self.path) if self.path is not None else "the given socket"
        if kwargs.get("sock") is not None:
            return "the given socket"
        host = kwargs.get("host") or wsuri.host
        port = kwargs.get("port") or wsuri.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _check_proxy(self, wsuri: WebSocketURI) -> None:
        """``proxy=True`` (websockets' default): the system's proxy, which rapidws cannot use."""
        if self.proxy is not True or self.unix or self.create_connection_kwargs.get("sock"):
            return
        import urllib.request  # not at import: it imports http.client, email...

        if urllib.request.proxy_bypass(f"{wsuri.host}:{wsuri.port}"):
            return
        proxies = urllib.request.getproxies()
        schemes = ("wss", "socks", "https") if wsuri.secure else ("ws", "socks", "https", "http")
        for scheme in schemes:
            if scheme in proxies:
                raise NotImplementedError(
                    f"proxy=True: the system's proxy for {wsuri.host} is {proxies[scheme]}; "
                    + _PROXY_UNSUPPORTED
                )

    async def _create(self, wsuri: WebSocketURI, handshake: ClientHandshake) -> ClientConnection:
        """Open the TCP (and TLS) or Unix connection; the handshake request goes at once."""
        kwargs = dict(self.create_connection_kwargs)
        ssl = self.ssl
        if wsuri.secure:
            if ssl is False:
                raise ValueError("ssl=False is incompatible with a wss:// URI")
            if not isinstance(ssl, ssl_module.SSLContext):
                ssl = ssl_module.create_default_context()
            kwargs["ssl"] = ssl
            kwargs["server_hostname"] = self.server_hostname or wsuri.host
        elif ssl not in (None, False):
            raise ValueError(f"ssl= needs a wss:// URI, not {wsuri}")

        def factory() -> ClientConnection:
            return self.connection_class(handshake, **self.options)

        if self.unix:
            loop = asyncio.get_running_loop()
            _, unix_protocol = await loop.create_unix_connection(factory, self.path, **kwargs)
            return unix_protocol
        if kwargs.get("sock") is None:
            kwargs.setdefault("host", wsuri.host)
            kwargs.setdefault("port", wsuri.port)
        _, protocol = await network.create_connection(factory, self.fastnet, **kwargs)
        return cast(ClientConnection, protocol)

    def _left(
        self, own: float | None, name: str, deadline: float | None
    ) -> tuple[float | None, str, float | None]:
        """The time a phase may take: (seconds, the option that sets it, its value)."""
        if deadline is not None:
            left = max(deadline - asyncio.get_running_loop().time(), 0.0)
            if own is None or left < own:
                return left, "open_timeout", self.open_timeout
        return own, name, own

    async def _open_transport(
        self, wsuri: WebSocketURI, handshake: ClientHandshake, deadline: float | None
    ) -> ClientConnection:
        seconds, name, value = self._left(self.connect_timeout, "connect_timeout", deadline)
        if seconds is None:
            return await self._create(wsuri, handshake)
        task = asyncio.get_running_loop().create_task(self._create(wsuri, handshake))
        try:
            done, _ = await asyncio.wait((task,), timeout=seconds)
        except BaseException:
            task.add_done_callback(_abort_if_connected)
            task.cancel()
            raise
        if done:
            return task.result()
        task.add_done_callback(_abort_if_connected)  # if it connects as the time runs out
        task.cancel()
        raise TimeoutError(
            f"timed out connecting to {self._where(wsuri)} after {value:g} s ({name})"
        )

    async def _handshake(
        self, connection: ClientConnection, wsuri: WebSocketURI, deadline: float | None
    ) -> None:
        seconds, name, value = self._left(self.handshake_timeout, "handshake_timeout", deadline)
        opened = connection._opened
        if not opened.done():
            await asyncio.wait((opened,), timeout=seconds)
        if not opened.done():
            raise TimeoutError(
                f"timed out during the opening handshake with {self._where(wsuri)} "
                f"after {value:g} s ({name})"
            )
        exc = opened.exception()
        if exc is None:
            return
        if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
            raise _closed_during_handshake(connection, exc)
        if type(exc) in (InvalidMessage, SecurityError) and connection.response is None:
            # What came is not an HTTP response, or one past the limits: say from whom.
            raise type(exc)(
                f"did not receive a valid HTTP response from {self._where(wsuri)}: {exc}"
            ) from exc
        raise exc

    # -- redirects

    def process_redirect(self, exc: InvalidRedirect) -> Exception | str:
        """The URI ``exc`` redirects to, or the exception that forbids it (as websockets)."""
        location = exc.response.headers["Location"]
        if location.startswith(("http://", "https://")):
            location = "ws" + location[4:]
        new_uri = urllib.parse.urljoin(self.uri, location)
        try:
            new_wsuri = parse_uri(new_uri)
        except Exception as error:
            return error
        old = self.ws_uri
        kwargs = self.create_connection_kwargs
        if kwargs.get("sock") is not None:
            return ValueError(f"cannot follow redirect to {new_uri} with a preexisting socket")
        if old.secure and not new_wsuri.secure:
            return SecurityError(f"cannot follow redirect to non-secure URI {new_uri}")
        if (old.secure, old.host, old.port) != (new_wsuri.secure, new_wsuri.host, new_wsuri.port):
            if self.unix:
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} with a Unix socket"
                )
            if kwargs.get("host") is not None or kwargs.get("port") is not None:
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} "
                    "with an explicit host or port"
                )
            # Credentials stay with their origin.
            if self.additional_headers is not None:
                self.additional_headers = Headers(
                    (name, value)
                    for name, value in Headers(self.additional_headers).raw_items()
                    if name.lower() not in ("authorization", "cookie", "proxy-authorization")
                )
        return new_uri

    async def _connect(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        deadline = None if self.open_timeout is None else loop.time() + self.open_timeout
        for _ in range(self.max_redirects + 1):
            wsuri = self.ws_uri
            self._check_proxy(wsuri)
            connection = await self._open_transport(wsuri, self._client_handshake(wsuri), deadline)
            try:
                await self._handshake(connection, wsuri, deadline)
            except BaseException as exc:
                if connection.transport is not None:
                    connection.transport.abort()
                if not isinstance(exc, InvalidRedirect):
                    raise
                exc_or_uri = self.process_redirect(exc)
                if isinstance(exc_or_uri, Exception):
                    raise exc_or_uri from exc
                self.uri = exc_or_uri
                self.ws_uri = parse_uri(exc_or_uri)
                continue
            return connection
        raise SecurityError(f"more than {self.max_redirects} redirects; the last to {self.uri}")

    # -- the three ways to use it

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        if self.connection is not None:
            raise RuntimeError("connect() isn't reentrant")
        self.connection = await self._connect()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        delays: Generator[float, None, None] | None = None
        while True:
            try:
                async with self as connection:
                    yield connection
            except Exception as exc:
                # "Raise an exception" works as "return it", as in websockets.
                try:
                    new_exc = self.process_exception(exc)
                except Exception as raised:
                    new_exc = raised
                if new_exc is exc:
                    raise
                if new_exc is not None:
                    raise new_exc from exc
                if delays is None:
                    delays = self.reconnect_delays()
                delay = next(delays)
                self.logger.info(
                    "connect failed; reconnecting in %.1f seconds: %s",
                    delay,
                    traceback.format_exception_only(type(exc), exc)[0].strip(),
                )
                await asyncio.sleep(delay)
            else:
                delays = None  # connected: the backoff starts over


class _unix_connect(connect):
    _function = "rapidws.unix_connect"


def unix_connect(
    path: str | os.PathLike[str] | None = None, uri: str | None = None, **kwargs: Any
) -> connect:
    """Connect to a WebSocket server listening on the Unix socket ``path``.

    Options as :func:`connect`; ``uri`` (for the request target and
    ``Host``) defaults to ``ws://localhost/``, or ``wss://localhost/`` with
    ``ssl``.  Unix only.
    """
    if uri is None:
        uri = "ws://localhost/" if kwargs.get("ssl") in (None, False) else "wss://localhost/"
    return _unix_connect(uri, unix=True, path=path, **kwargs)


def _abort_if_connected(task: asyncio.Task[ClientConnection]) -> None:
    """A connection that came too late or for nobody: drop it."""
    if not task.cancelled() and task.exception() is None:
        transport = task.result().transport
        if transport is not None:
            transport.abort()


# -- why the server closed during the handshake ---------------------------------


def _closed_during_handshake(connection: ClientConnection, exc: InvalidMessage) -> Exception:
    """A clearer error than "connection closed" when TLS tells more.

    With TLS 1.3 the server checks the client's certificate after the
    client's TLS handshake is over (RFC 8446 4.4.2.4): a refusal arrives as
    an alert on the first read, which asyncio hands to ``connection_lost``.
    Some servers (asyncio's TLS, unless told as rapidws's servers are, and
    aiofastnet's) close without the alert: then the message says what it
    may mean.
    """
    cause = connection._lost_cause
    if isinstance(cause, ssl_module.SSLError):
        return TLSAlert.from_ssl_error(cause)
    transport = connection.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is not None and ssl_object.version() == "TLSv1.3" and connection.response is None:
        hinted = InvalidMessage(
            f"{exc}; over TLS 1.3 a server that refuses the client's certificate may close so"
        )
        hinted.__cause__ = exc.__cause__
        return hinted
    return exc

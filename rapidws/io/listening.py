"""Plain TCP servers and clients on :class:`~rapidws.io.sockets.SocketTransport`.

:func:`start_server` binds and listens like ``loop.create_server`` and
accepts on ``add_reader``: each accepted socket gets its transport at once,
without a task or a future.  :class:`SocketServer` is the
:class:`asyncio.AbstractServer` it returns.  :func:`open_connection`
connects like ``loop.create_connection`` for the common arguments.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from collections.abc import Callable, Iterable

from .sockets import SocketTransport

__all__ = ["SocketServer", "open_connection", "start_server"]

logger = logging.getLogger("rapidws")

Factory = Callable[[], asyncio.BaseProtocol]

#: ``accept`` errors that mean "out of resources": accepting pauses for a while.
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
#: How long accepting pauses after such an error, in seconds.
ACCEPT_RETRY_DELAY = 1.0


class SocketServer(asyncio.AbstractServer):
    """Listening sockets that accept connections onto :class:`SocketTransport`.

    As :class:`asyncio.Server` (Python 3.12 and later): :meth:`wait_closed`
    waits until the server is closed and every connection it accepted is
    lost; :meth:`close_clients` and :meth:`abort_clients` end those.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        factory: Factory,
        backlog: int,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        self._factory = factory
        self._backlog = backlog
        self._serving = False
        self._transports: set[SocketTransport] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._serving_forever: asyncio.Future[None] | None = None

    # -- accepting

    def _start_accepting(self) -> None:
        if self._sockets is None:
            return
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_accepting(self) -> None:
        if self._sockets is None:
            return
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        """A listening socket is readable: accept what waits, ``backlog`` at most."""
        for _ in range(self._backlog):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                self._loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": sock,
                    }
                )
                self._stop_accepting()
                self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)
                return
            try:
                SocketTransport(self._loop, conn, self._factory(), {"peername": addr}, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                conn.close()
                self._loop.call_exception_handler(
                    {
                        "message": "Error on transport creation for incoming connection",
                        "exception": exc,
                        "socket": conn,
                    }
                )

    def _resume_accepting(self) -> None:
        if self._serving:
            self._start_accepting()

    # -- what transports report

    def _attach(self, transport: SocketTransport) -> None:
        self._transports.add(transport)

    def _detach(self, transport: SocketTransport) -> None:
        self._transports.discard(transport)
        self._wake_up_if_done()

    def _wake_up_if_done(self) -> None:
        if self._sockets is not None or self._transports:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- asyncio.AbstractServer

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets or ())

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
        self._start_accepting()

    def close(self) -> None:
        """Stop listening and close the sockets; connections stay open."""
        if self._sockets is None:
            return
        self._stop_accepting()
        for sock in self._sockets:
            sock.close()
        self._sockets = None
        self._serving = False
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._serving_forever = None
        self._wake_up_if_done()

    def close_clients(self) -> None:
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._transports):
            transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are lost."""
        if self._sockets is None and not self._transports:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        await self.start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def __repr__(self) -> str:
        return f"<SocketServer sockets={self.sockets!r}>"


async def start_server(
    factory: Factory,
    host: str | Iterable[str] | None = None,
    port: int | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    start_serving: bool = True,
) -> SocketServer:
    """Bind (or take ``sock``), listen and accept, as ``loop.create_server`` does for TCP."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sockets = [sock]
    else:
        sockets = await _bind(loop, host, port, family, flags, reuse_address, reuse_port)
    for listening in sockets:
        listening.setblocking(False)
    server = SocketServer(loop, sockets, factory, backlog)
    if start_serving:
        await server.start_serving()
    return server


async def _bind(
    loop: asyncio.AbstractEventLoop,
    host: str | Iterable[str] | None,
    port: int | None,
    family: int,
    flags: int,
    reuse_address: bool | None,
    reuse_port: bool | None,
) -> list[socket.socket]:
    """One bound socket per address ``host`` resolves to (all interfaces for ``None``)."""
    if reuse_address is None:
        reuse_address = hasattr(socket, "SO_REUSEADDR")
    hosts: list[str | None]
    if host == "" or host is None:
        hosts = [None]
    elif isinstance(host, str):
        hosts = [host]
    else:
        hosts = list(host)
    resolved = await asyncio.gather(
        *(
            loop.getaddrinfo(h, port, family=family, type=socket.SOCK_STREAM, flags=flags)
            for h in hosts
        )
    )
    infos = set(itertools.chain.from_iterable(resolved))
    sockets: list[socket.socket] = []
    try:
        for af, kind, proto, _, address in sorted(infos, key=lambda info: info[0]):
            try:
                sock = socket.socket(af, kind, proto)
            except OSError:
                logger.debug("cannot create a socket for %r", address, exc_info=True)
                continue  # e.g. an address family without kernel support
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # Dual-stack is off: IPv4 gets a socket of its own.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"error while attempting to bind on address {address!r}: "
                    f"{(exc.strerror or '').lower()}",
                ) from None
        if not sockets:
            raise OSError(f"could not bind on any address out of {hosts!r}")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def open_connection(
    factory: Factory,
    host: str,
    port: int,
    *,
    family: int = 0,
    flags: int = 0,
) -> tuple[SocketTransport, asyncio.BaseProtocol]:
    """Connect to the first address of ``host`` that accepts, as ``loop.create_connection``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    errors: list[OSError] = []
    for af, kind, proto, _, address in infos:
        sock = socket.socket(af, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        try:
            protocol = factory()
            transport = SocketTransport(loop, sock, protocol)
        except BaseException:
            sock.close()
            raise
        made = loop.create_future()
        loop.call_soon(_set_if_pending, made)  # after connection_made, as asyncio returns
        try:
            await made
        except BaseException:
            transport.abort()
            raise
        return transport, protocol
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

"""Where transports come from: the event loop's own, or aiofastnet's.

``aiofastnet`` (optional, a dependency of picows) provides compiled TCP and
TLS transports for any asyncio loop.  rapidws's protocols are plain
:class:`asyncio.BufferedProtocol` objects, so they run on either.  ``fastnet``:

- ``None`` (default): the loop's own, unless the environment says
  ``RAPIDWS_FASTNET=1`` (use aiofastnet) or ``RAPIDWS_FASTNET=auto`` (use it
  if it is installed);
- ``True``: aiofastnet (``ImportError`` if it is missing);
- ``False``: the loop's ``create_server`` / ``create_connection``.

Not the default: measured with 10,000 idle connections, aiofastnet's
transports cost about 5 KiB more per connection (11.7 KiB against 7.0 for
the callback API).

On uvloop, plain TCP servers and clients run on rapidws's own transport,
:class:`~rapidws.io.sockets.SocketTransport` (see
:mod:`rapidws.io.listening`): uvloop's transports read and write through
libuv, where rapidws cannot reach the socket.  Arguments that only the
loop's own ``create_server`` / ``create_connection`` take (TLS, ``sock`` for
clients, ``local_addr``, ...) select the loop's transports.

On asyncio's own transports, a plain TCP server on one of asyncio's
selector loops accepts with :func:`_accept`: the transport of each new
connection is made at once, without the task and the future asyncio's
accept loop spends on each.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable
from typing import Any

from . import listening

__all__ = ["create_connection", "create_server", "use_fastnet"]

Factory = Callable[[], asyncio.BaseProtocol]


def use_fastnet(fastnet: bool | None) -> Any:
    """Return the aiofastnet module if it should be used, else ``None``."""
    if fastnet is None:
        setting = os.environ.get("RAPIDWS_FASTNET", "")
        if setting == "auto":
            try:
                return importlib.import_module("aiofastnet")
            except ImportError:
                return None
        if setting != "1":
            return None
    elif not fastnet:
        return None
    return importlib.import_module("aiofastnet")


async def create_server(
    factory: Factory, fastnet: bool | None = None, **kwargs: Any
) -> asyncio.Server:
    """``loop.create_server(factory, **kwargs)``, on aiofastnet's transports if chosen.

    On asyncio's own selector loops, plain TCP servers accept with
    :func:`_accept` instead of asyncio's accept loop.
    """
    loop = asyncio.get_running_loop()
    module = use_fastnet(fastnet)
    if module is not None:
        server: asyncio.Server = await module.create_server(loop, factory, **kwargs)
        return server
    if _own_transports(loop, kwargs, _SERVER_ARGUMENTS):
        kwargs.pop("ssl", None)
        return await listening.start_server(factory, **kwargs)  # type: ignore[return-value]
    server = await loop.create_server(factory, **kwargs)
    if (
        kwargs.get("ssl") is None
        and isinstance(loop, BaseSelectorEventLoop)
        and server.is_serving()
    ):
        backlog = kwargs.get("backlog", 100)
        for sock in server._sockets:  # type: ignore[attr-defined]
            # Replaces the reader asyncio's create_server registered.
            loop._add_reader(  # type: ignore[attr-defined]
                sock.fileno(), _accept, loop, factory, sock, server, backlog
            )
    return server


def _accept(
    loop: Any, factory: Factory, sock: socket.socket, server: asyncio.Server, backlog: int
) -> None:
    """The listening socket is readable: accept what is waiting, up to ``backlog``.

    What asyncio's selector loops do, without a task and a future per
    connection: the transport is made at once; as with asyncio,
    ``connection_made`` follows on the next loop iteration.  Running out of
    file descriptors (or another ``accept`` error) is left to asyncio's own
    accept loop, which pauses accepting for a while.
    """
    for _ in range(backlog):
        try:
            conn, addr = sock.accept()
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:
            loop._accept_connection(factory, sock, None, server, backlog)
            return
        try:
            protocol = factory()
            loop._make_socket_transport(conn, protocol, extra={"peername": addr}, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            loop.call_exception_handler(
                {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                    "socket": conn,
                }
            )


async def create_connection(
    factory: Callable[[], asyncio.BaseProtocol], fastnet: bool | None = None, **kwargs: Any
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """``loop.create_connection(factory, **kwargs)``, on aiofastnet's transports if chosen."""
    loop = asyncio.get_running_loop()
    module = use_fastnet(fastnet)
    if module is not None:
        result: tuple[asyncio.BaseTransport, asyncio.BaseProtocol]
        result = await module.create_connection(loop, factory, **kwargs)
        return result
    if _own_transports(loop, kwargs, _CONNECTION_ARGUMENTS):
        kwargs.pop("ssl", None)
        return await listening.open_connection(factory, **kwargs)  # type: ignore[return-value]
    return await loop.create_connection(factory, **kwargs)


#: What :func:`listening.start_server` and :func:`listening.open_connection` take.
_SERVER_ARGUMENTS = frozenset(
    {"host", "port", "family", "flags", "sock", "backlog", "ssl"}
    | {"reuse_address", "reuse_port", "start_serving"}
)
_CONNECTION_ARGUMENTS = frozenset(("host", "port", "family", "flags", "ssl"))


def _own_transports(loop: Any, kwargs: dict[str, Any], arguments: frozenset[str]) -> bool:
    """Whether to run on :class:`~rapidws.io.sockets.SocketTransport`: plain TCP on uvloop."""
    return (
        kwargs.get("ssl") is None
        and arguments.issuperset(kwargs)
        and type(loop).__module__.startswith("uvloop")
    )

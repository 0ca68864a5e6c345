"""Where transports come from: rapidws's own, the event loop's, or aiofastnet's.

Plain TCP servers and clients on asyncio's selector loops and on uvloop run
on rapidws's own transport, :class:`~rapidws.io.sockets.SocketTransport`
(see :mod:`rapidws.io.listening`): the compiled build reads from and writes
to its socket without Python in between, and a server accepts without the
task and the future asyncio spends on each connection.  TLS, and arguments
that only the loop's own ``create_server`` / ``create_connection`` take
(``sock`` for clients, ``local_addr``, ...), select the loop's transports.

``aiofastnet`` (optional, a dependency of picows) provides compiled TCP and
TLS transports for any asyncio loop.  rapidws's protocols are plain
:class:`asyncio.BufferedProtocol` objects, so they run on it too.  ``fastnet``:

- ``None`` (default): not aiofastnet, unless the environment says
  ``RAPIDWS_FASTNET=1`` (use it) or ``RAPIDWS_FASTNET=auto`` (use it if it is
  installed);
- ``True``: aiofastnet (``ImportError`` if it is missing);
- ``False``: not aiofastnet.

Not the default: measured with 10,000 idle connections, aiofastnet's
transports cost about 5 KiB more per connection (11.7 KiB against 6.4 for
the callback API).  Nor does its TLS server send the alert of a handshake
it refuses (a refused client certificate): the loop's does, told by
:mod:`rapidws.io.tls_server`, so a server that asks for client
certificates (mutual TLS) uses the loop's TLS even with ``fastnet``, as
does one with an SNI callback.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl as _ssl
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
) -> asyncio.AbstractServer:
    """``loop.create_server(factory, **kwargs)``, on the transports chosen as above."""
    loop = asyncio.get_running_loop()
    module = use_fastnet(fastnet)
    ssl = kwargs.get("ssl")
    if module is not None and ssl is not None and _loop_tls_needed(ssl):
        module = None
    if module is not None:
        server: asyncio.AbstractServer = await module.create_server(loop, factory, **kwargs)
        return server
    if _own_transports(loop, kwargs, _SERVER_ARGUMENTS):
        kwargs.pop("ssl", None)
        return await listening.start_server(factory, **kwargs)
    return await loop.create_server(factory, **kwargs)


def _loop_tls_needed(context: Any) -> bool:
    """Whether a server's TLS must be the loop's, not aiofastnet's.

    aiofastnet's TLS (1.2) crashes (SIGSEGV) when an SNI callback switches
    the connection's context; and it closes without the alert when it
    refuses a client's certificate, so a refused client of a mutual-TLS
    server would not learn why (the loop's TLS sends it: see ``tls_server``).
    """
    if getattr(context, "sni_callback", None) is not None:
        return True
    return getattr(context, "verify_mode", _ssl.CERT_NONE) != _ssl.CERT_NONE


async def create_connection(
    factory: Callable[[], asyncio.BaseProtocol], fastnet: bool | None = None, **kwargs: Any
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """``loop.create_connection(factory, **kwargs)``, on the transports chosen as above."""
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
    (
        "host",
        "port",
        "family",
        "flags",
        "sock",
        "backlog",
        "reuse_address",
        "reuse_port",
        "start_serving",
        "ssl",
    )
)
_CONNECTION_ARGUMENTS = frozenset(("host", "port", "family", "flags", "ssl"))


def _own_transports(loop: Any, kwargs: dict[str, Any], arguments: frozenset[str]) -> bool:
    """Whether to run on :class:`~rapidws.io.sockets.SocketTransport`.

    Plain TCP, with arguments it takes, on a loop with working ``add_reader``
    (asyncio's selector loops, uvloop) and POSIX sockets.
    """
    return (
        kwargs.get("ssl") is None
        and arguments.issuperset(kwargs)
        and os.name == "posix"
        and (isinstance(loop, BaseSelectorEventLoop) or type(loop).__module__.startswith("uvloop"))
    )

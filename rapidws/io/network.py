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
transports cost about 5 KiB more per connection (11.5 KiB against 6.7 for
the callback API), for a few percent of server CPU on the 100-connection
and 64 KiB rows.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable
from typing import Any

__all__ = ["create_connection", "create_server", "use_fastnet"]


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
    factory: Callable[[], asyncio.BaseProtocol], fastnet: bool | None = None, **kwargs: Any
) -> asyncio.Server:
    """``loop.create_server(factory, **kwargs)``, on aiofastnet's transports if chosen."""
    loop = asyncio.get_running_loop()
    module = use_fastnet(fastnet)
    if module is not None:
        server: asyncio.Server = await module.create_server(loop, factory, **kwargs)
        return server
    return await loop.create_server(factory, **kwargs)


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
    return await loop.create_connection(factory, **kwargs)

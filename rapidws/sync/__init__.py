"""The blocking client, for scripts and threads: ``rapidws.sync.connect``.

Importing this package does not import asyncio.
"""

from __future__ import annotations

from .client import ClientConnection, connect

__all__ = ["ClientConnection", "connect"]

"""rapidws: a fast, correct WebSocket server and client for asyncio.

The names most code needs are importable from here, lazily::

    from rapidws import serve, connect, ConnectionClosedOK
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _accel  # noqa: F401  (first: it picks the build of the hot modules)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .asyncio.attach import attach
    from .asyncio.auth import basic_auth
    from .asyncio.client import ClientConnection, connect, unix_connect
    from .asyncio.connection import Connection, State
    from .asyncio.halves import Receiver, Sender
    from .asyncio.opening import PendingRequest, client_handshake, server_handshake
    from .asyncio.router import route, unix_route
    from .asyncio.server import Server, ServerConnection, serve, unix_serve
    from .asyncio.streams import WebSocketStreamReader, WebSocketStreamWriter, open_connection
    from .broadcast import BroadcastResult, broadcast
    from .exceptions import (
        ConcurrencyError,
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        InvalidHandshake,
        InvalidHeader,
        InvalidMessage,
        InvalidOrigin,
        InvalidState,
        InvalidStatus,
        InvalidUpgrade,
        InvalidURI,
        NegotiationError,
        PayloadTooBig,
        ProtocolError,
        SecurityError,
        TLSAlert,
        WebSocketException,
    )
    from .http.router import App
    from .http.server import (
        HTTPRequest,
        StreamResponse,
        bytes_response,
        html_response,
        json_response,
        stream_response,
        text_response,
    )
    from .http.static import StaticFiles
    from .listener import Listener, ListenerConnection, connect_listener, serve_listener
    from .protocol.extensions.permessage_deflate import set_zlib_backend
    from .protocol.frames import CloseCode, Frame, Opcode
    from .protocol.handshake import Accepted, Redirect, Rejected, accept_key, generate_key
    from .protocol.headers import Headers
    from .protocol.http11 import Request, Response

_EXPORTS = {
    "attach": ".asyncio.attach",
    "client_handshake": ".asyncio.opening",
    "server_handshake": ".asyncio.opening",
    "PendingRequest": ".asyncio.opening",
    "Accepted": ".protocol.handshake",
    "Redirect": ".protocol.handshake",
    "Rejected": ".protocol.handshake",
    "accept_key": ".protocol.handshake",
    "generate_key": ".protocol.handshake",
    "connect": ".asyncio.client",
    "ClientConnection": ".asyncio.client",
    "unix_connect": ".asyncio.client",
    "Connection": ".asyncio.connection",
    "State": ".asyncio.connection",
    "Receiver": ".asyncio.halves",
    "Sender": ".asyncio.halves",
    "serve": ".asyncio.server",
    "unix_serve": ".asyncio.server",
    "route": ".asyncio.router",
    "unix_route": ".asyncio.router",
    "basic_auth": ".asyncio.auth",
    "broadcast": ".broadcast",
    "BroadcastResult": ".broadcast",
    "Server": ".asyncio.server",
    "ServerConnection": ".asyncio.server",
    "open_connection": ".asyncio.streams",
    "WebSocketStreamReader": ".asyncio.streams",
    "WebSocketStreamWriter": ".asyncio.streams",
    "CloseCode": ".protocol.frames",
    "Frame": ".protocol.frames",
    "Opcode": ".protocol.frames",
    "Headers": ".protocol.headers",
    "Request": ".protocol.http11",
    "Listener": ".listener",
    "ListenerConnection": ".listener",
    "serve_listener": ".listener",
    "set_zlib_backend": ".protocol.extensions.permessage_deflate",
    "connect_listener": ".listener",
    "Response": ".protocol.http11",
    "App": ".http.router",
    "StaticFiles": ".http.static",
    **dict.fromkeys(
        [
            "HTTPRequest",
            "StreamResponse",
            "bytes_response",
            "html_response",
            "json_response",
            "stream_response",
            "text_response",
        ],
        ".http.server",
    ),
    **dict.fromkeys(
        [
            "ConcurrencyError",
            "ConnectionClosed",
            "ConnectionClosedError",
            "ConnectionClosedOK",
            "InvalidHandshake",
            "InvalidHeader",
            "InvalidMessage",
            "InvalidOrigin",
            "InvalidState",
            "InvalidStatus",
            "InvalidURI",
            "InvalidUpgrade",
            "NegotiationError",
            "PayloadTooBig",
            "ProtocolError",
            "SecurityError",
            "TLSAlert",
            "WebSocketException",
        ],
        ".exceptions",
    ),
}

__all__ = [
    "Accepted",
    "App",
    "BroadcastResult",
    "ClientConnection",
    "CloseCode",
    "ConcurrencyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Frame",
    "HTTPRequest",
    "Headers",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "Listener",
    "ListenerConnection",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "PendingRequest",
    "ProtocolError",
    "Receiver",
    "Redirect",
    "Rejected",
    "Request",
    "Response",
    "SecurityError",
    "Sender",
    "Server",
    "ServerConnection",
    "State",
    "StaticFiles",
    "StreamResponse",
    "TLSAlert",
    "WebSocketException",
    "WebSocketStreamReader",
    "WebSocketStreamWriter",
    "accept_key",
    "attach",
    "basic_auth",
    "broadcast",
    "bytes_response",
    "client_handshake",
    "connect",
    "connect_listener",
    "generate_key",
    "html_response",
    "json_response",
    "open_connection",
    "route",
    "serve",
    "serve_listener",
    "server_handshake",
    "set_zlib_backend",
    "stream_response",
    "text_response",
    "unix_connect",
    "unix_route",
    "unix_serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rapidws' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""Parsing ``ws://`` and ``wss://`` URIs (RFC 6455 section 3)."""

from __future__ import annotations

import dataclasses
import urllib.parse

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """The parts of a WebSocket URI a client needs."""

    secure: bool
    host: str
    port: int
    path: str
    query: str = ""
    username: str | None = None
    password: str | None = None

    @property
    def resource_name(self) -> str:
        """Path and query, as sent in the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def user_info(self) -> tuple[str, str] | None:
        """``(username, password)`` from ``ws://user:pass@host/``, or ``None``."""
        if self.username is None:
            return None
        return self.username, self.password or ""

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the port only when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI; raise :class:`~rapidws.exceptions.InvalidURI`."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    if parsed.hostname is None:
        raise InvalidURI(uri, "hostname isn't provided")
    if parsed.fragment:
        raise InvalidURI(uri, "fragments aren't allowed")
    secure = parsed.scheme == "wss"
    try:
        port = parsed.port
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    if port is None:
        port = 443 if secure else 80
    path = parsed.path or "/"
    # Non-ASCII characters travel percent-encoded in the request line.
    path = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=~")
    query = urllib.parse.quote(parsed.query, safe="/%:@!$&'()*+,;=?~")
    username = password = None
    if parsed.username is not None:
        # HTTP Basic credentials (RFC 7617) need both parts.
        if parsed.password is None:
            raise InvalidURI(uri, "username provided without password")
        username = urllib.parse.unquote(parsed.username)
        password = urllib.parse.unquote(parsed.password)
        if ":" in username:
            raise InvalidURI(uri, "username contains a colon")
    return WebSocketURI(secure, parsed.hostname, port, path, query, username, password)

"""The exception tree of rapidws.

Names follow the ``websockets`` library where the concept is the same, so that
code catching ``ConnectionClosedOK`` or ``InvalidStatus`` ports by changing the
import.  Errors are split between the peer's fault (:class:`ProtocolError`,
:class:`InvalidHandshake`) and the local caller's misuse (:class:`InvalidState`,
:class:`ConcurrencyError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from .protocol.frames import Close
    from .protocol.http11 import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
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
]


class WebSocketException(Exception):
    """Base class of every exception raised by rapidws."""


class ConnectionClosed(WebSocketException):
    """The connection is closed; raised by operations that need it open.

    ``code`` and ``reason`` are those of the close frame received from the
    peer (1006 and ``""`` when none arrived); ``sent_code``/``sent_reason``
    those of the frame we sent, if any.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        sent_code: int | None = None,
        sent_reason: str | None = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        self.sent_reason = sent_reason
        super().__init__(code, reason)

    def __str__(self) -> str:
        # As websockets words it: "sent 1011 (internal error) keepalive ping
        # timeout; no close frame received".
        rcvd, sent = self.rcvd, self.sent
        if rcvd is None:
            if sent is None:
                return "no close frame received or sent"
            return f"sent {sent}; no close frame received"
        if sent is None:
            return f"received {rcvd}; no close frame sent"
        return f"received {rcvd}; sent {sent}"

    # websockets 10+ names
    @property
    def rcvd_code(self) -> int:
        return self.code

    @property
    def rcvd(self) -> Close | None:
        """The close frame received, as in ``websockets`` (``None`` if none came)."""
        from .protocol.frames import Close

        return None if self.code == 1006 else Close(self.code, self.reason)

    @property
    def sent(self) -> Close | None:
        """The close frame sent, as in ``websockets`` (``None`` if none went)."""
        from .protocol.frames import Close

        return None if self.sent_code is None else Close(self.sent_code, self.sent_reason or "")


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000 or 1001 both ways)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error or without a close handshake."""


class ProtocolError(WebSocketException):
    """The peer broke RFC 6455; ``code`` is the close code we answer with."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooBig(ProtocolError):
    """A frame or message exceeded ``max_size`` (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class InvalidState(WebSocketException):
    """The local caller did something the connection state forbids."""


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two coroutines used the same connection in a way that cannot work."""


class InvalidURI(WebSocketException):
    """A ws:// or wss:// URI could not be parsed."""

    def __init__(self, uri: str, msg: str) -> None:
        super().__init__(f"{uri} isn't a valid URI: {msg}")
        self.uri = uri
        self.msg = msg


class InvalidHandshake(WebSocketException):
    """The opening handshake failed.

    ``status`` is the HTTP status a server answers with when the fault is
    the client's (400 by default).
    """

    status: int = 400


class SecurityError(InvalidHandshake):
    """A limit on the handshake (header size or count) was exceeded."""

    status = 431


class InvalidMessage(InvalidHandshake):
    """The HTTP request or response could not be parsed."""


class InvalidHeader(InvalidHandshake):
    """A required HTTP header is missing or has a wrong value."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        if value is None:
            text = f"missing {name} header"
        elif value == "":
            text = f"empty {name} header"
        else:
            text = f"invalid {name} header: {value}"
        super().__init__(text)


class InvalidHeaderFormat(InvalidHeader):
    """A header value could not be parsed."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """A header value is syntactically fine but not acceptable."""


class InvalidOrigin(InvalidHeader):
    """The Origin header is not one the server allows (a server answers 403)."""

    status = 403

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """The Upgrade or Connection header does not ask for a WebSocket."""

    status = 426


class InvalidVersion(InvalidHeader):
    """Sec-WebSocket-Version is not 13 (a server answers 426)."""

    status = 426


class NegotiationError(InvalidHandshake):
    """Subprotocol or extension negotiation failed."""


class InvalidStatus(InvalidHandshake):
    """The server rejected the opening handshake with a non-101 status."""

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"server rejected WebSocket connection: HTTP {response.status_code}")


class TLSAlert(InvalidHandshake):
    """The server ended the TLS connection with an alert during the opening handshake.

    With TLS 1.3 the client's TLS handshake completes before the server has
    checked the client's certificate; a refusal arrives as an alert when the
    client reads the HTTP response (``connect`` and ``rapidws.sync.connect``).
    ``alert`` is the alert's name (``"certificate required"``, ``"unknown
    ca"``...); the :class:`ssl.SSLError` is the ``__cause__``.
    """

    def __init__(self, message: str, alert: str) -> None:
        super().__init__(message)
        self.alert = alert

    @classmethod
    def from_ssl_error(cls, cause: ssl.SSLError) -> TLSAlert:
        """The error for ``cause``, raised by a read during the opening handshake."""
        reason = cause.reason or ""
        alert = reason.partition("ALERT_")[2].replace("_", " ").lower()
        if alert == "certificate required":
            message = "the server requires a TLS client certificate and none was sent"
        elif alert in _CERTIFICATE_ALERTS:
            message = "the server refused the TLS client certificate"
        elif alert:
            message = "the server ended the TLS connection during the opening handshake"
        else:
            message = f"TLS failed during the opening handshake: {cause}"
            alert = reason.lower()
        error = cls(f"{message} (TLS alert: {alert})" if alert else message, alert)
        error.__cause__ = cause
        return error


# Alerts that say the server refused the client's certificate (RFC 8446 6.2).
_CERTIFICATE_ALERTS = frozenset(
    (
        "bad certificate",
        "unsupported certificate",
        "certificate revoked",
        "certificate expired",
        "certificate unknown",
        "unknown ca",
        "access denied",
    )
)


class InvalidRedirect(InvalidStatus):
    """The server answered with a redirect the client could not follow."""


def closed_exception(
    code: int, reason: str, sent_code: int | None, sent_reason: str | None
) -> ConnectionClosed:
    """Build ``ConnectionClosedOK`` or ``ConnectionClosedError`` from close codes."""
    ok_codes = (1000, 1001)
    cls: Any = (
        ConnectionClosedOK
        if code in ok_codes and (sent_code is None or sent_code in ok_codes)
        else ConnectionClosedError
    )
    exc: ConnectionClosed = cls(code, reason, sent_code, sent_reason)
    return exc

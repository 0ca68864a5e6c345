"""The server's side of TLS: send the alert when a handshake fails.

When a TLS handshake fails, OpenSSL writes a fatal alert (RFC 8446 6.2)
that says why: ``certificate required``, ``unknown ca``, ``bad
certificate``...  asyncio's TLS protocol (``asyncio.sslproto``, and
uvloop's copy of it) then closes the connection without sending it.  With
TLS 1.3 this hits mutual TLS hard: the client's side of the handshake is
over before the server checks the client's certificate (RFC 8446 4.4.2.4),
so a refused client only sees its connection close when it reads the HTTP
response, and cannot tell a refused certificate from a crash.

:func:`send_alerts` sets a context's ``sslobject_class`` (the class
``SSLContext.wrap_bio`` returns, which these protocols drive) to
:class:`AlertingSSLObject`.  When its handshake fails, it first answers
"want read", the protocol's cue to send what OpenSSL wrote (the alert)
and wait for the peer; the next call raises the failure, and the protocol
closes the connection as before.  The peer, told, closes, or sends more,
which raises the failure: either way the connection ends at once.  A peer
that does neither is closed by the handshake's timeout
(``ssl_handshake_timeout``), as one that stalls mid-handshake.  One line
is logged: ``INFO`` for a refused client certificate, ``DEBUG`` for other
failures (scanners, clients without a common version or cipher).

The handshake's failure only: reads and writes are the ``SSLObject``'s,
so the TLS data path costs the same, on asyncio's loops and on uvloop.
aiofastnet's TLS drives OpenSSL without ``SSLObject``: it does not send
the alert.
"""

from __future__ import annotations

import logging
import ssl

__all__ = ["AlertingSSLObject", "send_alerts"]

logger = logging.getLogger("rapidws")

#: Failures for which OpenSSL writes no alert: the peer is gone or broke the connection.
_NO_ALERT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)

#: OpenSSL's reasons for a client that sent no certificate where one is required.
_NO_CERTIFICATE = frozenset(("PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_REQUIRED"))


class AlertingSSLObject(ssl.SSLObject):
    """An :class:`ssl.SSLObject` whose failed handshake lets the alert out first."""

    _failed = False
    _failure: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self._failed:
            failure = self._failure or ssl.SSLError(ssl.SSL_ERROR_SSL, "the TLS handshake failed")
            # Raised as is once: kept, its traceback would hold this object in a cycle.
            self._failure = None
            raise failure
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, *_NO_ALERT):
            raise
        except ssl.SSLError as exc:
            if not self.server_side:
                raise
            self._failed = True
            self._failure = exc.with_traceback(None)
            # A refused client certificate is news; other failures (scanners,
            # clients without a common version or cipher) are not.
            refused = isinstance(exc, ssl.SSLCertVerificationError) or exc.reason in _NO_CERTIFICATE
            logger.log(
                logging.INFO if refused else logging.DEBUG,
                "TLS handshake failed, alert sent: %s",
                _describe(exc),
            )
            # The protocol sends what OpenSSL wrote, then waits for the peer.
            # errno as OpenSSL's own: Python 3.10's protocol reads it.
            raise ssl.SSLWantReadError(ssl.SSL_ERROR_WANT_READ, "the alert goes out first") from exc


def _describe(exc: ssl.SSLError) -> str:
    """What went wrong, in words: OpenSSL's verification message or its reason."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return (exc.reason or str(exc)).lower().replace("_", " ")


def send_alerts(context: ssl.SSLContext) -> ssl.SSLContext:
    """Make ``context``'s server connections send their alert when the handshake fails.

    A context with an ``sslobject_class`` of its own is left alone.
    """
    if context.sslobject_class is ssl.SSLObject:
        context.sslobject_class = AlertingSSLObject
    return context

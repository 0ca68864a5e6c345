"""TLS contexts for ``wss://``, both roles, with the choices a WebSocket service needs.

:func:`server_context` builds what ``serve(..., ssl=...)`` takes: a
certificate and key, optionally a CA whose clients must (or may) present a
certificate (mutual TLS; the handler sees it as ``ws.peer_certificate``),
and certificates chosen per host name (SNI).  :func:`client_context`
builds what ``connect(..., ssl=...)`` takes: the system's CAs or a CA file,
optionally a client certificate, and verification switched off only on
request, with a warning.  Both use TLS 1.2 or later and offer ALPN
``http/1.1`` (RFC 7301): the WebSocket handshake is HTTP/1.1 (RFC 6455 4.1).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Union

__all__ = ["client_context", "server_context"]

logger = logging.getLogger("rapidws")

PathLike = Union[str, "os.PathLike[str]"]
#: A certificate chain file and its key file (``None``: the key is in the chain file).
CertAndKey = tuple[PathLike, PathLike | None]
ALPN = ["http/1.1"]


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    return context


def server_context(
    certfile: PathLike,
    keyfile: PathLike | None = None,
    *,
    password: str | bytes | None = None,
    client_ca: PathLike | None = None,
    client_cert: str = "required",
    sni: Mapping[str, CertAndKey] | Callable[[str | None], ssl.SSLContext | None] | None = None,
) -> ssl.SSLContext:
    """A server's TLS context.

    ``client_ca``: clients must present a certificate signed by it
    (``client_cert="optional"``: they may); a client without one, or with
    another, fails the TLS handshake.  ``sni``: certificates per host name,
    as a mapping ``{"host": (certfile, keyfile)}`` (other names get
    ``certfile``), or a callable given the name the client asked for that
    returns the context to use (``None``: this one).
    """
    context = _base(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile, password)
    if client_ca is not None:
        if client_cert not in ("required", "optional"):
            raise ValueError(f"client_cert must be 'required' or 'optional', not {client_cert!r}")
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
    if sni is not None:
        if callable(sni):
            choose = sni
        else:
            per_name: dict[str, ssl.SSLContext] = {}
            for name, (cert, key) in sni.items():
                other = _base(ssl.Purpose.CLIENT_AUTH)
                other.load_cert_chain(cert, key, password)
                if client_ca is not None:
                    other.load_verify_locations(client_ca)
                    other.verify_mode = context.verify_mode
                per_name[name.lower()] = other

            def choose(name: str | None) -> ssl.SSLContext | None:
                return None if name is None else per_name.get(name.lower())

        def on_server_name(
            sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext
        ) -> None:
            chosen = choose(name)
            if chosen is not None:
                sslobj.context = chosen

        context.sni_callback = on_server_name
    return context


def client_context(
    *,
    ca: PathLike | None = None,
    certfile: PathLike | None = None,
    keyfile: PathLike | None = None,
    password: str | bytes | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client's TLS context.

    ``ca``: trust this CA file instead of the system's. ``certfile`` (and
    ``keyfile``): the client certificate for mutual TLS. ``verify=False``
    accepts any server certificate and host name: a man in the middle goes
    unnoticed, so it logs a warning; for tests against self-signed servers.
    """
    context = _base(ssl.Purpose.SERVER_AUTH)
    if ca is not None:
        context.load_verify_locations(ca)
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile, password)
    if not verify:
        logger.warning("TLS certificate verification is off: the server is not authenticated")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

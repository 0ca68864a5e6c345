"""HTTP Basic authentication headers (RFC 7617), for the opening handshake."""

from __future__ import annotations

import base64
import binascii
import re

from ..exceptions import InvalidHeaderFormat, InvalidHeaderValue

__all__ = ["build_authorization_basic", "build_www_authenticate_basic", "parse_authorization_basic"]

# RFC 7235 2.1: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
_basic_re = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([A-Za-z0-9._~+/-]+=*)[\t ]*")
_realm_forbidden = re.compile(r'[^\t\x20-\x7e]|["\\]')


def parse_authorization_basic(value: str) -> tuple[str, str]:
    """``(username, password)`` from an ``Authorization: Basic ...`` value.

    Non-UTF-8 bytes become surrogates (RFC 7617 2.1 leaves the charset to
    the server's ``charset="UTF-8"``).  Raise
    :class:`~rapidws.exceptions.InvalidHeaderFormat` if the value is not
    ``scheme token68``, :class:`~rapidws.exceptions.InvalidHeaderValue` if
    the scheme is not Basic or the token is not ``user:password`` in base64.
    """
    match = _basic_re.fullmatch(value)
    if match is None:
        raise InvalidHeaderFormat("Authorization", "expected 'Basic <credentials>'", value, 0)
    scheme, token = match.groups()
    if scheme.lower() != "basic":
        raise InvalidHeaderValue("Authorization", f"unsupported scheme: {scheme}")
    try:
        decoded = base64.b64decode(token.encode(), validate=True).decode("utf-8", "surrogateescape")
    except binascii.Error:
        raise InvalidHeaderValue("Authorization", "credentials are not base64") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise InvalidHeaderValue("Authorization", "credentials have no ':'")
    return username, password


def build_authorization_basic(username: str, password: str) -> str:
    """The ``Authorization`` value for ``username`` and ``password`` (RFC 7617 2)."""
    if ":" in username:
        raise ValueError("a Basic username cannot contain ':'")
    credentials = f"{username}:{password}".encode("utf-8", "surrogateescape")
    return "Basic " + base64.b64encode(credentials).decode()


def build_www_authenticate_basic(realm: str) -> str:
    """The ``WWW-Authenticate`` challenge for ``realm`` (RFC 7617 2, UTF-8 charset)."""
    quoted = _realm_forbidden.sub(lambda m: "\\" + m.group() if m.group() in '"\\' else "", realm)
    return f'Basic realm="{quoted}", charset="UTF-8"'

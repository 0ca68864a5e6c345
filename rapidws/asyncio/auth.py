"""``basic_auth``: HTTP Basic authentication for :func:`~rapidws.serve`, as in websockets."""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..exceptions import InvalidHeader
from ..protocol.auth import build_www_authenticate_basic, parse_authorization_basic
from ..protocol.http11 import Request, Response

__all__ = ["basic_auth"]

CheckCredentials = Callable[[str, str], "Awaitable[bool] | bool"]


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    )


def basic_auth(
    realm: str = "",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: CheckCredentials | None = None,
) -> Callable[[Any, Request], Awaitable[Response | None]]:
    """A ``process_request`` hook that requires HTTP Basic credentials (RFC 7617).

    Give either ``credentials`` (a ``(username, password)`` pair or pairs;
    passwords are compared in constant time) or ``check_credentials(username,
    password)``, a function or coroutine function returning whether they are
    valid.  On success the connection's ``username`` is set; otherwise the
    client gets HTTP 401 with a ``WWW-Authenticate`` challenge for ``realm``.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("provide either credentials or check_credentials")
    if credentials is not None:
        if _is_pair(credentials):
            pairs: list[Any] = [credentials]
        elif isinstance(credentials, Iterable) and not isinstance(credentials, (str, bytes)):
            pairs = list(credentials)
            if not all(_is_pair(pair) for pair in pairs):
                raise TypeError(f"invalid credentials argument: {credentials}")
        else:
            raise TypeError(f"invalid credentials argument: {credentials}")
        known: dict[str, str] = dict(pairs)

        def check_known(username: str, password: str) -> bool:
            expected = known.get(username)
            if expected is None:
                return False
            return hmac.compare_digest(
                expected.encode(errors="surrogateescape"), password.encode(errors="surrogateescape")
            )

        check: CheckCredentials = check_known
    else:
        assert check_credentials is not None
        check = check_credentials
    challenge = build_www_authenticate_basic(realm)

    def unauthorized(connection: Any, text: str) -> Response:
        response: Response = connection.respond(401, text)
        response.headers["WWW-Authenticate"] = challenge
        return response

    async def process_request(connection: Any, request: Request) -> Response | None:
        value = request.headers.get("Authorization")
        if value is None:
            return unauthorized(connection, "Missing credentials\n")
        try:
            username, password = parse_authorization_basic(value)
        except InvalidHeader:
            return unauthorized(connection, "Unsupported credentials\n")
        valid = check(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        if not valid:
            return unauthorized(connection, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request

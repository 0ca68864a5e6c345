"""Sans-I/O opening handshake (RFC 6455 section 4) for servers and clients.

:class:`ServerHandshake` turns a parsed :class:`~rapidws.protocol.http11.Request`
into an :class:`Accept` (a 101 response and the negotiated subprotocol and
extensions) or a :class:`Reject` (an error response and the reason).
:class:`ClientHandshake` builds the request and checks the server's response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from ..exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidUpgrade,
    InvalidVersion,
    NegotiationError,
)
from .extensions.base import ClientExtensionFactory, Extension, ServerExtensionFactory
from .headers import (
    ExtensionHeader,
    Headers,
    HeadersLike,
    build_extension,
    build_subprotocol_list,
    parse_all,
    parse_connection,
    parse_extension,
    parse_subprotocol_list,
    parse_upgrade,
)
from .http11 import Request, Response

__all__ = [
    "Accept",
    "Accepted",
    "ClientHandshake",
    "HeadersLike",
    "Redirect",
    "Reject",
    "Rejected",
    "ServerHandshake",
    "accept_key",
    "generate_key",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


SelectSubprotocol = Callable[[Any, list[str]], "str | None"] | Callable[[list[str]], "str | None"]


def _two_arguments(select: SelectSubprotocol) -> Callable[[Any, list[str]], str | None]:
    """``select_subprotocol`` as websockets calls it, ``(connection, offers)``.

    A callable of one positional parameter (rapidws's older signature) gets
    the offers alone.
    """
    try:
        parameters = inspect.signature(select).parameters.values()
    except (TypeError, ValueError):  # no signature (some builtins): websockets' form
        return select  # type: ignore[return-value]
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    if len(positional) == 1 and not variadic:
        one = cast(Callable[[list[str]], "str | None"], select)
        return lambda connection, offers: one(offers)
    return select  # type: ignore[return-value]


def generate_key() -> str:
    """Return a random ``Sec-WebSocket-Key`` (16 bytes, base64)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value answering ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _single(headers: Headers, name: str) -> str:
    """Return the only value of ``name``; raise InvalidHeader if absent or repeated."""
    values = headers._values(name.lower())
    if not values:
        raise InvalidHeader(name)
    if len(values) > 1:
        raise InvalidHeader(name, "more than one " + name + " header")
    return values[0]


def _require_item(
    headers: Headers, name: str, parse: Callable[[str], list[str]], item: str
) -> None:
    """Require ``item`` (case-insensitive) in the list header ``name``; else InvalidUpgrade."""
    values = headers._values(name.lower())
    if len(values) == 1 and values[0].lower() == item:
        return  # what clients send, checked without the list parser
    items = parse_all(headers, name, parse)
    if not any(value.lower() == item for value in items):
        raise InvalidUpgrade(name, ", ".join(items) if items else None)


def _check_upgrade(headers: Headers) -> None:
    """Require ``Upgrade: websocket`` and ``Connection: upgrade`` (case-insensitive)."""
    _require_item(headers, "Upgrade", parse_upgrade, "websocket")
    _require_item(headers, "Connection", parse_connection, "upgrade")


# -- server --------------------------------------------------------------------


@dataclass(frozen=True)
class Accept:
    """The handshake succeeded: send ``response`` (101) and switch to WebSocket."""

    response: Response
    subprotocol: str | None
    extensions: list[Extension]


@dataclass(frozen=True)
class Reject:
    """The handshake failed: send ``response`` and close the connection."""

    response: Response
    exception: InvalidHandshake


class ServerHandshake:
    """Checks opening handshake requests and negotiates subprotocol and extensions.

    The subprotocol is the first of ``subprotocols`` (server preference) that
    the client offered, or none; with ``require_subprotocol``, a client that
    offers none of them is rejected (400, naming the supported ones).
    ``origins``, if given, lists the ``Origin`` values accepted (strings,
    compiled patterns, ``None`` for no header); others get 403.
    ``select_subprotocol``, if given, replaces that rule: called as
    websockets does, ``select_subprotocol(connection, offers)`` (``connection``
    is what :meth:`accept` was given), or with the offers alone if it takes
    one argument, it returns one of the client's offers (possibly empty) or
    ``None`` (anything else raises :class:`ValueError` from :meth:`accept`);
    it may raise :class:`~rapidws.exceptions.NegotiationError` to reject the
    client (400).
    Each extension offer, in the client's order, goes to the factories of the
    same name until one accepts; later offers of an accepted name are skipped.
    """

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        server_header: str | None = "rapidws",
        select_subprotocol: SelectSubprotocol | None = None,
        require_subprotocol: bool = False,
        origins: Sequence[str | re.Pattern[str] | None] | None = None,
    ) -> None:
        self.subprotocols = list(subprotocols or ())
        build_subprotocol_list(self.subprotocols)  # ValueError if not tokens
        self.extensions = list(extensions or ())
        if server_header is not None:
            Headers()["Server"] = server_header  # ValueError if it cannot be sent
        self.server_header = server_header
        self.select_subprotocol = select_subprotocol
        self._select = None if select_subprotocol is None else _two_arguments(select_subprotocol)
        if require_subprotocol and not self.subprotocols:
            raise ValueError("require_subprotocol needs subprotocols")
        self.require_subprotocol = require_subprotocol
        self.origins = None if origins is None else list(origins)

    def accept(
        self,
        request: Request,
        *,
        subprotocol: str | None = None,
        headers: HeadersLike | None = None,
        connection: Any = None,
    ) -> Accept | Reject:
        """Answer ``request`` with a 101 response or an error response.

        ``subprotocol`` (one the client offered) replaces the negotiated one;
        ``headers`` are added to the 101 response; ``connection`` goes to
        ``select_subprotocol``.
        """
        try:
            accept = self._accept(request, subprotocol, connection)
        except InvalidHandshake as exc:
            return self.fail(exc)
        if headers:
            accept.response.headers.update(Headers(headers))
        return accept

    def redirect(self, status: int, location: str, headers: HeadersLike | None = None) -> Response:
        """Build a redirect (301, 302, 303, 307 or 308) to ``location``."""
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"not a redirect status: {status}")
        extra = Headers(headers or ())
        extra["Location"] = location
        return self.reject(status, f"Moved to {location}", extra)

    def _accept(
        self, request: Request, chosen: str | None = None, connection: Any = None
    ) -> Accept:
        headers = request.headers
        if request.method != "GET":
            exc = InvalidMessage(f"unsupported HTTP method: {request.method}")
            exc.status = 405
            raise exc
        _single(headers, "Host")
        if self.origins is not None:
            self._check_origin(headers)
        _check_upgrade(headers)
        key = _single(headers, "Sec-WebSocket-Key")
        try:
            raw_key = base64.b64decode(key.encode("iso-8859-1"), validate=True)
        except binascii.Error:
            raw_key = b""
        if len(raw_key) != 16:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key)
        versions = headers._values("sec-websocket-version")
        if len(versions) != 1 or versions[0] != "13":
            raise InvalidVersion("Sec-WebSocket-Version", ", ".join(versions) if versions else None)

        if chosen is None:
            subprotocol = self._negotiate_subprotocol(headers, connection)
        else:
            offered = parse_all(headers, "Sec-WebSocket-Protocol", parse_subprotocol_list)
            if chosen not in offered:
                raise ValueError(f"subprotocol {chosen!r} was not offered: {offered}")
            subprotocol = chosen
        extension_headers, extensions = self._negotiate_extensions(headers)

        # Every value here is valid by construction (or checked in __init__).
        response_headers = Headers()
        response_headers._add("Upgrade", "websocket")
        response_headers._add("Connection", "Upgrade")
        response_headers._add("Sec-WebSocket-Accept", accept_key(key))
        if extension_headers:  # build_extension sends tokens only
            response_headers._add("Sec-WebSocket-Extensions", build_extension(extension_headers))
        if subprotocol is not None:
            response_headers._add("Sec-WebSocket-Protocol", subprotocol)
        if self.server_header is not None:
            response_headers._add("Server", self.server_header)
        response = Response(101, "Switching Protocols", response_headers)
        return Accept(response, subprotocol, extensions)

    def _check_origin(self, headers: Headers) -> None:
        """RFC 6455 4.2.2 and 10.2: refuse a page from a site not in ``origins`` (403).

        A browser always sends ``Origin``; ``None`` among ``origins`` lets
        clients that send none (not browsers) in.  Entries are exact strings
        or compiled patterns matched in full.
        """
        values = headers._values("origin")
        if len(values) > 1:
            raise InvalidOrigin(", ".join(values))
        origin = values[0] if values else None
        assert self.origins is not None
        for allowed in self.origins:
            if allowed is None:
                if origin is None:
                    return
            elif origin is not None:
                if isinstance(allowed, str):
                    if origin == allowed:
                        return
                elif allowed.fullmatch(origin):
                    return
        raise InvalidOrigin(origin)

    def _negotiate_subprotocol(self, headers: Headers, connection: Any) -> str | None:
        offered = parse_all(headers, "Sec-WebSocket-Protocol", parse_subprotocol_list)
        if self._select is not None:
            selected = self._select(connection, offered)
            if selected is not None and selected not in offered:
                raise ValueError(f"select_subprotocol returned {selected!r}, not offered")
            return selected
        if offered:
            wanted = set(offered)
            for subprotocol in self.subprotocols:
                if subprotocol in wanted:
                    return subprotocol
        if self.require_subprotocol:
            # RFC 6455 4.2.2: the server may refuse a client whose subprotocols it does not speak.
            shown = ", ".join(offered[:8]) + (", ..." if len(offered) > 8 else "")
            raise NegotiationError(
                f"no supported subprotocol (offered: {shown or 'none'}; "
                f"supported: {', '.join(self.subprotocols)})"
            )
        return None

    def _negotiate_extensions(
        self, headers: Headers
    ) -> tuple[list[ExtensionHeader], list[Extension]]:
        offers = parse_all(headers, "Sec-WebSocket-Extensions", parse_extension)
        extension_headers: list[ExtensionHeader] = []
        accepted: list[Extension] = []
        for name, params in offers:
            if any(name == accepted_name for accepted_name, _ in extension_headers):
                continue
            for factory in self.extensions:
                if factory.name != name:
                    continue
                try:
                    response_params, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                extension_headers.append((name, response_params))
                accepted.append(extension)
                break
        return extension_headers, accepted

    def fail(self, exc: InvalidHandshake) -> Reject:
        """Build the :class:`Reject` answering ``exc`` with status ``exc.status``.

        Also fit for errors of :func:`~rapidws.protocol.http11.parse_request`.
        """
        extra: list[tuple[str, str]] = []
        if isinstance(exc, InvalidUpgrade):
            extra = [("Upgrade", "websocket"), ("Connection", "Upgrade, close")]
        elif isinstance(exc, InvalidVersion):
            extra = [("Sec-WebSocket-Version", "13")]
        elif exc.status == 405:
            extra = [("Allow", "GET")]
        text = f"Failed to open a WebSocket connection: {exc}."
        return Reject(self.reject(exc.status, text, extra), exc)

    def reject(self, status: int, text: str, headers: HeadersLike | None = None) -> Response:
        """Build a plain-text error response, e.g. ``reject(404, "Not Found")``.

        ``headers`` are added to ``Server``, ``Content-Type`` and
        ``Connection: close``, replacing the last two if they set them;
        ``Content-Length`` is always computed.
        """
        body = (text if text.endswith("\n") else text + "\n").encode()
        extra = Headers(headers or ())
        response_headers = Headers()
        if self.server_header is not None:
            response_headers["Server"] = self.server_header
        if "Content-Type" not in extra:
            response_headers["Content-Type"] = "text/plain; charset=utf-8"
        if "Content-Length" in extra:
            del extra["Content-Length"]
        response_headers["Content-Length"] = str(len(body))
        if "Connection" not in extra:
            response_headers["Connection"] = "close"
        response_headers.update(extra)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        return Response(status, phrase, response_headers, body)


# -- client --------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """The server accepted: switch to WebSocket with these negotiated settings."""

    response: Response
    subprotocol: str | None
    extensions: list[Extension]


@dataclass(frozen=True)
class Redirect:
    """The server redirected (301, 302, 303, 307 or 308 with one ``Location``)."""

    status_code: int
    location: str
    response: Response


@dataclass(frozen=True)
class Rejected:
    """The server answered with another status than 101."""

    status_code: int
    response: Response

    @property
    def headers(self) -> Headers:
        return self.response.headers

    @property
    def body(self) -> bytes:
        return self.response.body


class ClientHandshake:
    """Builds an opening handshake request and checks the server's response.

    ``additional_headers`` are added after the WebSocket headers;
    ``User-Agent`` is added last unless they already set it.
    """

    def __init__(
        self,
        *,
        host: str,
        path: str,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        additional_headers: HeadersLike | None = None,
        origin: str | None = None,
        user_agent: str | None = "rapidws",
    ) -> None:
        self.subprotocols = list(subprotocols or ())
        self.extensions = list(extensions or ())
        self.key = generate_key()
        headers = Headers(
            [
                ("Host", host),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", self.key),
                ("Sec-WebSocket-Version", "13"),
            ]
        )
        if origin is not None:
            headers["Origin"] = origin
        if self.extensions:
            offers = [(factory.name, factory.get_request_params()) for factory in self.extensions]
            headers["Sec-WebSocket-Extensions"] = build_extension(offers)
        if self.subprotocols:
            headers["Sec-WebSocket-Protocol"] = build_subprotocol_list(self.subprotocols)
        if additional_headers is not None:
            headers.update(additional_headers)
        if user_agent is not None and "User-Agent" not in headers:
            headers["User-Agent"] = user_agent
        self._request = Request(path, headers)

    @property
    def request(self) -> Request:
        """The request to send."""
        return self._request

    def check(self, response: Response) -> Accepted | Redirect | Rejected:
        """Classify ``response``; for a 101, validate it and negotiate.

        Raise :class:`~rapidws.exceptions.InvalidHeader` (or a subclass) if a
        101 response is invalid and
        :class:`~rapidws.exceptions.NegotiationError` if its subprotocol or
        extensions are not acceptable.
        """
        status = response.status_code
        if status != 101:
            locations = response.headers.get_all("Location")
            if status in REDIRECT_STATUSES and len(locations) == 1:
                return Redirect(status, locations[0], response)
            return Rejected(status, response)
        headers = response.headers
        _check_upgrade(headers)
        accept = _single(headers, "Sec-WebSocket-Accept")
        if accept != accept_key(self.key):
            raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)
        subprotocol = self._check_subprotocol(headers)
        extensions = self._check_extensions(headers)
        return Accepted(response, subprotocol, extensions)

    def _check_subprotocol(self, headers: Headers) -> str | None:
        subprotocols = parse_all(headers, "Sec-WebSocket-Protocol", parse_subprotocol_list)
        if not subprotocols:
            return None
        if len(subprotocols) > 1:
            raise NegotiationError(f"multiple subprotocols: {', '.join(subprotocols)}")
        if subprotocols[0] not in self.subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {subprotocols[0]}")
        return subprotocols[0]

    def _check_extensions(self, headers: Headers) -> list[Extension]:
        accepted: list[Extension] = []
        names: set[str] = set()
        for name, params in parse_all(headers, "Sec-WebSocket-Extensions", parse_extension):
            if name in names:
                raise NegotiationError(f"extension accepted twice: {name}")
            factories = [factory for factory in self.extensions if factory.name == name]
            if not factories:
                raise NegotiationError(f"unexpected extension: {name}")
            for factory in factories:
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError:
                    if factory is factories[-1]:
                        raise
                    continue
                accepted.append(extension)
                names.add(name)
                break
        return accepted

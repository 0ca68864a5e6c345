"""HTTP header storage and the RFC 7230 / RFC 6455 header value grammars.

:class:`Headers` is a case-insensitive multi-dict.  The ``parse_*`` functions
read one header *value*; a header sent on several lines is a single
comma-separated list (RFC 7230 3.2.2), so use :func:`parse_all` to read all of
its lines.  Parsing errors raise
:class:`~rapidws.exceptions.InvalidHeaderFormat`; the ``build_*`` functions
raise :class:`ValueError` on values that cannot be sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from ..exceptions import InvalidHeaderFormat
from .extensions.base import ExtensionParameter

__all__ = [
    "ExtensionHeader",
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "build_extension",
    "build_subprotocol_list",
    "parse_all",
    "parse_connection",
    "parse_extension",
    "parse_subprotocol_list",
    "parse_upgrade",
]

T = TypeVar("T")

#: One element of ``Sec-WebSocket-Extensions``: a name and its parameters.
ExtensionHeader = tuple[str, list[ExtensionParameter]]

_token_re = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# field-value characters: HTAB, SP, VCHAR, obs-text (ISO-8859-1 upper half).
_value_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class MultipleValuesError(KeyError):
    """``headers[name]`` was used on a header that has several values."""

    def __str__(self) -> str:
        return f"multiple values for header {self.args[0]!r}" if self.args else "multiple values"


class Headers:
    """A case-insensitive multi-dict of HTTP headers.

    Names keep their original case and all ``(name, value)`` pairs keep their
    order.  ``h[name] = value`` *appends*; ``h[name]`` returns the only value,
    raising :class:`KeyError` if there is none and :class:`MultipleValuesError`
    if there are several; :meth:`get_all` returns every value.  Iteration and
    ``len()`` cover distinct lower-cased names, while :meth:`items` lists every
    pair.  Values are ``str`` holding ISO-8859-1 text; names must be tokens
    and values may not contain control characters other than tab, which
    blocks header injection (``ValueError`` otherwise).
    """

    __slots__ = ("_dict", "_list")

    def __init__(self, headers: HeadersLike = ()) -> None:
        self._dict: dict[str, list[str]] = {}
        self._list: list[tuple[str, str]] = []
        self.update(headers)

    def __getitem__(self, name: str) -> str:
        values = self._dict[name.lower()]
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def __setitem__(self, name: str, value: str) -> None:
        if not _token_re.fullmatch(name):
            raise ValueError(f"invalid header name: {name!r}")
        if not _value_re.fullmatch(value):
            raise ValueError(f"invalid value for header {name}: {value!r}")
        self._dict.setdefault(name.lower(), []).append(value)
        self._list.append((name, value))

    def _add(self, name: str, value: str) -> None:
        """Append a pair already known to be valid (parsed, or built here)."""
        self._dict.setdefault(name.lower(), []).append(value)
        self._list.append((name, value))

    def _add_pairs(self, pairs: list[tuple[str, str]]) -> None:
        """Append parsed ``(name, value)`` pairs; values lose their surrounding OWS."""
        for name, value in pairs:
            self._add(name, value.strip(" \t"))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        del self._dict[key]
        self._list = [(k, v) for k, v in self._list if k.lower() != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._dict == other._dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"

    def get(self, name: str, default: T | None = None) -> str | T | None:
        """Return the only value of ``name``, or ``default`` if it is absent.

        Raise :class:`MultipleValuesError` if it has several values.
        """
        if name.lower() not in self._dict:
            return default
        return self[name]

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name`` in order (an empty list if absent)."""
        return list(self._dict.get(name.lower(), ()))

    def _values(self, key: str) -> Sequence[str]:
        """Every value of ``key`` (a lower-case name), not copied: do not modify."""
        return self._dict.get(key, ())

    def items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair, with original case, in order."""
        return list(self._list)

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Iterate over every ``(name, value)`` pair (``websockets`` spelling)."""
        return iter(self._list)

    def update(self, headers: HeadersLike = ()) -> None:
        """Append all pairs of another :class:`Headers`, a mapping or an iterable."""
        pairs = headers.items() if isinstance(headers, (Headers, Mapping)) else headers
        for name, value in pairs:
            self[name] = value

    def copy(self) -> Headers:
        """Return an independent copy."""
        new = Headers()
        new._dict = {key: values.copy() for key, values in self._dict.items()}
        new._list = self._list.copy()
        return new

    def serialize(self) -> bytes:
        """Return ``Name: value\\r\\n`` lines followed by the empty line."""
        text = "".join(f"{name}: {value}\r\n" for name, value in self._list)
        return (text + "\r\n").encode("iso-8859-1")


#: Anything :class:`Headers` can be built from.
HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


# -- value grammars ------------------------------------------------------------

_ows_re = re.compile(r"[\t ]*")
_quoted_re = re.compile(r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"')
_unescape_re = re.compile(r"\\(.)")
_protocol_re = re.compile(_token_re.pattern + r"(?:/" + _token_re.pattern + r")?")

_Item = Callable[[str, int, str], tuple[T, int]]


def _skip_ows(header: str, pos: int) -> int:
    match = _ows_re.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _match(
    pattern: re.Pattern[str], what: str, header: str, pos: int, name: str
) -> tuple[str, int]:
    match = pattern.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, f"expected {what}", header, pos)
    return match.group(), match.end()


def _token(header: str, pos: int, name: str) -> tuple[str, int]:
    return _match(_token_re, "token", header, pos, name)


def _protocol(header: str, pos: int, name: str) -> tuple[str, int]:
    return _match(_protocol_re, "protocol", header, pos, name)


def _parse_list(item: _Item[T], header: str, name: str) -> list[T]:
    """Parse ``#item``: a comma list where empty elements are ignored."""
    items: list[T] = []
    pos = _skip_ows(header, 0)
    while pos < len(header):
        if header[pos] != ",":
            value, pos = item(header, pos, name)
            items.append(value)
            pos = _skip_ows(header, pos)
            if pos == len(header):
                break
            if header[pos] != ",":
                raise InvalidHeaderFormat(name, "expected comma", header, pos)
        pos = _skip_ows(header, pos + 1)
    return items


def parse_connection(value: str) -> list[str]:
    """Parse a ``Connection`` value into its option tokens."""
    return _parse_list(_token, value, "Connection")


def parse_upgrade(value: str) -> list[str]:
    """Parse an ``Upgrade`` value into protocols such as ``websocket``, ``h2c/1.0``."""
    return _parse_list(_protocol, value, "Upgrade")


def parse_subprotocol_list(value: str) -> list[str]:
    """Parse a ``Sec-WebSocket-Protocol`` value into subprotocol tokens."""
    return _parse_list(_token, value, "Sec-WebSocket-Protocol")


def _extension_param(header: str, pos: int, name: str) -> tuple[ExtensionParameter, int]:
    param, pos = _token(header, pos, name)
    pos = _skip_ows(header, pos)
    if pos == len(header) or header[pos] != "=":
        return (param, None), pos
    pos = _skip_ows(header, pos + 1)
    if header.startswith('"', pos):
        start = pos
        quoted, pos = _match(_quoted_re, "quoted string", header, pos, name)
        value = _unescape_re.sub(r"\1", quoted[1:-1])
        if not _token_re.fullmatch(value):  # RFC 6455 9.1
            raise InvalidHeaderFormat(name, "expected token in quoted string", header, start)
    else:
        value, pos = _token(header, pos, name)
    return (param, value), pos


def _extension(header: str, pos: int, name: str) -> tuple[ExtensionHeader, int]:
    extension, pos = _token(header, pos, name)
    params: list[ExtensionParameter] = []
    pos = _skip_ows(header, pos)
    while header.startswith(";", pos):
        param, pos = _extension_param(header, _skip_ows(header, pos + 1), name)
        params.append(param)
        pos = _skip_ows(header, pos)
    return (extension, params), pos


def parse_extension(value: str) -> list[ExtensionHeader]:
    """Parse ``Sec-WebSocket-Extensions`` into ``(name, [(param, value), ...])``.

    Parameter values may be tokens or quoted strings, which are unquoted; a
    parameter without ``=`` has the value ``None``.
    """
    return _parse_list(_extension, value, "Sec-WebSocket-Extensions")


def _check_token(value: str, what: str) -> str:
    if not _token_re.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def build_extension(extensions: Sequence[ExtensionHeader]) -> str:
    """Serialize a ``Sec-WebSocket-Extensions`` value (parameter values as tokens)."""
    return ", ".join(
        _check_token(name, "extension name")
        + "".join(
            f"; {_check_token(param, 'extension parameter')}"
            + ("" if value is None else f"={_check_token(value, 'extension parameter value')}")
            for param, value in params
        )
        for name, params in extensions
    )


def build_subprotocol_list(subprotocols: Sequence[str]) -> str:
    """Serialize a ``Sec-WebSocket-Protocol`` value."""
    return ", ".join(_check_token(subprotocol, "subprotocol") for subprotocol in subprotocols)


def parse_all(headers: Headers, name: str, parse: Callable[[str], list[T]]) -> list[T]:
    """Parse every line of header ``name`` with ``parse`` and return one list.

    E.g. ``parse_all(request.headers, "Sec-WebSocket-Extensions", parse_extension)``.
    """
    return [item for value in headers._values(name.lower()) for item in parse(value)]

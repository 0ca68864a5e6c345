from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rapidws.exceptions import InvalidHeader, InvalidHeaderFormat
from rapidws.protocol.headers import (
    ExtensionHeader,
    Headers,
    MultipleValuesError,
    build_extension,
    build_subprotocol_list,
    parse_all,
    parse_connection,
    parse_extension,
    parse_subprotocol_list,
    parse_upgrade,
)

# -- Headers -------------------------------------------------------------------


def make() -> Headers:
    return Headers([("Host", "example.com"), ("X-Multi", "a"), ("x-multi", "b")])


def test_constructors() -> None:
    assert len(Headers()) == 0
    assert Headers({"A": "1", "B": "2"}).items() == [("A", "1"), ("B", "2")]
    assert Headers([("A", "1"), ("a", "2")]).get_all("A") == ["1", "2"]
    copied = Headers(make())
    assert copied == make()
    assert copied.items() == make().items()


def test_getitem_case_insensitive() -> None:
    h = make()
    assert h["host"] == h["HOST"] == "example.com"


def test_getitem_missing() -> None:
    with pytest.raises(KeyError):
        make()["Missing"]


def test_getitem_multiple_values() -> None:
    with pytest.raises(MultipleValuesError) as exc_info:
        make()["X-MULTI"]
    assert isinstance(exc_info.value, KeyError)
    assert "X-MULTI" in str(exc_info.value)


def test_setitem_appends() -> None:
    h = Headers()
    h["A"] = "1"
    h["a"] = "2"
    assert h.get_all("A") == ["1", "2"]
    assert h.items() == [("A", "1"), ("a", "2")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X", "a\r\nInjected: yes"),
        ("X", "a\nb"),
        ("X", "a\x00b"),
        ("X", "\u0100"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
    ],
)
def test_setitem_rejects_unsafe(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers()[name] = value


def test_setitem_accepts_tab_and_latin1() -> None:
    h = Headers()
    h["X"] = "a\tb \xe9"
    assert h.serialize() == b"X: a\tb \xe9\r\n\r\n"


def test_delitem_removes_all() -> None:
    h = make()
    del h["x-MULTI"]
    assert "X-Multi" not in h
    assert h.items() == [("Host", "example.com")]
    with pytest.raises(KeyError):
        del h["x-multi"]


def test_get() -> None:
    h = make()
    assert h.get("host") == "example.com"
    assert h.get("missing") is None
    assert h.get("missing", "dflt") == "dflt"
    with pytest.raises(MultipleValuesError):
        h.get("x-multi")


def test_get_all() -> None:
    h = make()
    assert h.get_all("X-MULTI") == ["a", "b"]
    assert h.get_all("missing") == []
    h.get_all("x-multi").append("c")  # a copy
    assert h.get_all("x-multi") == ["a", "b"]


def test_contains_iter_len() -> None:
    h = make()
    assert "HOST" in h
    assert "x-multi" in h
    assert "other" not in h
    assert 42 not in h
    assert list(h) == ["host", "x-multi"]
    assert len(h) == 2


def test_items_and_raw_items() -> None:
    pairs = [("Host", "example.com"), ("X-Multi", "a"), ("x-multi", "b")]
    assert make().items() == pairs
    assert list(make().raw_items()) == pairs


def test_update() -> None:
    h = Headers([("A", "1")])
    h.update({"B": "2"})
    h.update([("a", "3")])
    h.update(Headers([("C", "4"), ("c", "5")]))
    assert h.items() == [("A", "1"), ("B", "2"), ("a", "3"), ("C", "4"), ("c", "5")]


def test_copy_is_independent() -> None:
    h = make()
    c = h.copy()
    c["X-Multi"] = "c"
    c["New"] = "n"
    assert h.get_all("x-multi") == ["a", "b"]
    assert "New" not in h
    assert c.get_all("x-multi") == ["a", "b", "c"]


def test_eq() -> None:
    assert Headers([("A", "1")]) == Headers([("a", "1")])
    assert Headers([("A", "1")]) != Headers([("A", "2")])
    assert Headers([("A", "1"), ("A", "2")]) != Headers([("A", "2"), ("A", "1")])
    assert Headers() != {}


def test_repr() -> None:
    assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"


def test_serialize() -> None:
    assert make().serialize() == b"Host: example.com\r\nX-Multi: a\r\nx-multi: b\r\n\r\n"
    assert Headers().serialize() == b"\r\n"


# -- value grammars ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Upgrade", ["Upgrade"]),
        ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        ("keep-alive,Upgrade", ["keep-alive", "Upgrade"]),
        ("  upgrade  ", ["upgrade"]),
        ("\tupgrade\t,\tclose", ["upgrade", "close"]),
        ("", []),
        (",", []),
        (", ,", []),
        ("a,,b", ["a", "b"]),
        (", a ,, b ,", ["a", "b"]),
    ],
)
def test_parse_connection(value: str, expected: list[str]) -> None:
    assert parse_connection(value) == expected


@pytest.mark.parametrize(
    ("value", "pos"),
    [
        ("a b", 2),
        ("up;grade", 2),
        ("a, @", 3),
        ('"quoted"', 0),
        ("a/b", 1),
    ],
)
def test_parse_connection_invalid(value: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_connection(value)
    assert exc_info.value.name == "Connection"
    assert f"at {pos} in" in str(exc_info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("websocket", ["websocket"]),
        ("WebSocket", ["WebSocket"]),
        ("h2c/1.0, websocket", ["h2c/1.0", "websocket"]),
        ("HTTP/2.0,SHTTP/1.3, IRC/6.9, RTA/x11", ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"]),
        (" , websocket , ", ["websocket"]),
    ],
)
def test_parse_upgrade(value: str, expected: list[str]) -> None:
    assert parse_upgrade(value) == expected


@pytest.mark.parametrize("value", ["web socket", "h2c/", "/1.0", "a/b/c", "websocket;"])
def test_parse_upgrade_invalid(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_upgrade(value)
    assert exc_info.value.name == "Upgrade"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("foo", [("foo", [])]),
        ("foo, bar", [("foo", []), ("bar", [])]),
        ("foo; a", [("foo", [("a", None)])]),
        ("foo;a=1;b", [("foo", [("a", "1"), ("b", None)])]),
        ("foo ; a = 1 ; b = 2", [("foo", [("a", "1"), ("b", "2")])]),
        ('foo; a="1"', [("foo", [("a", "1")])]),
        ('foo; a="x\\yz"', [("foo", [("a", "xyz")])]),
        (
            "permessage-deflate; client_max_window_bits, permessage-deflate",
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("permessage-deflate", []),
            ],
        ),
        (",foo,, bar;x=y ,", [("foo", []), ("bar", [("x", "y")])]),
        ("", []),
    ],
)
def test_parse_extension(value: str, expected: list[ExtensionHeader]) -> None:
    assert parse_extension(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "foo;",
        "foo; =1",
        "foo; a=",
        "foo; a=@",
        'foo; a="1 2"',  # quoted value must be a token once unquoted
        'foo; a=""',
        'foo; a="unterminated',
        "foo bar",
        "foo; a=1 b",
        ";a=1",
    ],
)
def test_parse_extension_invalid(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_extension(value)
    assert exc_info.value.name == "Sec-WebSocket-Extensions"
    assert exc_info.value.status == 400


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        ([], ""),
        ([("foo", [])], "foo"),
        ([("foo", [("a", None), ("b", "1")]), ("bar", [])], "foo; a; b=1, bar"),
    ],
)
def test_build_extension(extensions: list[ExtensionHeader], expected: str) -> None:
    assert build_extension(extensions) == expected
    assert parse_extension(expected) == extensions


@pytest.mark.parametrize(
    "extensions",
    [
        [("foo bar", [])],
        [("foo", [("a b", None)])],
        [("foo", [("a", "1 2")])],
        [("foo", [("a", "")])],
    ],
)
def test_build_extension_invalid(extensions: list[ExtensionHeader]) -> None:
    with pytest.raises(ValueError):
        build_extension(extensions)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("chat", ["chat"]),
        ("chat, superchat", ["chat", "superchat"]),
        ("v1.json.api,v2", ["v1.json.api", "v2"]),
        (" , chat,", ["chat"]),
    ],
)
def test_parse_subprotocol_list(value: str, expected: list[str]) -> None:
    assert parse_subprotocol_list(value) == expected


@pytest.mark.parametrize("value", ["chat super", "chat;v=1", "a/b", '"chat"'])
def test_parse_subprotocol_list_invalid(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_subprotocol_list(value)
    assert exc_info.value.name == "Sec-WebSocket-Protocol"


def test_build_subprotocol_list() -> None:
    assert build_subprotocol_list(["chat", "superchat"]) == "chat, superchat"
    with pytest.raises(ValueError):
        build_subprotocol_list(["bad proto"])


def test_invalid_header_format_is_invalid_header() -> None:
    with pytest.raises(InvalidHeader):
        parse_connection("a b")


@pytest.mark.parametrize(
    ("name", "parse", "lines", "expected"),
    [
        ("Connection", parse_connection, ["keep-alive", "Upgrade"], ["keep-alive", "Upgrade"]),
        (
            "Sec-WebSocket-Extensions",
            parse_extension,
            ["a; x=1, b", "c"],
            [("a", [("x", "1")]), ("b", []), ("c", [])],
        ),
        ("Sec-WebSocket-Protocol", parse_subprotocol_list, ["a, b", "", "c"], ["a", "b", "c"]),
        ("Sec-WebSocket-Protocol", parse_subprotocol_list, [], []),
    ],
)
def test_parse_all(
    name: str, parse: Callable[[str], list[Any]], lines: list[str], expected: list[Any]
) -> None:
    headers = Headers([("Other", "x")] + [(name.upper(), line) for line in lines])
    assert parse_all(headers, name, parse) == expected


def test_parse_all_invalid_line() -> None:
    headers = Headers([("Connection", "upgrade"), ("Connection", "bad value")])
    with pytest.raises(InvalidHeaderFormat):
        parse_all(headers, "Connection", parse_connection)

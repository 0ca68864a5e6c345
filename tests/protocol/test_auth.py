"""HTTP Basic authentication headers (RFC 7617)."""

from __future__ import annotations

import pytest

from rapidws.exceptions import InvalidHeaderFormat, InvalidHeaderValue
from rapidws.protocol.auth import (
    build_authorization_basic,
    build_www_authenticate_basic,
    parse_authorization_basic,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),  # RFC 7617 2
        ("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),  # scheme: any case
        ("BASIC YTo=", ("a", "")),  # empty password
        ("Basic OnA=", ("", "p")),  # empty user
        ("Basic YTpiOmM=", ("a", "b:c")),  # the first colon splits
        ("Basic dGVzdDoxMjPCow==", ("test", "123\u00a3")),  # RFC 7617 2.1's UTF-8 example
        ("Basic YTr/", ("a", "\udcff")),  # not UTF-8: a surrogate
    ],
)
def test_parse_authorization_basic(value: str, expected: tuple[str, str]) -> None:
    assert parse_authorization_basic(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", InvalidHeaderFormat),
        ("Basic", InvalidHeaderFormat),
        ("Basic ", InvalidHeaderFormat),
        ("Basic a b", InvalidHeaderFormat),
        ("Bearer abc", InvalidHeaderValue),
        ("Basic !!!", InvalidHeaderFormat),
        ("Basic YWJj", InvalidHeaderValue),  # "abc": no colon
        ("Basic YQ", InvalidHeaderValue),  # bad padding
    ],
)
def test_parse_authorization_basic_refuses(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_authorization_basic(value)


def test_build_round_trips() -> None:
    value = build_authorization_basic("Aladdin", "open sesame")
    assert value == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert parse_authorization_basic(value) == ("Aladdin", "open sesame")
    with pytest.raises(ValueError):
        build_authorization_basic("a:b", "c")


@pytest.mark.parametrize(
    ("realm", "expected"),
    [
        ("", 'Basic realm="", charset="UTF-8"'),
        ("my server", 'Basic realm="my server", charset="UTF-8"'),
        ('say "hi"\\', 'Basic realm="say \\"hi\\"\\\\", charset="UTF-8"'),
        ("bad\r\nX-Injected: 1", 'Basic realm="badX-Injected: 1", charset="UTF-8"'),
    ],
)
def test_www_authenticate(realm: str, expected: str) -> None:
    assert build_www_authenticate_basic(realm) == expected

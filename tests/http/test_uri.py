from __future__ import annotations

import pytest

from rapidws.exceptions import InvalidURI
from rapidws.http.uri import parse_uri


@pytest.mark.parametrize(
    ("uri", "secure", "host", "port", "resource", "host_header"),
    [
        ("ws://example.com", False, "example.com", 80, "/", "example.com"),
        ("wss://example.com/a/b?x=1", True, "example.com", 443, "/a/b?x=1", "example.com"),
        ("ws://example.com:8080/", False, "example.com", 8080, "/", "example.com:8080"),
        ("wss://example.com:443/", True, "example.com", 443, "/", "example.com"),
        ("ws://[::1]:9000/p", False, "::1", 9000, "/p", "[::1]:9000"),
        ("ws://h/caf\u00e9", False, "h", 80, "/caf%C3%A9", "h"),
    ],
)
def test_parse_uri(
    uri: str, secure: bool, host: str, port: int, resource: str, host_header: str
) -> None:
    parsed = parse_uri(uri)
    assert (parsed.secure, parsed.host, parsed.port) == (secure, host, port)
    assert parsed.resource_name == resource
    assert parsed.host_header == host_header


def test_user_info() -> None:
    parsed = parse_uri("ws://user:p%40ss@host/")
    assert (parsed.username, parsed.password) == ("user", "p@ss")


@pytest.mark.parametrize(
    "uri", ["http://h/", "ws:///path", "ws://h/#frag", "ws://h:70000/", "h:80"]
)
def test_invalid(uri: str) -> None:
    with pytest.raises(InvalidURI):
        parse_uri(uri)

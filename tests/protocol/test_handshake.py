from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from rapidws.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidUpgrade,
    InvalidVersion,
    NegotiationError,
    SecurityError,
)
from rapidws.protocol.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)
from rapidws.protocol.handshake import (
    Accept,
    Accepted,
    ClientHandshake,
    Redirect,
    Reject,
    Rejected,
    ServerHandshake,
    accept_key,
    generate_key,
)
from rapidws.protocol.headers import Headers, parse_connection
from rapidws.protocol.http11 import (
    Request,
    RequestParser,
    Response,
    parse_request,
    parse_response,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
# RFC 6455 section 1.3 example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
FRAME = b"\x81\x85\x00\x00\x00\x00hello"

# -- dummy extensions ----------------------------------------------------------


class DummyExtension(Extension):
    def __init__(self, name: str, params: Sequence[ExtensionParameter], factory: object) -> None:
        self.name = name
        self.params = list(params)
        self.factory = factory

    def __repr__(self) -> str:
        return f"DummyExtension({self.name!r}, {self.params!r})"


class DummyServerFactory(ServerExtensionFactory):
    """Accepts offers unless they carry a ``decline`` parameter; echoes params."""

    def __init__(self, name: str = "x-dummy", *, decline_all: bool = False) -> None:
        self.name = name
        self.decline_all = decline_all
        self.seen_accepted: list[list[Extension]] = []

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        self.seen_accepted.append(list(accepted))
        if self.decline_all or ("decline", None) in params:
            raise NegotiationError(f"{self.name} declined")
        return list(params), DummyExtension(self.name, params, self)


class DummyClientFactory(ClientExtensionFactory):
    """Offers ``params``; refuses answers carrying a ``bad`` parameter."""

    def __init__(
        self, name: str = "x-dummy", params: Sequence[ExtensionParameter] = (), *, tag: str = ""
    ) -> None:
        self.name = name
        self.params = list(params)
        self.tag = tag

    def get_request_params(self) -> list[ExtensionParameter]:
        return list(self.params)

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> Extension:
        if ("bad", None) in params or (self.tag, None) in params:
            raise NegotiationError(f"{self.name} refused {params}")
        return DummyExtension(self.name, params, self)


# -- keys ----------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    assert accept_key(KEY) == ACCEPT


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16


# -- server: helpers -----------------------------------------------------------

VALID_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def make_request(
    drop: Iterable[str] = (),
    add: Iterable[tuple[str, str]] = (),
    method: str = "GET",
) -> Request:
    """A valid request, minus headers named in ``drop``, plus ``add``."""
    dropped = {name.lower() for name in drop}
    headers = Headers([(k, v) for k, v in VALID_HEADERS if k.lower() not in dropped])
    headers.update(list(add))
    return Request("/chat", headers, method)


def accept(request: Request, **kwargs: Any) -> Accept:
    result = ServerHandshake(**kwargs).accept(request)
    assert isinstance(result, Accept), result
    return result


def reject(request: Request, **kwargs: Any) -> Reject:
    result = ServerHandshake(**kwargs).accept(request)
    assert isinstance(result, Reject), result
    return result


def replace(name: str, *values: str) -> dict[str, Any]:
    return {"drop": [name], "add": [(name, value) for value in values]}


# -- server: accept ------------------------------------------------------------


def test_server_accepts_rfc_example() -> None:
    result = accept(make_request())
    response = result.response
    assert (response.status_code, response.reason_phrase, response.body) == (
        101,
        "Switching Protocols",
        b"",
    )
    assert response.headers.items() == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
        ("Server", "rapidws"),
    ]
    assert result.subprotocol is None
    assert result.extensions == []


def test_server_header_optional() -> None:
    assert "Server" not in accept(make_request(), server_header=None).response.headers
    assert accept(make_request(), server_header="x/1").response.headers["Server"] == "x/1"


@pytest.mark.parametrize(
    "changes",
    [
        replace("Upgrade", "WebSocket"),
        replace("Upgrade", "WEBSOCKET"),
        replace("Upgrade", "h2c, websocket"),
        replace("Upgrade", "h2c/1.0", "websocket"),
        replace("Connection", "upgrade"),
        replace("Connection", "keep-alive, Upgrade"),
        replace("Connection", "Upgrade, HTTP2-Settings"),
        replace("Connection", "keep-alive", "UPGRADE"),
        replace("Connection", ", upgrade ,"),
        replace("Host", ""),
        replace("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
        {"add": [("Origin", "https://example.com"), ("X-Other", "1")]},
    ],
)
def test_server_accepts_variants(changes: dict[str, Any]) -> None:
    accept(make_request(**changes))


# -- server: reject ------------------------------------------------------------

REJECTIONS: list[tuple[str, dict[str, Any], int, type[InvalidHandshake]]] = [
    ("POST method", {"method": "POST"}, 405, InvalidMessage),
    ("HEAD method", {"method": "HEAD"}, 405, InvalidMessage),
    ("missing Host", {"drop": ["Host"]}, 400, InvalidHeader),
    ("two Host", {"add": [("Host", "other")]}, 400, InvalidHeader),
    ("missing Upgrade", {"drop": ["Upgrade"]}, 426, InvalidUpgrade),
    ("Upgrade h2c", replace("Upgrade", "h2c"), 426, InvalidUpgrade),
    ("Upgrade websocket/13", replace("Upgrade", "websocket/13"), 426, InvalidUpgrade),
    ("Upgrade empty", replace("Upgrade", ""), 426, InvalidUpgrade),
    ("Upgrade malformed", replace("Upgrade", "web socket"), 400, InvalidHeaderFormat),
    ("missing Connection", {"drop": ["Connection"]}, 426, InvalidUpgrade),
    ("Connection keep-alive", replace("Connection", "keep-alive"), 426, InvalidUpgrade),
    ("Connection malformed", replace("Connection", "up grade"), 400, InvalidHeaderFormat),
    ("missing key", {"drop": ["Sec-WebSocket-Key"]}, 400, InvalidHeader),
    ("two keys", {"add": [("Sec-WebSocket-Key", KEY)]}, 400, InvalidHeader),
    ("key not base64", replace("Sec-WebSocket-Key", "not base64 at all!!!!!=="), 400,
     InvalidHeaderValue),
    ("key 15 bytes", replace("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode()), 400,
     InvalidHeaderValue),
    ("key 17 bytes", replace("Sec-WebSocket-Key", base64.b64encode(b"x" * 17).decode()), 400,
     InvalidHeaderValue),
    ("key unpadded", replace("Sec-WebSocket-Key", KEY.rstrip("=")), 400, InvalidHeaderValue),
    ("key empty", replace("Sec-WebSocket-Key", ""), 400, InvalidHeaderValue),
    ("key with comma", replace("Sec-WebSocket-Key", f"{KEY}, {KEY}"), 400, InvalidHeaderValue),
    ("missing version", {"drop": ["Sec-WebSocket-Version"]}, 426, InvalidVersion),
    ("version 8", replace("Sec-WebSocket-Version", "8"), 426, InvalidVersion),
    ("version list", replace("Sec-WebSocket-Version", "13, 8"), 426, InvalidVersion),
    ("version twice", {"add": [("Sec-WebSocket-Version", "13")]}, 426, InvalidVersion),
    ("version 013", replace("Sec-WebSocket-Version", "013"), 426, InvalidVersion),
    ("protocol malformed", {"add": [("Sec-WebSocket-Protocol", "a b")]}, 400,
     InvalidHeaderFormat),
    ("extensions malformed", {"add": [("Sec-WebSocket-Extensions", "x;")]}, 400,
     InvalidHeaderFormat),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "status", "exc_type"),
    [pytest.param(changes, status, exc, id=name) for name, changes, status, exc in REJECTIONS],
)
def test_server_rejects(
    changes: dict[str, Any], status: int, exc_type: type[InvalidHandshake]
) -> None:
    result = reject(make_request(**changes))
    assert type(result.exception) is exc_type
    assert result.exception.status == status
    response = result.response
    assert response.status_code == status
    assert response.reason_phrase
    headers = response.headers
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == str(len(response.body))
    assert "close" in [option.lower() for option in parse_connection(headers["Connection"])]
    assert headers["Server"] == "rapidws"
    assert response.body.endswith(b"\n")
    assert str(result.exception).encode() in response.body
    assert "Sec-WebSocket-Accept" not in headers


def test_server_reject_405_has_allow() -> None:
    response = reject(make_request(method="PUT")).response
    assert response.headers["Allow"] == "GET"
    assert response.reason_phrase == "Method Not Allowed"


def test_server_reject_426_upgrade_headers() -> None:
    response = reject(make_request(drop=["Upgrade"])).response
    assert response.reason_phrase == "Upgrade Required"
    assert response.headers["Upgrade"] == "websocket"
    options = [option.lower() for option in parse_connection(response.headers["Connection"])]
    assert options == ["upgrade", "close"]


def test_server_reject_426_version_header() -> None:
    response = reject(make_request(**replace("Sec-WebSocket-Version", "8"))).response
    assert response.headers["Sec-WebSocket-Version"] == "13"
    assert "Upgrade" not in response.headers


def test_server_reject_body_text() -> None:
    response = reject(make_request(drop=["Sec-WebSocket-Key"])).response
    assert response.body == (
        b"Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.\n"
    )


def test_server_reject_serializes() -> None:
    response = reject(make_request(drop=["Host"])).response
    parsed = parse_response(response.serialize())
    assert parsed is not None
    assert parsed[0] == response


# -- server: reject() and fail() helpers ---------------------------------------


def test_reject_helper() -> None:
    response = ServerHandshake().reject(404, "Not Found")
    assert (response.status_code, response.reason_phrase, response.body) == (
        404,
        "Not Found",
        b"Not Found\n",
    )
    assert response.headers.items() == [
        ("Server", "rapidws"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "10"),
        ("Connection", "close"),
    ]


def test_reject_helper_options() -> None:
    handshake = ServerHandshake(server_header=None)
    response = handshake.reject(
        599,
        "custom\n",
        {"Content-Type": "text/html", "Content-Length": "999", "X-Extra": "1"},
    )
    assert response.reason_phrase == ""
    assert response.body == b"custom\n"
    assert response.headers.items() == [
        ("Content-Length", "7"),
        ("Connection", "close"),
        ("Content-Type", "text/html"),
        ("X-Extra", "1"),
    ]
    response = handshake.reject(503, "busy", [("Connection", "close"), ("Retry-After", "5")])
    assert response.headers.get_all("Connection") == ["close"]


def test_reject_helper_utf8() -> None:
    response = ServerHandshake().reject(400, "caf\xe9 \u2615")
    assert response.body == "caf\xe9 \u2615\n".encode()
    assert response.headers["Content-Length"] == str(len(response.body))


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000, 414),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200, 431),
        (b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n", 400),
    ],
)
def test_fail_for_parse_errors(data: bytes, status: int) -> None:
    with pytest.raises(InvalidHandshake) as exc_info:
        parse_request(data)
    result = ServerHandshake().fail(exc_info.value)
    assert result.exception is exc_info.value
    assert result.response.status_code == status


def test_fail_security_error() -> None:
    assert ServerHandshake().fail(SecurityError("x")).response.status_code == 431


# -- server: subprotocols ------------------------------------------------------


@pytest.mark.parametrize(
    ("supported", "offered", "expected"),
    [
        (["chat", "superchat"], ["superchat, chat"], "chat"),
        (["superchat", "chat"], ["chat, superchat"], "superchat"),
        (["chat"], [], None),
        ([], ["chat"], None),
        (["a", "b"], ["c"], None),
        (["a", "b"], ["c", "b"], "b"),  # several header lines
        (["a", "b"], ["c,", ", b"], "b"),
        (["Chat"], ["chat"], None),  # case-sensitive
    ],
)
def test_server_subprotocol(supported: list[str], offered: list[str], expected: str | None) -> None:
    request = make_request(add=[("Sec-WebSocket-Protocol", line) for line in offered])
    result = accept(request, subprotocols=supported)
    assert result.subprotocol == expected
    if expected is None:
        assert "Sec-WebSocket-Protocol" not in result.response.headers
    else:
        assert result.response.headers["Sec-WebSocket-Protocol"] == expected


def test_server_select_subprotocol_override() -> None:
    calls: list[list[str]] = []

    def select(offered: list[str]) -> str | None:
        calls.append(offered)
        return offered[-1] if offered else None

    request = make_request(
        add=[("Sec-WebSocket-Protocol", "a, b"), ("Sec-WebSocket-Protocol", "c")]
    )
    result = accept(request, subprotocols=["a"], select_subprotocol=select)
    assert result.subprotocol == "c"
    assert result.response.headers["Sec-WebSocket-Protocol"] == "c"
    assert calls == [["a", "b", "c"]]
    assert accept(make_request(), select_subprotocol=select).subprotocol is None
    assert calls[-1] == []


def test_server_select_subprotocol_can_reject() -> None:
    def select(offered: list[str]) -> str | None:
        raise NegotiationError("a subprotocol is required")

    result = reject(make_request(), select_subprotocol=select)
    assert isinstance(result.exception, NegotiationError)
    assert result.response.status_code == 400


def test_server_select_subprotocol_must_pick_offered() -> None:
    handshake = ServerHandshake(select_subprotocol=lambda offered: "other")
    with pytest.raises(ValueError):
        handshake.accept(make_request(add=[("Sec-WebSocket-Protocol", "chat")]))


def test_server_subprotocols_must_be_tokens() -> None:
    with pytest.raises(ValueError):
        ServerHandshake(subprotocols=["bad proto"])


# -- server: extensions --------------------------------------------------------


def offer(*lines: str) -> Request:
    return make_request(add=[("Sec-WebSocket-Extensions", line) for line in lines])


@pytest.mark.parametrize(
    ("factories", "lines", "expected_header", "expected"),
    [
        ([], ["x-dummy"], None, []),
        ([DummyServerFactory()], [], None, []),
        ([DummyServerFactory()], ["x-dummy"], "x-dummy", [("x-dummy", [])]),
        (
            [DummyServerFactory()],
            ['x-dummy; a=1; b; c="2"'],
            "x-dummy; a=1; b; c=2",
            [("x-dummy", [("a", "1"), ("b", None), ("c", "2")])],
        ),
        # declined offer, next offer of the same extension accepted
        (
            [DummyServerFactory()],
            ["x-dummy; decline, x-dummy; b"],
            "x-dummy; b",
            [("x-dummy", [("b", None)])],
        ),
        # first accepted offer wins; later offers of the same name skipped
        (
            [DummyServerFactory()],
            ["x-dummy; a, x-dummy; b"],
            "x-dummy; a",
            [("x-dummy", [("a", None)])],
        ),
        # unknown extension ignored
        ([DummyServerFactory()], ["x-other, x-dummy"], "x-dummy", [("x-dummy", [])]),
        # client order, across several header lines
        (
            [DummyServerFactory("x-b"), DummyServerFactory("x-a")],
            ["x-a; p=1", "x-b"],
            "x-a; p=1, x-b",
            [("x-a", [("p", "1")]), ("x-b", [])],
        ),
        # all offers declined
        ([DummyServerFactory()], ["x-dummy; decline"], None, []),
        ([DummyServerFactory(decline_all=True)], ["x-dummy"], None, []),
    ],
)
def test_server_extensions(
    factories: list[DummyServerFactory],
    lines: list[str],
    expected_header: str | None,
    expected: list[tuple[str, list[ExtensionParameter]]],
) -> None:
    result = accept(offer(*lines), extensions=factories)
    assert result.response.headers.get("Sec-WebSocket-Extensions") == expected_header
    assert [(ext.name, ext.params) for ext in result.extensions] == expected  # type: ignore[attr-defined]


def test_server_extensions_try_each_factory_of_a_name() -> None:
    declining = DummyServerFactory(decline_all=True)
    accepting = DummyServerFactory()
    result = accept(offer("x-dummy; a"), extensions=[declining, accepting])
    assert [ext.factory for ext in result.extensions] == [accepting]  # type: ignore[attr-defined]
    assert declining.seen_accepted == [[]]


def test_server_extensions_receive_accepted_so_far() -> None:
    first, second = DummyServerFactory("x-a"), DummyServerFactory("x-b")
    result = accept(offer("x-a, x-b"), extensions=[first, second])
    assert first.seen_accepted == [[]]
    assert second.seen_accepted == [[result.extensions[0]]]


# -- client: request -----------------------------------------------------------


def test_client_request() -> None:
    client = ClientHandshake(host="example.com:8080", path="/chat?room=1")
    request = client.request
    assert (request.method, request.path) == ("GET", "/chat?room=1")
    assert request.headers.items() == [
        ("Host", "example.com:8080"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", client.key),
        ("Sec-WebSocket-Version", "13"),
        ("User-Agent", "rapidws"),
    ]
    assert len(base64.b64decode(client.key, validate=True)) == 16
    assert request.serialize().startswith(
        b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
    )


def test_client_keys_differ() -> None:
    assert ClientHandshake(host="h", path="/").key != ClientHandshake(host="h", path="/").key


def test_client_request_options() -> None:
    client = ClientHandshake(
        host="h",
        path="/",
        subprotocols=["chat", "superchat"],
        extensions=[
            DummyClientFactory("x-a", [("p", "1"), ("q", None)]),
            DummyClientFactory("x-b"),
        ],
        additional_headers={"Authorization": "Bearer t"},
        origin="https://origin.example",
        user_agent=None,
    )
    headers = client.request.headers
    assert headers["Origin"] == "https://origin.example"
    assert headers["Sec-WebSocket-Extensions"] == "x-a; p=1; q, x-b"
    assert headers["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert headers["Authorization"] == "Bearer t"
    assert "User-Agent" not in headers


@pytest.mark.parametrize(
    "additional",
    [
        {"User-Agent": "custom/1", "X-A": "1"},
        [("User-Agent", "custom/1"), ("X-A", "1")],
        Headers([("user-agent", "custom/1"), ("X-A", "1")]),
    ],
)
def test_client_additional_headers(additional: Any) -> None:
    headers = ClientHandshake(host="h", path="/", additional_headers=additional).request.headers
    assert headers.get_all("User-Agent") == ["custom/1"]
    assert headers["x-a"] == "1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": "h\r\nX: injected"},
        {"subprotocols": ["bad proto"]},
        {"additional_headers": {"X": "a\nb"}},
        {"origin": "o\x00"},
    ],
)
def test_client_rejects_unsafe_options(kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"host": "h", "path": "/", **kwargs}
    with pytest.raises(ValueError):
        ClientHandshake(**options)


# -- client: check -------------------------------------------------------------


def server_response(
    client: ClientHandshake, *pairs: tuple[str, str], drop: Sequence[str] = ()
) -> Response:
    """A valid 101 for ``client``, minus ``drop``, plus ``pairs``."""
    base = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(client.key)),
    ]
    dropped = {name.lower() for name in drop}
    headers = Headers([(k, v) for k, v in base if k.lower() not in dropped])
    headers.update(list(pairs))
    return Response(101, "Switching Protocols", headers)


def check_accepted(client: ClientHandshake, response: Response) -> Accepted:
    result = client.check(response)
    assert isinstance(result, Accepted), result
    return result


def test_client_check_accepts() -> None:
    client = ClientHandshake(host="h", path="/")
    response = server_response(client)
    result = check_accepted(client, response)
    assert result == Accepted(response, None, [])


@pytest.mark.parametrize(
    "pairs",
    [
        [("Upgrade", "WebSocket")],
        [("Connection", "keep-alive, upgrade")],
        [("Connection", "keep-alive"), ("Connection", "UPGRADE")],
    ],
)
def test_client_check_accepts_variants(pairs: list[tuple[str, str]]) -> None:
    client = ClientHandshake(host="h", path="/")
    check_accepted(client, server_response(client, *pairs, drop=[name for name, _ in pairs]))


@pytest.mark.parametrize(
    ("status", "location", "expected"),
    [
        (301, "wss://other/", Redirect),
        (302, "/elsewhere", Redirect),
        (303, "/x", Redirect),
        (307, "/x", Redirect),
        (308, "/x", Redirect),
        (301, None, Rejected),
        (300, "/x", Rejected),
        (304, "/x", Rejected),
        (200, None, Rejected),
        (400, None, Rejected),
        (403, None, Rejected),
        (426, None, Rejected),
        (500, None, Rejected),
    ],
)
def test_client_check_non_101(status: int, location: str | None, expected: type[Any]) -> None:
    client = ClientHandshake(host="h", path="/")
    headers = Headers() if location is None else Headers({"Location": location})
    response = Response(status, "X", headers, b"body")
    result = client.check(response)
    assert type(result) is expected
    if isinstance(result, Redirect):
        assert result == Redirect(status, location or "", response)
    else:
        assert result == Rejected(status, response)


def test_client_check_redirect_with_two_locations_is_rejected() -> None:
    client = ClientHandshake(host="h", path="/")
    response = Response(302, "Found", Headers([("Location", "/a"), ("Location", "/b")]))
    assert client.check(response) == Rejected(302, response)


CLIENT_FAILURES: list[tuple[str, list[tuple[str, str]], list[str], type[Exception]]] = [
    ("missing Upgrade", [], ["Upgrade"], InvalidUpgrade),
    ("Upgrade h2c", [("Upgrade", "h2c")], ["Upgrade"], InvalidUpgrade),
    ("missing Connection", [], ["Connection"], InvalidUpgrade),
    ("Connection close", [("Connection", "close")], ["Connection"], InvalidUpgrade),
    ("missing accept", [], ["Sec-WebSocket-Accept"], InvalidHeader),
    ("two accepts", [("Sec-WebSocket-Accept", "x")], [], InvalidHeader),
    ("wrong accept", [("Sec-WebSocket-Accept", ACCEPT)], ["Sec-WebSocket-Accept"],
     InvalidHeaderValue),
    ("unrequested subprotocol", [("Sec-WebSocket-Protocol", "chat")], [], NegotiationError),
    ("unrequested extension", [("Sec-WebSocket-Extensions", "x-dummy")], [], NegotiationError),
    ("malformed extensions", [("Sec-WebSocket-Extensions", "x;")], [], InvalidHeaderFormat),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pairs", "drop", "exc_type"),
    [pytest.param(pairs, drop, exc, id=name) for name, pairs, drop, exc in CLIENT_FAILURES],
)
def test_client_check_failures(
    pairs: list[tuple[str, str]], drop: list[str], exc_type: type[Exception]
) -> None:
    client = ClientHandshake(host="h", path="/")
    with pytest.raises(exc_type) as exc_info:
        client.check(server_response(client, *pairs, drop=drop))
    assert type(exc_info.value) is exc_type


@pytest.mark.parametrize(
    ("offered", "lines", "expected"),
    [
        (["chat", "superchat"], [], None),
        (["chat", "superchat"], ["superchat"], "superchat"),
        (["chat"], ["chat"], "chat"),
        (["chat"], ["other"], NegotiationError),
        (["chat"], ["Chat"], NegotiationError),
        (["chat", "superchat"], ["chat, superchat"], NegotiationError),
        (["chat", "superchat"], ["chat", "superchat"], NegotiationError),
        ([], ["chat"], NegotiationError),
    ],
)
def test_client_check_subprotocol(
    offered: list[str], lines: list[str], expected: str | type[Exception] | None
) -> None:
    client = ClientHandshake(host="h", path="/", subprotocols=offered)
    response = server_response(client, *[("Sec-WebSocket-Protocol", line) for line in lines])
    if isinstance(expected, type):
        with pytest.raises(expected):
            client.check(response)
    else:
        assert check_accepted(client, response).subprotocol == expected


@pytest.mark.parametrize(
    ("factories", "lines", "expected"),
    [
        ([DummyClientFactory()], [], []),
        ([DummyClientFactory()], ["x-dummy"], [("x-dummy", [])]),
        ([DummyClientFactory()], ["x-dummy; a=1; b"], [("x-dummy", [("a", "1"), ("b", None)])]),
        (
            [DummyClientFactory("x-a"), DummyClientFactory("x-b")],
            ["x-b", "x-a; p"],
            [("x-b", []), ("x-a", [("p", None)])],
        ),
        ([DummyClientFactory()], ["x-dummy; bad"], NegotiationError),
        ([DummyClientFactory()], ["x-other"], NegotiationError),
        ([DummyClientFactory()], ["x-dummy, x-dummy"], NegotiationError),
        ([DummyClientFactory("x-a")], ["x-a, x-b"], NegotiationError),
    ],
)
def test_client_check_extensions(
    factories: list[DummyClientFactory],
    lines: list[str],
    expected: list[tuple[str, list[ExtensionParameter]]] | type[Exception],
) -> None:
    client = ClientHandshake(host="h", path="/", extensions=factories)
    response = server_response(client, *[("Sec-WebSocket-Extensions", line) for line in lines])
    if isinstance(expected, type):
        with pytest.raises(expected):
            client.check(response)
    else:
        result = check_accepted(client, response)
        assert [(ext.name, ext.params) for ext in result.extensions] == expected  # type: ignore[attr-defined]


def test_client_extensions_try_each_factory_of_a_name() -> None:
    first = DummyClientFactory(tag="v")
    second = DummyClientFactory(params=[("v", None)])
    client = ClientHandshake(host="h", path="/", extensions=[first, second])
    assert client.request.headers["Sec-WebSocket-Extensions"] == "x-dummy, x-dummy; v"
    response = server_response(client, ("Sec-WebSocket-Extensions", "x-dummy; v"))
    result = check_accepted(client, response)
    assert [ext.factory for ext in result.extensions] == [second]  # type: ignore[attr-defined]
    # when every factory of that name refuses, the last error propagates
    response = server_response(client, ("Sec-WebSocket-Extensions", "x-dummy; bad"))
    with pytest.raises(NegotiationError, match="refused"):
        client.check(response)


# -- round trips ---------------------------------------------------------------


def roundtrip(
    client: ClientHandshake, server: ServerHandshake
) -> tuple[Accept | Reject, Accepted | Redirect | Rejected]:
    """Serialize and parse both ways, with frame bytes following each head."""
    data = client.request.serialize() + FRAME
    parsed_request = parse_request(data)
    assert parsed_request is not None
    request, consumed = parsed_request
    assert data[consumed:] == FRAME
    assert request == client.request
    server_result = server.accept(request)
    data = server_result.response.serialize() + FRAME
    parsed_response = parse_response(data)
    assert parsed_response is not None
    response, consumed = parsed_response
    assert data[consumed:] == FRAME
    assert response == server_result.response
    return server_result, client.check(response)


def test_roundtrip_accepted() -> None:
    client = ClientHandshake(
        host="example.com",
        path="/ws?x=1",
        subprotocols=["v2", "v1"],
        extensions=[DummyClientFactory("x-a", [("p", "1")]), DummyClientFactory("x-b")],
        origin="https://example.com",
    )
    server = ServerHandshake(
        subprotocols=["v1", "v2"],
        extensions=[DummyServerFactory("x-b"), DummyServerFactory("x-c")],
    )
    server_result, client_result = roundtrip(client, server)
    assert isinstance(server_result, Accept)
    assert isinstance(client_result, Accepted)
    assert server_result.subprotocol == client_result.subprotocol == "v1"
    assert [ext.name for ext in server_result.extensions] == ["x-b"]
    assert [ext.name for ext in client_result.extensions] == ["x-b"]


def test_roundtrip_plain() -> None:
    server_result, client_result = roundtrip(ClientHandshake(host="h", path="/"), ServerHandshake())
    assert isinstance(server_result, Accept)
    assert isinstance(client_result, Accepted)
    assert (client_result.subprotocol, client_result.extensions) == (None, [])


def test_roundtrip_rejected() -> None:
    client = ClientHandshake(host="h", path="/", additional_headers={"Sec-WebSocket-Version": "8"})
    server_result, client_result = roundtrip(client, ServerHandshake())
    assert isinstance(server_result, Reject)
    assert isinstance(server_result.exception, InvalidVersion)
    assert isinstance(client_result, Rejected)
    assert client_result.status_code == 426
    assert client_result.response.body == server_result.response.body


def test_roundtrip_incremental() -> None:
    client = ClientHandshake(host="h", path="/", subprotocols=["chat"])
    data = client.request.serialize() + FRAME
    parser = RequestParser()
    buf = bytearray()
    parsed = None
    for byte in data:
        buf.append(byte)
        parsed = parser.parse(buf)
        if parsed is not None:
            break
    assert parsed is not None
    request, consumed = parsed
    assert consumed == len(data) - len(FRAME)
    assert (buf + data[len(buf) :])[consumed:] == FRAME
    result = ServerHandshake(subprotocols=["chat"]).accept(request)
    assert isinstance(result, Accept)
    assert isinstance(client.check(result.response), Accepted)


# -- subprotocols required, and websockets' select_subprotocol ------------------


def _request_offering(*offers: str) -> Request:
    headers = [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    if offers:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(offers)))
    return Request("/", Headers(headers))


@pytest.mark.parametrize(
    ("offers", "status", "subprotocol"),
    [
        (("chat",), 101, "chat"),
        (("echo", "chat"), 101, "chat"),  # the server's order wins
        (("other", "echo"), 101, "echo"),
        ((), 400, None),
        (("other",), 400, None),
    ],
)
def test_require_subprotocol(offers: tuple[str, ...], status: int, subprotocol: str | None) -> None:
    handshake = ServerHandshake(subprotocols=["chat", "echo"], require_subprotocol=True)
    result = handshake.accept(_request_offering(*offers))
    assert result.response.status_code == status
    if status == 101:
        assert isinstance(result, Accept) and result.subprotocol == subprotocol
    else:
        assert b"supported: chat, echo" in result.response.body


def test_require_subprotocol_needs_subprotocols() -> None:
    with pytest.raises(ValueError):
        ServerHandshake(require_subprotocol=True)


def test_select_subprotocol_gets_the_connection() -> None:
    calls: list[tuple[object, list[str]]] = []

    def select(connection: object, offers: list[str]) -> str | None:
        calls.append((connection, offers))
        return offers[0]

    token = object()
    result = ServerHandshake(select_subprotocol=select).accept(
        _request_offering("a", "b"), connection=token
    )
    assert isinstance(result, Accept) and result.subprotocol == "a"
    assert calls == [(token, ["a", "b"])]
    # One parameter: the offers alone (rapidws's older signature).
    result = ServerHandshake(select_subprotocol=lambda offers: offers[-1]).accept(
        _request_offering("a", "b")
    )
    assert isinstance(result, Accept) and result.subprotocol == "b"

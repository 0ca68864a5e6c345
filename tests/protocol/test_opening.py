"""Table tests for the sans-I/O opening handshake objects: outcome and trailing bytes."""

from __future__ import annotations

import pytest

from rapidws.exceptions import InvalidHandshake, InvalidState
from rapidws.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from rapidws.protocol.frames import Frame, Opcode
from rapidws.protocol.handshake import (
    Accepted,
    ClientHandshake,
    Redirect,
    Rejected,
    ServerHandshake,
)
from rapidws.protocol.opening import ClientOpening, ServerOpening

FRAME = Frame(Opcode.TEXT, b"first frame").serialize(mask=True)


def pair(**server: object) -> tuple[ClientOpening, ServerOpening]:
    client = ClientOpening(
        ClientHandshake(
            host="example.com",
            path="/chat?x=1",
            subprotocols=["chat", "superchat"],
            extensions=[ClientPerMessageDeflateFactory()],
        )
    )
    return client, ServerOpening(
        ServerHandshake(extensions=[ServerPerMessageDeflateFactory()], **server)  # type: ignore[arg-type]
    )


def test_accepted_byte_at_a_time_with_the_first_frames_after_each_head() -> None:
    client, server = pair(subprotocols=["superchat"])
    data = client.data_to_send() + FRAME  # a frame right behind the request
    assert client.data_to_send() == b""
    request = None
    for i in range(len(data)):
        request = server.receive_data(data[i : i + 1])
        if request is not None:
            break
    assert request is not None and request.path == "/chat?x=1"
    server.receive_data(data[i + 1 :])
    assert server.trailing == FRAME
    accept = server.accept(headers=[("X-Served-By", "test")])
    assert accept.subprotocol == "superchat"
    answer = server.data_to_send()
    assert b"X-Served-By: test" in answer
    outcome = client.receive_data(answer + b"\x81\x02hi")
    assert isinstance(outcome, Accepted)
    assert outcome.subprotocol == "superchat"
    assert [e.name for e in outcome.extensions] == ["permessage-deflate"]
    assert client.trailing == b"\x81\x02hi"


def test_server_chooses_the_subprotocol_among_the_offers() -> None:
    client, server = pair()
    server.receive_data(client.data_to_send())
    with pytest.raises(ValueError, match="not offered"):
        server.accept(subprotocol="other")
    assert server.accept(subprotocol="chat").subprotocol == "chat"
    outcome = client.receive_data(server.data_to_send())
    assert isinstance(outcome, Accepted) and outcome.subprotocol == "chat"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect(status: int) -> None:
    client, server = pair()
    server.receive_data(client.data_to_send())
    server.redirect(status, "/elsewhere")
    outcome = client.receive_data(server.data_to_send())
    assert outcome == Redirect(status, "/elsewhere", outcome.response)  # type: ignore[union-attr]


def test_redirect_needs_a_redirect_status() -> None:
    _, server = pair()
    server.receive_data(pair()[0].data_to_send())
    with pytest.raises(ValueError, match="redirect"):
        server.redirect(200, "/")


def test_rejected_with_any_status_headers_and_body() -> None:
    client, server = pair()
    server.receive_data(client.data_to_send())
    server.reject(403, "Not for you", [("X-Reason", "policy")])
    data = server.data_to_send()
    outcome = None
    for i in range(len(data)):  # the body too arrives in pieces
        outcome = client.receive_data(data[i : i + 1])
        if outcome is not None:
            assert i == len(data) - 1
    assert isinstance(outcome, Rejected)
    assert outcome.status_code == 403
    assert outcome.headers["X-Reason"] == "policy"
    assert outcome.body == b"Not for you\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"NOT HTTP\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_heads_are_answered_with_their_status(head: bytes, status: int) -> None:
    _, server = pair()
    with pytest.raises(InvalidHandshake) as caught:
        server.receive_data(head)
    response = server.fail(caught.value)
    assert response.status_code == status
    assert server.data_to_send().startswith(b"HTTP/1.1 %d " % status)


def test_not_an_upgrade_is_refused_by_accept() -> None:
    _, server = pair()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(InvalidHandshake) as caught:
        server.accept()
    assert server.fail(caught.value).status_code == 426


def test_one_answer_per_request() -> None:
    client, server = pair()
    with pytest.raises(InvalidState):
        server.accept()  # no request yet
    server.receive_data(client.data_to_send())
    server.reject(404, "Not Found")
    with pytest.raises(InvalidState):
        server.accept()


def test_an_invalid_101_raises() -> None:
    client, _ = pair()
    bad = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    bad += b"Sec-WebSocket-Accept: wrong\r\n\r\n"
    with pytest.raises(InvalidHandshake):
        client.receive_data(bad)

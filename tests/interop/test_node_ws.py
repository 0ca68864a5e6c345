"""permessage-deflate interop with Node's `ws`, over loopback, in both roles.

rapidws server + ``conformance/interop/ws_client.mjs``, and rapidws client +
``conformance/interop/ws_server.mjs``: text, binary, fragmented, 1 MiB and
16 MiB messages, with context takeover on and off.  Besides the echoes, the
wire sizes that `ws` measures show that both sides compress, and that the same
message sent twice shrinks the second time only with context takeover.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rapidws
from rapidws.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

from .helpers import (
    MAX_SIZE,
    MiB,
    Seen,
    check_repeat_wire,
    check_same,
    mixed_bytes,
    node_ws_server,
    random_bytes,
    rapidws_server,
    require_node_package,
    run_script,
    text,
    text_bytes,
)

NO_TAKEOVER = {"server_no_context_takeover", "client_no_context_takeover"}

# The steps of ws_client.mjs, in order.
WS_CLIENT_STEPS = [
    "text",
    "text-unicode",
    "text-empty",
    "binary",
    "binary-empty",
    "binary-125",
    "binary-126",
    "binary-65535",
    "binary-65536",
    "fragmented-text",
    "fragmented-binary",
    "repeat-1",
    "repeat-2",
    "text-1MiB",
    "binary-1MiB",
    "binary-16MiB",
    "text-16MiB",
    "server-fragmented-text",
    "server-fragmented-binary",
]


def header_params(header: str | None) -> set[str]:
    """The parameter names of a one-extension Sec-WebSocket-Extensions value."""
    assert header is not None, "no Sec-WebSocket-Extensions header"
    name, *params = (part.strip() for part in header.split(";"))
    assert name == "permessage-deflate", header
    return {param.split("=")[0].strip() for param in params}


# ---------------------------------------------------------- rapidws server, ws client


def no_takeover_server() -> dict[str, Any]:
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    return {"compression": None, "extensions": [factory]}


@pytest.mark.parametrize(
    ("server_kwargs", "client_args", "takeover"),
    [
        pytest.param(dict, [], True, id="takeover"),
        pytest.param(no_takeover_server, [], False, id="server-no-takeover"),
        pytest.param(
            dict,
            ["--client-no-context-takeover", "--server-no-context-takeover"],
            False,
            id="client-asks-no-takeover",
        ),
    ],
)
async def test_rapidws_server_node_ws_client(
    server_kwargs: Callable[[], dict[str, Any]], client_args: list[str], takeover: bool
) -> None:
    node = require_node_package("ws")
    kwargs: dict[str, Any] = {"compression": "deflate", **server_kwargs()}
    seen = Seen()
    async with rapidws_server(seen, **kwargs) as uri:
        run = await run_script(
            node,
            "ws_client.mjs",
            uri,
            "--server-fragments",
            "--timeout",
            "150",
            *client_args,
            timeout=180,
        )
    result = run.result
    assert run.returncode == 0 and result.get("ok") is True, run.describe()

    # The handshake, as both sides saw it.
    assert result["extensions"] == "permessage-deflate", run.describe()
    params = header_params(result["response"])
    assert params & NO_TAKEOVER == (set() if takeover else NO_TAKEOVER), result["response"]
    assert seen.negotiated == [["permessage-deflate"]]
    assert seen.response_extensions == [result["response"]]
    (offer,) = seen.request_extensions
    assert offer is not None and offer.startswith("permessage-deflate"), offer
    assert ("client_no_context_takeover" in offer) == bool(client_args), offer

    # Every message went through and came back (checked byte for byte by ws_client.mjs).
    steps = {step["name"]: step for step in result["steps"]}
    assert list(steps) == WS_CLIENT_STEPS
    assert seen.echoed == len(WS_CLIENT_STEPS) - 2
    assert seen.fragmented == 2
    assert seen.close_codes == [1000]

    # Both sides compress: rx is what rapidws sent, tx what ws sent.
    size = steps["text-1MiB"]["size"]
    assert steps["text-1MiB"]["rx"] < size // 2, steps["text-1MiB"]
    assert steps["text-1MiB"]["tx"] < size // 2, steps["text-1MiB"]
    first, second = steps["repeat-1"], steps["repeat-2"]
    check_repeat_wire("rapidws server", first["rx"], second["rx"], takeover=takeover)
    check_repeat_wire("ws client", first["tx"], second["tx"], takeover=takeover)


# ---------------------------------------------------------- rapidws client, ws server

Message = str | bytes | list[str] | list[bytes]


def messages() -> Iterator[tuple[str, Message, str | bytes]]:
    """(name, what to send, the echo expected), made one at a time."""
    small: list[tuple[str, str | bytes]] = [
        ("text", "Hello, rapidws!"),
        ("text-unicode", "héllo wörld € 😀 ✓ ключ 日本語 " * 8),
        ("text-empty", ""),
        ("binary", bytes(range(256))),
        ("binary-empty", b""),
        ("binary-125", random_bytes(125, 1)),
        ("binary-126", random_bytes(126, 2)),
        ("binary-65535", mixed_bytes(65535, 3)),
        ("binary-65536", mixed_bytes(65536, 4)),
    ]
    for name, message in small:
        yield name, message, message
    fragments = ["Hello, ", "", "wörld", "! " + "ab" * 600]
    yield "fragmented-text", fragments, "".join(fragments)
    binary_fragments = [random_bytes(1000, 5), text_bytes(70000, 6), random_bytes(1, 7)]
    yield "fragmented-binary", binary_fragments, b"".join(binary_fragments)
    repeated = random_bytes(1000, 77)
    yield "repeat-1", repeated, repeated
    yield "repeat-2", repeated, repeated
    large: list[tuple[str, Callable[[], str | bytes]]] = [
        ("text-1MiB", lambda: text(MiB, 8)),
        ("binary-1MiB", lambda: random_bytes(MiB, 9)),
        ("binary-16MiB", lambda: mixed_bytes(16 * MiB, 10)),
        ("text-16MiB", lambda: text(16 * MiB, 11)),
    ]
    for name, make in large:
        big = make()
        yield name, big, big
        del big


def no_takeover_client() -> dict[str, Any]:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    return {"compression": None, "extensions": [factory]}


@pytest.mark.parametrize(
    ("server_args", "client_kwargs", "takeover"),
    [
        pytest.param([], dict, True, id="takeover"),
        pytest.param([], no_takeover_client, False, id="client-asks-no-takeover"),
        pytest.param(
            ["--server-no-context-takeover", "--client-no-context-takeover"],
            dict,
            False,
            id="server-no-takeover",
        ),
    ],
)
async def test_rapidws_client_node_ws_server(
    server_args: list[str], client_kwargs: Callable[[], dict[str, Any]], takeover: bool
) -> None:
    node = require_node_package("ws")
    kwargs: dict[str, Any] = {"compression": "deflate", **client_kwargs()}
    names = []
    async with (
        node_ws_server(node, *server_args) as uri,
        rapidws.connect(uri, max_size=MAX_SIZE, open_timeout=10, **kwargs) as ws,
    ):
        assert len(ws.extensions) == 1
        assert ws.extensions[0].name == "permessage-deflate"
        assert ws.response is not None
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        params = header_params(header)
        assert params & NO_TAKEOVER == (set() if takeover else NO_TAKEOVER), header

        for name, message, expected in messages():
            await asyncio.wait_for(ws.send(message), 60)
            check_same(name, await asyncio.wait_for(ws.recv(), 60), expected)
            names.append(name)

        await ws.send("__info__")
        reply = await asyncio.wait_for(ws.recv(), 30)
        assert isinstance(reply, str)
        info = json.loads(reply)
    assert ws.close_code == 1000

    # The handshake, as ws saw it.
    assert info["extensions"] == "permessage-deflate", info
    assert info["response"] == header
    assert ws.request is not None
    assert info["request"] == ws.request.headers.get("Sec-WebSocket-Extensions")
    assert info["request"].startswith("permessage-deflate"), info["request"]

    # Both sides compress: rx is what rapidws sent, tx what ws sent.
    assert len(info["wire"]) == len(names)
    wire = dict(zip(names, info["wire"], strict=True))
    assert all(entry["tx"] is not None for entry in info["wire"]), info["wire"]
    assert wire["text-1MiB"]["rx"] < wire["text-1MiB"]["size"] // 2, wire["text-1MiB"]
    assert wire["text-1MiB"]["tx"] < wire["text-1MiB"]["size"] // 2, wire["text-1MiB"]
    first, second = wire["repeat-1"], wire["repeat-2"]
    check_repeat_wire("rapidws client", first["rx"], second["rx"], takeover=takeover)
    check_repeat_wire("ws server", first["tx"], second["tx"], takeover=takeover)

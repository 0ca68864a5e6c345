"""permessage-deflate interop with Debian's Chromium (headless) as the client.

``conformance/interop/chromium.mjs`` drives the browser through playwright-core:
in a page it opens ``new WebSocket(uri)`` to a rapidws server on loopback,
checks that ``ws.extensions`` names permessage-deflate, and sends text and
binary messages of 0 B to 16 MiB, comparing each echo byte for byte; it also
asks the server for fragmented messages.  The server side checks what Chromium
offered and what was negotiated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rapidws.protocol.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from .helpers import Seen, rapidws_server, require_chromium, run_script

SIZES = [0, 1, 125, 126, 65536, 2**20, 16 * 2**20]
ECHO_STEPS = [f"{kind}-{size}" for size in SIZES for kind in ("text", "binary")] + [
    "repeat-binary-1",
    "repeat-binary-2",
    "repeat-text-1",
    "repeat-text-2",
]
FRAGMENT_STEPS = ["server-fragmented-text", "server-fragmented-binary"]
NO_TAKEOVER = {"server_no_context_takeover", "client_no_context_takeover"}


def no_takeover_server() -> dict[str, Any]:
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    return {"compression": None, "extensions": [factory]}


@pytest.mark.parametrize(
    ("server_kwargs", "takeover"),
    [
        pytest.param(dict, True, id="takeover"),
        pytest.param(no_takeover_server, False, id="server-no-takeover"),
    ],
)
async def test_chromium_client_rapidws_server(
    server_kwargs: Callable[[], dict[str, Any]], takeover: bool
) -> None:
    node, chromium = require_chromium()
    kwargs: dict[str, Any] = {"compression": "deflate", **server_kwargs()}
    seen = Seen()
    async with rapidws_server(seen, **kwargs) as uri:
        run = await run_script(
            node,
            "chromium.mjs",
            uri,
            "--executable",
            chromium,
            "--server-fragments",
            "--timeout",
            "200",
            timeout=240,
        )
    result = run.result
    assert run.returncode == 0 and result.get("ok") is True, run.describe()

    # What Chromium offered, and what both sides negotiated.
    (offer,) = seen.request_extensions
    assert offer is not None, "Chromium offered no extension"
    offered = [part.split(";")[0].strip() for part in offer.split(",")]
    assert "permessage-deflate" in offered, offer
    assert seen.negotiated == [["permessage-deflate"]]
    (response,) = seen.response_extensions
    assert response is not None and response.startswith("permessage-deflate"), response
    assert result["extensions"] == response, (result["extensions"], response)
    params = {part.split("=")[0].strip() for part in response.split(";")[1:]}
    assert params & NO_TAKEOVER == (set() if takeover else NO_TAKEOVER), response

    # Every message went through and came back (checked byte for byte in the page).
    assert [step["name"] for step in result["steps"]] == ECHO_STEPS + FRAGMENT_STEPS
    assert seen.echoed == len(ECHO_STEPS)
    assert seen.fragmented == len(FRAGMENT_STEPS)
    assert seen.close_codes == [1000]
    assert result["close"]["code"] == 1000 and result["close"]["wasClean"] is True, result["close"]

"""The demo chat in Debian's Chromium (headless), over http:// and https://.

``conformance/interop/chat.mjs`` opens the chat page four times: two pages
chat in one room over http, lose their connections (1012, as a restarting
server closes them) and must rejoin by themselves and chat again; two chat
in another room over https (a trustme certificate); then one page sends a
4 MiB binary message through ``/echo`` (with the browser's
permessage-deflate) and closes a WebSocket with 4000 and a reason, which the
server's handler must see.  The screenshot of the chat
page goes to ``conformance/reports/chat.png``, and must not be blank.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

import rapidws
from rapidws.app.chat import MAX_SIZE, ChatRooms, make_app
from rapidws.tls import server_context

from ..asyncio.helpers import write_cert
from .helpers import REPO, require_chromium, run_script

SCREENSHOT = REPO / "conformance" / "reports" / "chat.png"


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of an 8-bit RGB(A) PNG without interlacing (what Chromium saves)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):  # PNG's filters (RFC 2083 6)
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line[: width * channels]))
        previous = line
    return width, height, rows


async def test_chat_in_chromium_over_http_and_https(tmp_path: Path) -> None:
    node, chromium = require_chromium()
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert_file, key_file = write_cert(ca.issue_cert("127.0.0.1"), tmp_path, "server")

    closes: asyncio.Queue[tuple[int | None, str | None]] = asyncio.Queue()

    async def closing(ws: rapidws.ServerConnection) -> None:
        try:
            async for _ in ws:
                pass
        finally:
            await ws.wait_closed()
            closes.put_nowait((ws.close_code, ws.close_reason))

    def app() -> Any:
        rooms = ChatRooms()
        application = make_app(rooms)
        application.websocket("/closing", closing)

        @application.get("/kick")
        async def kick(request: Any) -> str:
            """What a restart does to the pages: every chat connection goes (1012)."""
            for members in list(rooms.rooms.values()):
                for conn in list(members):
                    await conn.close(1012, "service restart")
            return "kicked"

        return application

    ssl = server_context(cert_file, key_file)
    async with (
        app().serve("127.0.0.1", 0, max_size=MAX_SIZE) as plain,
        app().serve("127.0.0.1", 0, max_size=MAX_SIZE, ssl=ssl) as secure,
    ):
        http_base = f"http://127.0.0.1:{next(iter(plain.sockets)).getsockname()[1]}"
        https_base = f"https://127.0.0.1:{next(iter(secure.sockets)).getsockname()[1]}"
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        run = await run_script(
            node,
            "chat.mjs",
            http_base,
            https_base,
            str(SCREENSHOT),
            "--executable",
            chromium,
            "--timeout",
            "150",
            timeout=200,
        )
        result = run.result
        assert run.returncode == 0 and result.get("ok") is True, run.describe()
        assert result["heard"] == {"http": True, "rejoined": True, "https": True}
        assert result["extensions"].startswith("permessage-deflate"), result["extensions"]
        assert result["echo_bytes"] == 4 * 2**20
        assert result["closed"]["code"] == 4000, result["closed"]
        code, reason = await asyncio.wait_for(closes.get(), 10)
        assert (code, reason) == (4000, "bye from the browser")

    # The screenshot shows the page: many colours, not one flat background.
    width, height, rows = png_pixels(SCREENSHOT.read_bytes())
    assert (width, height) == (390, 700)
    pixels = {row[i : i + 3] for row in rows[::7] for i in range(0, len(row), 4 * 7)}
    assert len(pixels) > 20, f"the chat page looks blank: {len(pixels)} colours"

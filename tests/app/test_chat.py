"""The demo chat (``rapidws serve``): the page, rooms over /ws, /echo, origins, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rapidws
from rapidws.app.chat import MAX_NAME, MAX_SIZE, MAX_TEXT, make_app

from ..asyncio.helpers import port_of, write_cert


async def start() -> Any:
    return await make_app().serve("127.0.0.1", 0, max_size=MAX_SIZE)


async def joined(uri: str, name: str, room: str, **kwargs: Any) -> Any:
    ws = await rapidws.connect(uri + "/ws", **kwargs)
    await ws.send(json.dumps({"type": "join", "name": name, "room": room}))
    assert json.loads(await ws.recv()) == {"type": "joined", "name": name, "room": room}
    return ws


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == kind:
            return message


@pytest.fixture
async def chat() -> AsyncIterator[str]:
    server = await start()
    try:
        yield f"ws://127.0.0.1:{port_of(server)}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_room_hears_its_members_and_sees_who_is_online(chat: str) -> None:
    alice = await joined(chat, "alice", "lobby")
    assert (await next_of(alice, "online"))["names"] == ["alice"]
    bob = await joined(chat, "bob", "lobby")
    assert (await next_of(bob, "online"))["names"] == ["alice", "bob"]
    assert (await next_of(alice, "online"))["names"] == ["alice", "bob"]
    carol = await joined(chat, "carol", "elsewhere")
    await bob.send(json.dumps({"type": "say", "text": "hi all"}))
    for ws in (alice, bob):
        said = await next_of(ws, "said")
        assert (said["name"], said["text"]) == ("bob", "hi all")
    await carol.send(json.dumps({"type": "say", "text": "only here"}))
    assert (await next_of(carol, "said"))["text"] == "only here"
    await bob.close()
    assert (await next_of(alice, "online"))["names"] == ["alice"]  # bob left
    await alice.send(json.dumps({"type": "say", "text": "still here"}))
    assert (await next_of(alice, "said"))["text"] == "still here"  # not carol's message
    await alice.close()
    await carol.close()


async def test_names_and_messages_are_bounded(chat: str) -> None:
    ws = await rapidws.connect(chat + "/ws")
    await ws.send(json.dumps({"type": "join", "name": "\x07" + "n" * 100, "room": " r "}))
    joined_as = json.loads(await ws.recv())
    assert joined_as["name"] == "n" * MAX_NAME and joined_as["room"] == "r"
    await ws.send(json.dumps({"type": "say", "text": "x" * 10_000}))
    assert len((await next_of(ws, "said"))["text"]) == MAX_TEXT
    await ws.close()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (b"\x00binary", 1003),
        ("not json", 1008),
        (json.dumps({"type": "say", "text": "before joining"}), 1008),
        (json.dumps({"type": "join", "name": "", "room": "lobby"}), 1008),
        (json.dumps(["join"]), 1008),
    ],
)
async def test_bad_input_closes_with_the_rfc_code(chat: str, first: str | bytes, code: int) -> None:
    ws = await rapidws.connect(chat + "/ws")
    await ws.send(first)
    with pytest.raises(rapidws.ConnectionClosed) as caught:
        await ws.recv()
    assert caught.value.code == code
    async with rapidws.connect(chat + "/echo") as echo:  # the server goes on
        await echo.send("ok")
        assert await echo.recv() == "ok"


async def test_echo_takes_4_mib_binary(chat: str) -> None:
    async with rapidws.connect(chat + "/echo", max_size=MAX_SIZE) as ws:
        payload = os.urandom(4 * 2**20)
        await ws.send(payload)
        assert await ws.recv() == payload


async def test_another_sites_page_gets_403_on_ws(chat: str) -> None:
    host = chat.removeprefix("ws://")
    for origin in ("http://evil.example", "null", f"http://{host}.evil.example"):
        with pytest.raises(rapidws.InvalidStatus) as caught:
            await rapidws.connect(chat + "/ws", origin=origin)
        assert caught.value.response.status_code == 403
    ws = await joined(chat, "alice", "lobby", origin=f"http://{host}")  # the page's own origin
    await ws.close()


async def test_the_page_and_its_files(chat: str) -> None:
    base = chat.replace("ws://", "http://")

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    status, kind, body = await asyncio.to_thread(get, "/")
    assert status == 200 and kind.startswith("text/html") and b"/static/chat.js" in body
    for path, prefix in (("/static/chat.js", "text/javascript"), ("/static/style.css", "text/css")):
        status, kind, _ = await asyncio.to_thread(get, path)
        assert status == 200 and kind.startswith(prefix)
    for path in ("/static/../chat.py", "/static/%2e%2e/chat.py", "/nowhere"):
        status, _, _ = await asyncio.to_thread(get, path)
        assert status == 404


# -- the command: rapidws serve ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_serve(*options: str) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rapidws",
        "serve",
        "--port",
        str(port),
        *options,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    assert f"://127.0.0.1:{port}/" in line
    return proc, port


async def test_rapidws_serve_stops_gracefully_on_sigterm() -> None:
    proc, port = await run_serve("--shutdown-timeout", "5")
    try:
        ws = await joined(f"ws://127.0.0.1:{port}", "alice", "lobby")
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(rapidws.ConnectionClosed) as caught:
            while True:
                await ws.recv()
        assert caught.value.code == 1001  # going away
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_rapidws_serve_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert_file, key_file = write_cert(ca.issue_cert("127.0.0.1"), tmp_path, "server")
    proc, port = await run_serve("--tls-cert", cert_file, "--tls-key", key_file)
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        ws = await joined(f"wss://127.0.0.1:{port}", "alice", "lobby", ssl=context)
        await ws.send(json.dumps({"type": "say", "text": "over TLS"}))
        assert (await next_of(ws, "said"))["text"] == "over TLS"
        await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)

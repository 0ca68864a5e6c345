"""Helpers for the interop tests: Node's `ws` and Chromium as peers of rapidws.

The peers are the scripts of ``conformance/interop/`` (set up by
``conformance/interop/setup.sh``), run as subprocesses over loopback sockets,
each stopped by its process id at the end of the test.  When a peer is not set
up the tests skip, or fail if ``RAPIDWS_REQUIRE_INTEROP=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

import rapidws

REPO = Path(__file__).resolve().parents[2]
INTEROP_DIR = REPO / "conformance" / "interop"
SETUP_COMMAND = "bash conformance/interop/setup.sh"
REQUIRE_ENV = "RAPIDWS_REQUIRE_INTEROP"
CHROMIUM = os.environ.get("RAPIDWS_CHROMIUM", "/usr/bin/chromium")

MiB = 2**20
MAX_SIZE = 2**25  # 32 MiB: room for the 16 MiB messages

# ------------------------------------------------------------------ set-up checks


def missing(what: str) -> NoReturn:
    """Skip (or fail, with RAPIDWS_REQUIRE_INTEROP=1) because a peer is not set up."""
    message = f"interop peer not set up: {what}; run `{SETUP_COMMAND}` first"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 makes this an error)", pytrace=False)
    pytest.skip(message)


def require_node_package(package: str) -> str:
    """The path of ``node``, once ``package`` is installed in conformance/interop."""
    node = shutil.which("node")
    if node is None:
        missing("`node` is not on PATH")
    if not (INTEROP_DIR / "node_modules" / package / "package.json").is_file():
        missing(f"conformance/interop/node_modules/{package} is missing")
    return node


def require_chromium() -> tuple[str, str]:
    """The paths of ``node`` (with playwright-core) and of Chromium."""
    node = require_node_package("playwright-core")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"{CHROMIUM} is missing (Debian package chromium)")
    return node, CHROMIUM


# ------------------------------------------------------------------ subprocesses


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """Stop a subprocess this test started: SIGTERM, then SIGKILL after ``grace`` s.

    The process runs in a session of its own (``start_new_session=True``), so
    what it started itself (Chromium) is in the process group whose id is its
    pid: that group gets a SIGKILL at the end, in case anything is left of it.
    """
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait_for(proc.wait(), grace)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _tail(stream: IO[bytes], limit: int = 4000) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    return text[-limit:]


@dataclass
class ScriptResult:
    """What a peer script printed: its exit status and its JSON result line."""

    returncode: int | None
    result: dict[str, Any]
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit status {self.returncode}\n"
            f"result: {json.dumps(self.result, indent=1)[:4000]}\n"
            f"stderr: {self.stderr}"
        )


async def run_script(node: str, script: str, *args: str, timeout: float) -> ScriptResult:
    """Run ``node conformance/interop/<script> args...`` to its end, within ``timeout`` s.

    Its last stdout line is parsed as JSON (``{}`` if it is missing or not JSON).
    """
    with tempfile.TemporaryFile() as stderr:
        proc = await asyncio.create_subprocess_exec(
            node,
            str(INTEROP_DIR / script),
            *args,
            cwd=INTEROP_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            try:
                stdout_bytes, _ = await asyncio.wait_for(proc.communicate(), timeout)
            except asyncio.TimeoutError:
                await stop_process(proc)
                pytest.fail(
                    f"{script} did not finish within {timeout} s; stderr: {_tail(stderr)}",
                    pytrace=False,
                )
        finally:
            await stop_process(proc)
        stdout = stdout_bytes.decode(errors="replace")
        result: dict[str, Any] = {}
        lines = stdout.strip().splitlines()
        if lines:
            with contextlib.suppress(ValueError):
                result = json.loads(lines[-1])
        return ScriptResult(proc.returncode, result, stdout[-4000:], _tail(stderr))


@contextlib.asynccontextmanager
async def node_ws_server(node: str, *args: str) -> AsyncIterator[str]:
    """Run conformance/interop/ws_server.mjs with ``args``; yield its ws:// URI."""
    with tempfile.TemporaryFile() as stderr:
        proc = await asyncio.create_subprocess_exec(
            node,
            str(INTEROP_DIR / "ws_server.mjs"),
            "--port",
            "0",
            "--lifetime",
            "600",
            "--exit-on-stdin-eof",
            *args,
            cwd=INTEROP_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
            except asyncio.TimeoutError:
                line = b""
            if not line:
                pytest.fail(f"ws_server.mjs did not start: {_tail(stderr)}", pytrace=False)
            port = int(json.loads(line)["port"])
            yield f"ws://127.0.0.1:{port}/"
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            await stop_process(proc)


# ------------------------------------------------------------------ rapidws server


def port_of(server: rapidws.Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


# What the test server sends, fragmented, when asked with these text messages
# (the same contents as conformance/interop/payloads.mjs).
FRAGMENTED_TEXT = ["Hello, ", "", "wörld", "!" * 1000]
FRAGMENTED_BINARY = [bytes(range(256)), b"", bytes(range(256)) * 300]
FRAGMENTED_REQUESTS: dict[str, list[str] | list[bytes]] = {
    "__fragmented_text__": FRAGMENTED_TEXT,
    "__fragmented_binary__": FRAGMENTED_BINARY,
}


@dataclass
class Seen:
    """What the test server's handler saw, for the assertions after the run."""

    request_extensions: list[str | None] = field(default_factory=list)
    response_extensions: list[str | None] = field(default_factory=list)
    negotiated: list[list[str]] = field(default_factory=list)
    echoed: int = 0
    fragmented: int = 0
    close_codes: list[int | None] = field(default_factory=list)


def recording_echo(seen: Seen) -> Callable[[rapidws.ServerConnection], Awaitable[None]]:
    """An echo handler that records the handshake and answers the fragment requests."""

    async def handler(ws: rapidws.ServerConnection) -> None:
        assert ws.request is not None
        seen.request_extensions.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        response = ws.response
        seen.response_extensions.append(
            None if response is None else response.headers.get("Sec-WebSocket-Extensions")
        )
        seen.negotiated.append([extension.name for extension in ws.extensions])
        try:
            async for message in ws:
                fragments = FRAGMENTED_REQUESTS.get(message) if isinstance(message, str) else None
                if fragments is not None:
                    await ws.send(fragments)
                    seen.fragmented += 1
                else:
                    await ws.send(message)
                    seen.echoed += 1
        except rapidws.ConnectionClosed:
            pass  # the close code, recorded below, tells
        await ws.wait_closed()
        seen.close_codes.append(ws.close_code)

    return handler


@contextlib.asynccontextmanager
async def rapidws_server(seen: Seen, **kwargs: Any) -> AsyncIterator[str]:
    """A rapidws server on 127.0.0.1 running :func:`recording_echo`; yield its URI."""
    async with rapidws.serve(
        recording_echo(seen), "127.0.0.1", 0, max_size=MAX_SIZE, **kwargs
    ) as server:
        yield f"ws://127.0.0.1:{port_of(server)}/"


# ------------------------------------------------------------------ payloads

_WORDS = [
    word.encode()
    for word in (
        "the ",
        "quick ",
        "brown ",
        "fox ",
        "jumps ",
        "over ",
        "lazy ",
        "dog ",
        "WebSocket ",
        "frame ",
        "deflate ",
        "rapidws ",
        "héllo ",
        "wörld ",
        "naïve ",
        "€uro ",
        "ключ ",
        "日本語 ",
        "😀 ",
        "✓ ",
        "\n",
    )
]


def text_bytes(n: int, seed: int) -> bytes:
    """Exactly ``n`` bytes of valid, compressible UTF-8 text (2-, 3-, 4-byte characters too)."""
    if n > 65536:
        block = text_bytes(65536, seed)  # valid UTF-8 on its own, so it repeats
        whole, rest = divmod(n, 65536)
        return block * whole + text_bytes(rest, seed + 1)
    rng = random.Random(seed)
    out = bytearray()
    while True:
        word = _WORDS[rng.randrange(len(_WORDS))]
        if len(out) + len(word) > n:
            break
        out += word
    out += b"x" * (n - len(out))
    return bytes(out)


def text(n: int, seed: int) -> str:
    return text_bytes(n, seed).decode()


def random_bytes(n: int, seed: int) -> bytes:
    """``n`` incompressible pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def mixed_bytes(n: int, seed: int) -> bytes:
    """``n`` bytes alternating 4 KiB of random bytes and 4 KiB of a repeated pattern."""
    out = bytearray(random_bytes(n, seed))
    pattern = bytes((i * 7) & 0xFF for i in range(256)) * 16
    for start in range(4096, n, 8192):
        end = min(start + 4096, n)
        out[start:end] = pattern[: end - start]
    return bytes(out)


def check_same(name: str, got: object, want: str | bytes) -> None:
    """Assert an echo is ``want`` exactly (type and content), with a short message."""
    if type(got) is not type(want):
        pytest.fail(f"{name}: sent {type(want).__name__}, got {type(got).__name__}")
    assert isinstance(got, (str, bytes))
    if got == want:
        return
    got_b = got.encode() if isinstance(got, str) else got
    want_b = want.encode() if isinstance(want, str) else want
    diff = next(
        (i for i, (a, b) in enumerate(zip(got_b, want_b, strict=False)) if a != b),
        min(len(got_b), len(want_b)),
    )
    pytest.fail(
        f"{name}: echo differs at byte {diff} (got {len(got_b)} bytes, expected {len(want_b)})"
    )


def check_repeat_wire(who: str, first: int, second: int, *, takeover: bool) -> None:
    """Check the wire sizes of one incompressible message sent twice in a row.

    With context takeover the second one is a back-reference into the first, a
    few bytes; without it, it is as big as the first.
    """
    if takeover:
        ok, what = second * 4 < first, "shrink (context takeover)"
    else:
        ok, what = second * 10 > first * 9, "be as big (no context takeover)"
    assert ok, f"{who}: the repeated message should {what}: {first} then {second} bytes on the wire"

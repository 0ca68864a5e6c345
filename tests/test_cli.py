"""The command line, run as real subprocesses on loopback."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

import rapidws


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_echo(*options: str) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rapidws",
        "echo",
        "--port",
        str(port),
        *options,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert f"ws://127.0.0.1:{port}/" in line.decode()
    return proc, port


@pytest.mark.parametrize(
    "options", [(), ("--api", "callback"), ("--uvloop",), ("--api", "callback", "--uvloop")]
)
async def test_echo_server_echoes_text_and_binary(options: tuple[str, ...]) -> None:
    if "--uvloop" in options:
        pytest.importorskip("uvloop")
    proc, port = await start_echo(*options)
    try:
        async with rapidws.connect(f"ws://127.0.0.1:{port}/", max_size=2**25) as ws:
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(b"\x00binary")
            assert await ws.recv() == b"\x00binary"
            big = b"x" * 2**24  # Autobahn's 9.* cases go up to 16 MiB
            await ws.send(big)
            assert await ws.recv() == big
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize("api", ["async", "callback"])
async def test_echo_server_speaks_the_subprotocols_given(api: str) -> None:
    proc, port = await start_echo("--api", api, "--subprotocol", "chat", "--subprotocol", "v2")
    uri = f"ws://127.0.0.1:{port}/"
    try:
        for offers, chosen in (
            (["v2", "chat"], "chat"),
            (["v2"], "v2"),
            (["x"], None),
            (None, None),
        ):
            async with rapidws.connect(uri, subprotocols=offers) as ws:
                assert ws.subprotocol == chosen
                await ws.send("hello")
                assert await ws.recv() == "hello"
    finally:
        proc.terminate()
        await proc.wait()


async def test_connect_sends_piped_lines_and_prints_replies() -> None:
    proc, port = await start_echo()
    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rapidws",
            "connect",
            f"ws://127.0.0.1:{port}/",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert client.stdin is not None and client.stdout is not None
        # One line at a time, each reply awaited: a close sent right behind a
        # message may reach the server with it, and then the echo cannot go out.
        for word in ("hello", "world"):
            client.stdin.write(word.encode() + b"\n")
            await client.stdin.drain()
            reply = await asyncio.wait_for(client.stdout.readline(), 30)
            assert reply.decode().rstrip("\n") == f"< {word}"
        out, _ = await asyncio.wait_for(client.communicate(b""), 30)
        assert client.returncode == 0
        assert out.decode().splitlines()[-1] == "connection closed: 1000"
    finally:
        proc.terminate()
        await proc.wait()


async def test_connect_reports_refused_connection() -> None:
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rapidws",
        "connect",
        f"ws://127.0.0.1:{free_port()}/",
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    _, err = await asyncio.wait_for(client.communicate(), 30)
    assert client.returncode == 1
    assert err.decode().startswith("rapidws:")

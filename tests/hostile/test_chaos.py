"""The chaos soak: hostile peers by the hundred while well-behaved clients are served.

    RAPIDWS_SOAK_SECONDS=60 pytest -m soak tests/hostile/test_chaos.py

A server in a process of its own (``server.py``, permessage-deflate on,
``max_size`` 256 KiB, ``open_timeout`` 2 s) meets ``HOSTILE`` connections at
once, each cycling through the misbehaviours of :data:`BEHAVIOURS`, while
``GOOD`` clients (half of them compressing) echo numbered messages of random
sizes and check every one.  It passes when every good message came back
intact and in order, every hostile connection ended with the RFC's answer
(or the timeout meant for it), the server's memory stayed under
:data:`RSS_BOUND` above its idle size, it was left with no connection and no
task beyond its own, and its log held at most one line per hostile
connection.  The figures are printed as a table.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import resource
import socket
import struct
import sys
import time
import zlib
from collections.abc import Awaitable, Callable

import pytest

from rapidws.protocol.frames import Close, Frame, Opcode

from .peers import REQUEST, ServerProcess, server_process

GOOD_CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "good_clients.py")

pytestmark = pytest.mark.soak

MIB = 1 << 20
SECONDS = float(os.environ.get("RAPIDWS_SOAK_SECONDS", "10"))
HOSTILE = 500
PAUSE = 4.0  # at most, between one hostile connection of a worker and its next
GOOD = 20
MAX_SIZE = 256 * 1024
OPEN_TIMEOUT = 2.0
WRITE_LIMIT = 32 * 1024  # serve's default
#: What one connection may hold at its peak, as the README states it: a
#: message being reassembled and its copy as it completes, the write buffer,
#: and 64 KiB for the rest (deflate's state, buffers, the objects).
PER_CONNECTION = 2 * MAX_SIZE + WRITE_LIMIT + 64 * 1024
#: The server's peak resident set size may exceed its idle size by this much:
#: every connection of the soak at its peak at once.
RSS_BOUND = (HOSTILE + GOOD) * PER_CONNECTION
# A backlog above the hostile connections: none is refused by the kernel before
# the server sees it (asyncio's default is 100).
SERVER_OPTIONS = (
    f"max_size={MAX_SIZE}",
    f"open_timeout={OPEN_TIMEOUT}",
    "close_timeout=2",
    "backlog=1024",
)


class Outcome(Exception):
    """How a hostile connection ended, when it ended early."""


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return Frame(head[0] & 0x0F, await reader.readexactly(n), bool(head[0] & 0x80))


async def ending(reader: asyncio.StreamReader, timeout: float = 15.0) -> str:
    """Read until the server's close frame or the end: ``close NNNN``, ``eof``, ``reset``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = await read_frame(reader)
                if frame.opcode == Opcode.CLOSE:
                    return f"close {Close.parse(frame.payload).code}"
    except asyncio.IncompleteReadError:
        return "eof"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"


async def http_ending(reader: asyncio.StreamReader, timeout: float = 15.0) -> str:
    """Read an HTTP response: ``HTTP NNN``, or how the connection ended without one."""
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            return "HTTP " + head.split(b" ", 2)[1].decode()
    except asyncio.IncompleteReadError:
        return "eof"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"


async def opened(
    port: int, extra: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST.format(path="/", extra=extra).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer, head


def masked(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    return Frame(opcode, payload, fin, rsv1).serialize(mask=True)


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- the misbehaviours: each returns how the connection ended ------------------

PING_BATCH = masked(Opcode.PING, bytes(125)) * 2000
PING_BATCHES = 8  # 16,000 pings, 2 MiB, a flood
# Small fragments up to max_size (test_floods.py floods a whole 1 MiB in
# one-byte frames; here 4,096 frames a connection keep the pure build's
# server, at microseconds a frame, able to answer the other peers in time).
FRAGMENTS = b"".join(
    [masked(Opcode.BINARY, bytes(64), fin=False)]
    + [masked(Opcode.CONT, bytes(64), fin=False)] * (MAX_SIZE // 64 - 1)
)
_compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
BOMB = masked(
    Opcode.BINARY,
    (_compressor.compress(bytes(64 * MIB)) + _compressor.flush(zlib.Z_SYNC_FLUSH))[:-4],
    rsv1=True,
)


async def garbage(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(bytes(random.getrandbits(8) for _ in range(200)) + b"\r\n\r\n")
    try:
        return await http_ending(reader)
    finally:
        writer.close()


async def header_flood(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-Filler: " + b"a" * 1000 + b"\r\n") * 100)
    try:
        return await http_ending(reader)
    finally:
        writer.close()


async def slowloris(port: int) -> str:
    # From before the connect: the server's timer starts when it accepts,
    # which this busy loop may hear of late.
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def trickle() -> None:
        for byte in REQUEST.format(path="/", extra="").encode():
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)
            if writer.is_closing():
                return

    # The server answers 408 (RFC 9110 15.5.9) at open_timeout, or drops the
    # connection: either ends the trickle.
    trickling = asyncio.ensure_future(trickle())
    try:
        result = await http_ending(reader, OPEN_TIMEOUT + 5)
        in_time = time.monotonic() - start >= OPEN_TIMEOUT - 0.1
        if result in ("eof", "reset", "HTTP 408") and in_time:
            return "timed out"
        return "not timed out" if result == "timeout" else result
    finally:
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await trickling
        writer.close()


async def half_frame_then_reset(port: int) -> str:
    _, writer, _ = await opened(port)
    writer.write(masked(Opcode.BINARY, bytes(1000))[:500])
    await writer.drain()
    abort(writer)
    return "reset by us"


async def ping_flood(port: int) -> str:
    _, writer, _ = await opened(port)
    try:
        async with asyncio.timeout(0.5):
            for _ in range(PING_BATCHES):
                writer.write(PING_BATCH)
                await writer.drain()
    except TimeoutError:
        pass
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    abort(writer)
    return "reset by us"


async def fragment_flood(port: int) -> str:
    reader, writer, _ = await opened(port)
    writer.write(FRAGMENTS + masked(Opcode.CONT, b"!"))
    try:
        return await ending(reader)
    finally:
        writer.close()


async def expect_close(port: int, data: bytes, extra: str = "") -> str:
    reader, writer, _ = await opened(port, extra)
    writer.write(data)
    try:
        return await ending(reader)
    finally:
        writer.close()


async def invalid_utf8(port: int) -> str:
    return await expect_close(port, masked(Opcode.TEXT, "café".encode() + b"\xc3\x28"))


async def oversized_frame(port: int) -> str:
    header = struct.pack("!BBQ", 0x82, 0xFF, 1 << 40) + os.urandom(4)
    return await expect_close(port, header + bytes(1000))


async def deflate_bomb(port: int) -> str:
    extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    return await expect_close(port, BOMB, extension)


async def unmasked_frame(port: int) -> str:
    return await expect_close(port, Frame(Opcode.BINARY, b"plain").serialize())


async def bad_close_code(port: int) -> str:
    return await expect_close(port, masked(Opcode.CLOSE, struct.pack("!H", 1004)))


async def abrupt_close(port: int) -> str:
    reader, writer, _ = await opened(port)
    writer.write(masked(Opcode.TEXT, b"hello"))
    frame = await read_frame(reader)
    assert frame.payload == b"hello"
    writer.close()
    return "closed by us"


#: Each misbehaviour and the endings that are the RFC's answer to it (or the
#: end we give it ourselves).
BEHAVIOURS: dict[str, tuple[Callable[[int], Awaitable[str]], set[str]]] = {
    "garbage for a handshake": (garbage, {"HTTP 400"}),
    "header flood": (header_flood, {"HTTP 431"}),
    "slowloris head": (slowloris, {"timed out"}),
    "half a frame, then reset": (half_frame_then_reset, {"reset by us"}),
    "ping flood, never reads": (ping_flood, {"reset by us"}),
    "64-byte fragments past max_size": (fragment_flood, {"close 1009"}),
    "invalid UTF-8": (invalid_utf8, {"close 1007"}),
    "frame of 2^40 bytes": (oversized_frame, {"close 1009"}),
    "deflate bomb": (deflate_bomb, {"close 1009"}),
    "unmasked frame": (unmasked_frame, {"close 1002"}),
    "close code 1004": (bad_close_code, {"close 1002"}),
    "abrupt close after a message": (abrupt_close, {"closed by us"}),
}


async def hostile_worker(
    port: int, index: int, until: float, outcomes: collections.Counter[tuple[str, str]]
) -> None:
    names = list(BEHAVIOURS)
    step = index
    rng = random.Random(index)
    while time.monotonic() < until:
        # A pause between connections: 500 peers at once, some 250 new ones a
        # second, a load the pure build's server keeps up with too.
        await asyncio.sleep(rng.uniform(0, PAUSE))
        name = names[step % len(names)]
        step += 1
        behaviour, _ = BEHAVIOURS[name]
        try:
            async with asyncio.timeout(30):
                result = await behaviour(port)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            result = f"{type(exc).__name__} before the misbehaviour"
        except TimeoutError:
            result = "no end within 30 s"
        outcomes[name, result] += 1


async def stats(port: int) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST.format(path="/stats", extra="").encode())
    data = await reader.read()
    writer.close()
    result: dict[str, int] = json.loads(data.partition(b"\r\n\r\n")[2])
    return result


async def soak(
    server: ServerProcess,
) -> tuple[collections.Counter[tuple[str, str]], dict[str, float]]:
    port = server.port
    idle = await stats(port)
    before, _ = server.memory()
    until = time.monotonic() + SECONDS
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    samples: list[int] = []

    async def sample() -> None:
        while time.monotonic() < until:
            samples.append(server.memory()[0])
            await asyncio.sleep(0.5)

    # The good clients run in a process of their own: their round trips
    # measure the server, not this process's loop, busy with the hostile ones.
    good = await asyncio.create_subprocess_exec(
        sys.executable,
        GOOD_CLIENTS,
        str(port),
        str(GOOD),
        str(SECONDS),
        str(MAX_SIZE),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.gather(
        sample(), *(hostile_worker(port, i, until, outcomes) for i in range(HOSTILE))
    )
    out, _ = await good.communicate()
    served = json.loads(out)
    # Nothing left behind: the server's connections and tasks go back to idle.
    deadline = time.monotonic() + 20
    while (left := await stats(port)) != idle and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    _, peak = server.memory()
    figures = {
        "good messages": served["messages"],
        "good MiB": served["bytes"] / MIB,
        "slowest good round trip s": served["slowest"],
        "hostile connections": sum(outcomes.values()),
        "idle RSS MiB": before / MIB,
        "peak RSS growth MiB": (peak - before) / MIB,
        "left connections": left["connections"] - idle["connections"],
        "left tasks": left["tasks"] - idle["tasks"],
    }
    assert not served["errors"], served["errors"]
    return outcomes, figures


def table(outcomes: collections.Counter[tuple[str, str]], figures: dict[str, float]) -> str:
    lines = ["", "| misbehaviour | ending | count | expected |", "|---|---|---:|---|"]
    for (name, result), count in sorted(outcomes.items()):
        ok = "yes" if result in BEHAVIOURS[name][1] else "**NO**"
        lines.append(f"| {name} | {result} | {count:,} | {ok} |")
    lines += ["", "| figure | value |", "|---|---:|"]
    lines += [f"| {name} | {value:,.1f} |" for name, value in figures.items()]
    return "\n".join(lines)


@pytest.mark.parametrize("api", ["async", "callback+uvloop"])
def test_chaos_soak(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    with server_process(
        api.split("+")[0], *SERVER_OPTIONS, uvloop=api.endswith("uvloop"), log_level="INFO"
    ) as server:
        outcomes, figures = asyncio.run(soak(server))
    log = server.log_lines()
    with capsys.disabled():
        print(f"\nchaos soak, {api}, {SECONDS:.0f} s, {HOSTILE} hostile + {GOOD} good at once:")
        print(table(outcomes, figures))
        print(f"| server log lines | {len(log):,} |")
    unexpected = {key: n for key, n in outcomes.items() if key[1] not in BEHAVIOURS[key[0]][1]}
    assert not unexpected, unexpected
    assert set(name for name, _ in outcomes) == set(BEHAVIOURS)
    assert figures["good messages"] > 0
    assert figures["peak RSS growth MiB"] * MIB < RSS_BOUND
    assert figures["left connections"] == 0 and figures["left tasks"] == 0
    assert len(log) <= figures["hostile connections"], log[:20]
    assert not [line for line in log if line.startswith(("ERROR", "CRITICAL", "Traceback"))]

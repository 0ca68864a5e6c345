"""What hostile peers cost a server, measured on a server in a process of its own.

Each test reads the server's resident set size (``VmRSS`` before, ``VmHWM``,
the peak, after) from ``/proc``: the figures the README's memory bound is
about.  Run with ``-s`` to see them.
"""

from __future__ import annotations

import functools
import random
import time
import zlib

import pytest

from rapidws.protocol.frames import Close, Frame, Opcode

from .peers import REQUEST, Peer, echo_round_trips, server_process

MIB = 1 << 20

# Each API, on asyncio's loop and on uvloop (rapidws's own transport).
pytestmark = pytest.mark.parametrize("api", ["async", "callback", "async+uvloop"])


def test_ping_flood_without_reading_is_bounded(api: str) -> None:
    # A client sends up to 1,000,000 pings of 125 bytes and does not read.
    # The server holds the answer (the latest pong alone, RFC 6455 5.5.3)
    # and stops reading from it once its writes back up; others are served.
    with server_process(api.split("+")[0], uvloop=api.endswith("uvloop")) as server:
        echo_round_trips(server.port, 10)
        before, _ = server.memory()
        flood = Peer.websocket(server.port)
        batch = Frame(Opcode.PING, bytes(range(125))).serialize(mask=True) * 1000
        frame_size = len(batch) // 1000
        sent = 0
        deadline = time.monotonic() + 60
        while sent < 1_000_000 * frame_size and time.monotonic() < deadline:
            went = flood.pump(batch, stall=1.0, deadline=deadline)
            sent += went
            if went < len(batch):  # the server stopped reading: finish the frame later
                rest = batch[went:]
                break
            if sent % (50 * len(batch)) == 0:
                echo_round_trips(server.port, 1)  # others are served throughout
        else:
            rest = b""
        echo_round_trips(server.port, 10)
        _, peak = server.memory()
        pings = -(-sent // frame_size)  # a frame sent in part is finished below
        print(f"\n{api}: {pings:,} pings sent, server RSS +{(peak - before) / MIB:.1f} MiB")
        assert peak - before < 8 * MIB
        assert pings < 1_000_000, "the server kept reading a peer that does not read"
        # Still open: reading now, the client gets pongs (no more than its
        # pings), and the closing handshake completes.
        flood.finish_sending(rest[: -sent % frame_size] if rest else b"")
        flood.finish_sending(Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True))
        received = flood.read_until_close(timeout=60)
        flood.close()
        pongs = received.counts.get(Opcode.PONG, 0)
        print(f"{api}: {pongs:,} pongs received")
        assert 0 < pongs <= pings
        assert received.close == Close(1000, "")
    assert server.log_lines() == []


@functools.cache  # built once for every API
def one_byte_frames(kind: str) -> bytes:
    """A message of one-byte frames whose payload goes past 1 MiB, never final."""
    if kind == "compressed":
        # Random bytes do not compress: a byte of deflate stream is about a
        # byte of message.
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = compressor.compress(random.Random(1).randbytes(MIB + 4096))
        data += compressor.flush(zlib.Z_SYNC_FLUSH)
        first = Frame(Opcode.BINARY, data[:1], fin=False, rsv1=True).serialize(mask=True)
    else:
        # Text: a 3-byte character cut at every byte, then more of them.
        data = "€".encode() * (MIB // 3 + 2) if kind == "text" else bytes(MIB + 1)
        opcode = Opcode.TEXT if kind == "text" else Opcode.BINARY
        first = Frame(opcode, data[:1], fin=False).serialize(mask=True)
    frames = [first]
    frames += [
        Frame(Opcode.CONT, data[i : i + 1], fin=False).serialize(mask=True)
        for i in range(1, len(data))
    ]
    return b"".join(frames)


@pytest.mark.parametrize("kind", ["binary", "text", "compressed"])
def test_fragment_flood_ends_with_1009_in_bounded_memory(api: str, kind: str) -> None:
    # A message of one-byte frames up to max_size (1 MiB), then more.
    with server_process(api.split("+")[0], uvloop=api.endswith("uvloop")) as server:
        echo_round_trips(server.port, 10)
        before, _ = server.memory()
        extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if kind == "compressed" else ""
        flood = Peer.websocket(server.port, extra=extra)
        flood.finish_sending(one_byte_frames(kind), timeout=120)
        received = flood.read_until_close(timeout=60)
        flood.close()
        _, peak = server.memory()
        growth = (peak - before) / MIB
        print(f"\n{api}: server RSS +{growth:.1f} MiB, 1 MiB of {kind} in 1-byte frames")
        assert received.close is not None and received.close.code == 1009
        assert peak - before < 2 * MIB + 4 * MIB
        echo_round_trips(server.port, 10)
    assert len(server.log_lines()) <= 1


@pytest.mark.parametrize(
    ("status", "opening", "more"),
    [
        (400, b"NOT HTTP AT ALL\r\n\r\n", b"garbage " * 512),
        (403, REQUEST.format(path="/reject", extra="").encode(), b"\x00" * 4096),
        (431, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Filler: " + b"a" * 4080 + b"\r\n"),
    ],
)
def test_error_response_arrives_whole(api: str, status: int, opening: bytes, more: bytes) -> None:
    # The client goes on sending, 512 KiB in all, while the error response
    # goes out, and reads only afterwards: it must get the whole response,
    # never a reset.
    with server_process(api.split("+")[0], uvloop=api.endswith("uvloop")) as server:
        peer = Peer(server.port)
        peer.sock.sendall(opening)
        for _ in range(512 * 1024 // len(more)):
            peer.sock.sendall(more)
        data = b""
        while chunk := peer.sock.recv(65536):
            data += chunk
        peer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status), data[:200]
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        assert len(body) == length
        echo_round_trips(server.port, 3)
    assert len(server.log_lines()) <= 1

"""What hostile peers cost a server, measured on a server in a process of its own.

Each test reads the server's resident set size (``VmRSS`` before, ``VmHWM``,
the peak, after) from ``/proc``: the figures the README's memory bound is
about.  Run with ``-s`` to see them.
"""

from __future__ import annotations

import socket
import time

import pytest

from rapidws.protocol.frames import Close, Frame, Opcode

from .peers import REQUEST, Peer, echo_round_trips, server_process

MIB = 1 << 20

pytestmark = pytest.mark.parametrize("api", ["async", "callback"])


def test_ping_flood_without_reading_is_bounded(api: str) -> None:
    # A client sends up to 1,000,000 pings of 125 bytes and does not read.
    # The server holds the answer (the latest pong alone, RFC 6455 5.5.3)
    # and stops reading from it once its writes back up; others are served.
    with server_process(api) as server:
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


def test_fragment_flood_ends_with_1009_in_bounded_memory(api: str) -> None:
    # A message of one-byte frames up to max_size (1 MiB), then one byte more.
    with server_process(api) as server:
        echo_round_trips(server.port, 10)
        before, _ = server.memory()
        flood = Peer.websocket(server.port)
        frames = [Frame(Opcode.BINARY, b"x", fin=False).serialize(mask=True)]
        frames += [Frame(Opcode.CONT, b"x", fin=False).serialize(mask=True)] * (MIB - 1)
        frames.append(Frame(Opcode.CONT, b"!", fin=False).serialize(mask=True))
        flood.finish_sending(b"".join(frames), timeout=120)
        received = flood.read_until_close(timeout=60)
        flood.close()
        _, peak = server.memory()
        print(f"\n{api}: server RSS +{(peak - before) / MIB:.1f} MiB for 1 MiB in one-byte frames")
        assert received.close is not None and received.close.code == 1009
        assert peak - before < 2 * MIB + 4 * MIB
        echo_round_trips(server.port, 10)
    assert len(server.log_lines()) <= 1


def header_flood(peer: Peer) -> bytes:
    """Send headers 4 KiB at a time until the server answers; then 256 KiB more."""
    peer.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    filler = b"X-Filler: " + b"a" * 4080 + b"\r\n"
    for _ in range(64):
        peer.sock.sendall(filler * 16)
    return filler * 64


@pytest.mark.parametrize(
    ("status", "opening", "more"),
    [
        (400, b"NOT HTTP AT ALL\r\n\r\n", b"garbage " * 8192),
        (403, REQUEST.format(path="/reject", extra="").encode(), b"\x00" * 65536),
        (431, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Filler: " + b"a" * 4080 + b"\r\n"),
    ],
)
def test_error_response_arrives_whole(api: str, status: int, opening: bytes, more: bytes) -> None:
    # The client goes on sending while the error response goes out, and
    # reads only afterwards: it must get the whole response, never a reset.
    with server_process(api) as server:
        peer = Peer(server.port)
        peer.sock.sendall(opening)
        sent = 0
        deadline = time.monotonic() + 30
        # Keep sending until the response has arrived, then 256 KiB more.
        while time.monotonic() < deadline:
            peer.sock.setblocking(False)
            try:
                arrived = peer.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                arrived = b""
            finally:
                peer.sock.setblocking(True)
            if arrived:
                break
            peer.sock.sendall(more)
            sent += len(more)
        extra = 0
        while extra < 256 * 1024:
            peer.sock.sendall(more)
            extra += len(more)
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

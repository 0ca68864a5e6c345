"""Hostile and well-behaved peers on blocking sockets, and the server process they meet."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rapidws.protocol.frames import Close, Frame, Opcode

SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")

REQUEST = (
    "GET {path} HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "{extra}"
    "\r\n"
)


@dataclass
class ServerProcess:
    """The echo server of ``server.py`` in its own process."""

    port: int
    proc: subprocess.Popen[bytes]
    log: bytes = b""

    def memory(self) -> tuple[int, int]:
        """Its resident set size now and at its peak so far, in bytes."""
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields[name] = value.split()
        return int(fields["VmRSS"][0]) * 1024, int(fields["VmHWM"][0]) * 1024

    def log_lines(self) -> list[str]:
        return [line for line in self.log.decode(errors="replace").splitlines() if line]


@contextlib.contextmanager
def server_process(
    api: str = "async", *options: str, uvloop: bool = False, log_level: str = "WARNING"
) -> Iterator[ServerProcess]:
    """Start ``server.py`` (``options``: ``NAME=VALUE`` for ``serve``); stop it after."""
    command = [sys.executable, SERVER_SCRIPT, "--api", api, "--log-level", log_level]
    if uvloop:
        command.append("--uvloop")
    for option in options:
        command += ["--option", option]
    # The log goes to a file: a pipe nobody reads until the end would fill
    # up and block the server mid-test.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd="/")
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=10)
                log.seek(0)
                raise RuntimeError(f"server did not start: {log.read()!r}")
            server = ServerProcess(int(line), proc)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            log.seek(0)
            if "server" in locals():
                server.log = log.read()


@dataclass
class Received:
    """What a peer read: frames by opcode, the close frame, the end of the stream."""

    counts: dict[int, int] = field(default_factory=dict)
    messages: list[Frame] = field(default_factory=list)
    close: Close | None = None
    eof: bool = False


class Peer:
    """A raw client socket: sends any bytes, parses what comes back."""

    def __init__(self, port: int, *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.received = Received()

    @classmethod
    def websocket(cls, port: int, path: str = "/", extra: str = "") -> Peer:
        """A peer past the opening handshake."""
        peer = cls(port)
        peer.sock.sendall(REQUEST.format(path=path, extra=extra).encode())
        head = peer.read_head()
        assert head.startswith(b"HTTP/1.1 101 "), head
        return peer

    def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed during the handshake: {self.buffer!r}")
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.sock.sendall(Frame(opcode, payload, fin).serialize(mask=True))

    def feed(self, data: bytes) -> None:
        """Parse ``data`` (server frames) into :attr:`received`."""
        self.buffer += data
        view = memoryview(self.buffer)
        pos = 0
        while (parsed := Frame.parse(view[pos:])) is not None:  # type: ignore[arg-type]
            frame, _, consumed = parsed
            pos += consumed
            counts = self.received.counts
            counts[frame.opcode] = counts.get(frame.opcode, 0) + 1
            if frame.opcode == Opcode.CLOSE:
                self.received.close = Close.parse(frame.payload)
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self.received.messages.append(frame)
        view.release()
        self.buffer = self.buffer[pos:]

    def read_until_close(self, timeout: float = 30.0) -> Received:
        """Read (and parse) until the close frame and the end of the stream."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                self.received.eof = True
                break
            self.feed(data)
        return self.received

    def pump(self, data: bytes, *, stall: float, deadline: float) -> int:
        """Send ``data`` without reading; stop once the socket takes nothing for ``stall`` s.

        Returns how many bytes went.
        """
        view = memoryview(data)
        sent = 0
        self.sock.setblocking(False)
        try:
            while sent < len(view) and time.monotonic() < deadline:
                _, writable, _ = select.select([], [self.sock], [], stall)
                if not writable:
                    break
                try:
                    sent += self.sock.send(view[sent:])
                except BlockingIOError:
                    continue
        finally:
            self.sock.setblocking(True)
        return sent

    def finish_sending(self, data: bytes, timeout: float = 30.0) -> None:
        """Send all of ``data`` while reading (and parsing) what comes back."""
        view = memoryview(data)
        sent = 0
        deadline = time.monotonic() + timeout
        self.sock.setblocking(False)
        try:
            while sent < len(view):
                assert time.monotonic() < deadline, "the server stopped reading"
                readable, writable, _ = select.select([self.sock], [self.sock], [], 1.0)
                if readable:
                    chunk = self.sock.recv(1 << 20)
                    if chunk:
                        self.feed(chunk)
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        sent += self.sock.send(view[sent:])
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def echo_round_trips(port: int, count: int, size: int = 1000) -> None:
    """A well-behaved client: ``count`` numbered messages echoed back intact."""
    peer = Peer.websocket(port)
    try:
        for i in range(count):
            payload = (b"%08d" % i) * (size // 8)
            peer.send_frame(Opcode.BINARY, payload)
            while not peer.received.messages:
                data = peer.sock.recv(65536)
                assert data, "the server closed a well-behaved client"
                peer.feed(data)
            frame = peer.received.messages.pop(0)
            assert frame.payload == payload
        peer.send_frame(Opcode.CLOSE, Close(1000, "").serialize())
        assert peer.read_until_close().close == Close(1000, "")
    finally:
        peer.close()

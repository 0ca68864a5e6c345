"""The load generator: one fixed, cheap WebSocket client for every server.

It speaks just enough RFC 6455 to load a server and nothing more, so that
its own cost per message is close to zero and the same for every library:

- the opening handshake is a fixed request (no extensions, no subprotocol)
  and the response is only checked for ``101``;
- every message is one pre-built masked binary frame (a fixed key; the
  server unmasks it all the same), and the frames for a batch are one write;
- an echoed message is counted by bytes: the server's frame for an
  ``n``-byte payload is ``header(n) + n`` bytes, unmasked, and servers run
  with keepalive pings off, so the byte count alone gives the message count.
  The first echo is checked byte for byte.

Against the raw TCP echo (``raw=True``) there is no handshake and the echo
of a frame is the frame itself.

Runs on whatever loop is current; the suite uses uvloop for it.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MASK_KEY = b"\x37\xfa\x21\x3d"

REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

# Close frame, code 1000, masked.
CLOSE_FRAME = (
    bytes([0x88, 0x82])
    + MASK_KEY
    + bytes(a ^ b for a, b in zip(b"\x03\xe8", MASK_KEY, strict=False))
)


def header(n: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if n < 126:
        return bytes([0x82, bit | n])
    if n < 65536:
        return struct.pack("!BBH", 0x82, bit | 126, n)
    return struct.pack("!BBQ", 0x82, bit | 127, n)


def masked_frame(payload: bytes) -> bytes:
    key = (MASK_KEY * (len(payload) // 4 + 1))[: len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        len(payload), "big"
    )
    return header(len(payload), True) + MASK_KEY + masked


@dataclass
class Message:
    """One message: the frame sent and the bytes expected back."""

    frame: bytes
    echo: bytes

    @classmethod
    def binary(cls, size: int, raw: bool = False) -> Message:
        payload = (os.urandom(64) * (size // 64 + 1))[:size]
        frame = masked_frame(payload)
        return cls(frame, frame if raw else header(size, False) + payload)


class Client(asyncio.Protocol):
    """One connection: handshake, then a window of messages in flight."""

    def __init__(self, message: Message, raw: bool) -> None:
        self.message = message
        self.raw = raw
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.handshake = bytearray()
        self.received = 0  # echo bytes since the handshake
        self.sent = 0  # messages sent
        self.window = 1
        self.refill_at = 1  # send again once this many echoes are back: fewer, larger writes
        self.running = False
        self.checked = bytearray()  # the first echo, to compare
        self.abort_timer: asyncio.TimerHandle | None = None

    # -- asyncio -----------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.handshake += data
            if self.raw:
                if len(self.handshake) < len(REQUEST):
                    return
                extra = bytes(self.handshake[len(REQUEST) :])
            else:
                end = self.handshake.find(b"\r\n\r\n")
                if end < 0:
                    return
                if not self.handshake.startswith(b"HTTP/1.1 101"):
                    status = bytes(self.handshake[: self.handshake.find(b"\r\n")])
                    self.opened.set_exception(RuntimeError(f"handshake failed: {status!r}"))
                    self.transport.close()
                    return
                extra = bytes(self.handshake[end + 4 :])
            self.opened.set_result(None)
            if not extra:
                return
            data = extra
        if len(self.checked) < len(self.message.echo):
            self.checked += data[: len(self.message.echo) - len(self.checked)]
        self.received += len(data)
        if self.running:
            self._refill()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.abort_timer is not None:
            self.abort_timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)

    # -- load ----------------------------------------------------------------

    @property
    def echoed(self) -> int:
        return self.received // len(self.message.echo)

    def _refill(self) -> None:
        missing = self.window - (self.sent - self.echoed)
        if missing >= self.refill_at:
            self.transport.write(
                self.message.frame * missing if missing > 1 else self.message.frame
            )
            self.sent += missing

    def start(self, window: int) -> None:
        self.window = window
        self.refill_at = max(1, window // 4)
        self.running = True
        self._refill()

    def stop(self) -> None:
        self.running = False

    async def drain(self, timeout: float) -> None:
        """Wait for every message in flight to come back."""
        deadline = self.loop.time() + timeout
        while self.echoed < self.sent:
            if self.loop.time() > deadline:
                raise TimeoutError(f"{self.sent - self.echoed} echoes missing")
            await asyncio.sleep(0.001)
        if self.received != self.sent * len(self.message.echo):
            raise RuntimeError("the server sent more than the echoes")
        if self.sent and bytes(self.checked) != self.message.echo:
            raise RuntimeError("the first echo differs from the message sent")

    async def close(self, timeout: float = 5.0) -> None:
        if not self.raw and not self.transport.is_closing():
            self.transport.write(CLOSE_FRAME)
            self.abort_timer = self.loop.call_later(timeout, self.transport.abort)
        else:
            self.transport.close()
        await self.lost


async def open_client(port: int, message: Message, raw: bool, timeout: float = 10.0) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: Client(message, raw), "127.0.0.1", port), timeout
    )
    await asyncio.wait_for(client.opened, timeout)
    return client


@dataclass
class Window:
    """What one measurement window saw."""

    messages: int
    seconds: float
    client_cpu: float  # seconds of this process's CPU time

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def client_utilisation(self) -> float:
        return self.client_cpu / self.seconds


async def measure(
    clients: list[Client],
    window: int,
    duration: float,
    on_start: Callable[[], None],
    on_stop: Callable[[], None],
) -> Window:
    """Keep ``window`` messages in flight on each client for ``duration`` seconds.

    ``on_start`` and ``on_stop`` run at the window's edges (they read the
    server's CPU time); warm-up traffic goes before ``on_start``.
    """
    for client in clients:
        client.start(window)
    await asyncio.sleep(min(0.2, duration / 5))  # warm up
    base = sum(c.echoed for c in clients)
    cpu0, t0 = time.process_time(), time.perf_counter()
    on_start()
    await asyncio.sleep(duration)
    count = sum(c.echoed for c in clients) - base
    cpu1, t1 = time.process_time(), time.perf_counter()
    on_stop()
    for client in clients:
        client.stop()
    await asyncio.gather(*(c.drain(30.0) for c in clients))
    return Window(count, t1 - t0, cpu1 - cpu0)


async def handshakes(
    port: int,
    raw: bool,
    duration: float,
    concurrency: int,
    on_start: Callable[[], None],
    on_stop: Callable[[], None],
) -> Window:
    """Open, handshake and close connections, ``concurrency`` at a time, for ``duration`` s."""
    message = Message.binary(0, raw)
    done = 0
    stopping = False

    async def worker() -> None:
        nonlocal done
        while not stopping:
            client = await open_client(port, message, raw)
            await client.close()
            done += 1

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(min(0.2, duration / 5))
        base = done
        cpu0, t0 = time.process_time(), time.perf_counter()
        on_start()
        await asyncio.sleep(duration)
        count = done - base
        cpu1, t1 = time.process_time(), time.perf_counter()
        on_stop()
    finally:
        stopping = True
        await asyncio.gather(*workers)
    return Window(count, t1 - t0, cpu1 - cpu0)

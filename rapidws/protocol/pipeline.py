"""Pipeline stages (as SprayWebSockets' ``extraStages``): between the engine and the application.

Each connection gets stages of its own: ``stages`` holds instances, copied
for each connection (templates), or factories (a class, a ``lambda``) called
for each.  A connection opened with ``stages=[...]`` hands everything it receives to
its first stage, on its way up to the application, and everything the
application sends to its last, on its way down to the engine.  Each stage
passes an item on (``pipe.up`` / ``pipe.down``), drops it (does nothing),
transforms it or injects others.  Items are messages (``str``, ``bytes``)
and frames (:class:`~rapidws.protocol.frames.Frame`: data fragments below
:class:`Reassemble`, and pings and pongs anywhere).

The stages here are sans-I/O: what a stage needs of time comes from the
pipe (``pipe.time()``, ``pipe.call_later()``), which the I/O layer provides
(``rapidws.io.pipeline``).  The engine keeps every protocol rule whatever the
stages do, and answers closes itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from .frames import Frame, Opcode

__all__ = ["AutoPing", "AutoPong", "Item", "Pipe", "Reassemble", "Stage"]

Item = str | bytes | Frame


class Pipe(Protocol):
    """What a stage can do with its connection (``rapidws.io.pipeline.Pipe``)."""

    def up(self, stage: Stage, item: Item) -> None:
        """Pass ``item`` on toward the application."""

    def down(self, stage: Stage, item: Item) -> None:
        """Pass ``item`` on toward the peer."""

    def time(self) -> float:
        """The loop's clock, in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Call ``callback`` in ``delay`` seconds (the handle has ``cancel()``)."""

    def report_rtt(self, seconds: float) -> None:
        """Tell the application of a round-trip time (``Listener.on_rtt``, ``ws.wait_rtt()``)."""

    @property
    def is_open(self) -> bool:
        """Whether the connection is open (frames may still be sent)."""
        ...


class Stage:
    """A pipeline stage: it passes everything by default; override what you need."""

    def opened(self, pipe: Pipe) -> None:
        """The connection is open."""

    def inbound(self, pipe: Pipe, item: Item) -> None:
        """``item`` is on its way up to the application."""
        pipe.up(self, item)

    def outbound(self, pipe: Pipe, item: Item) -> None:
        """``item`` is on its way down to the peer."""
        pipe.down(self, item)

    def closed(self, pipe: Pipe) -> None:
        """The connection is closed."""


class AutoPong(Stage):
    """Pings are answered as they arrive (RFC 6455 5.5.2), by the engine itself.

    On by default: a pipeline without it hands pings to the application,
    which then answers them (a PONG frame through ``send_frame``) or not.
    """


class Reassemble(Stage):
    """Data frames into messages: what ``frames=False`` means.

    First in the pipeline (the default), it costs nothing here: the engine
    reassembles, in C in the compiled build.  With frame stages below it,
    it joins the fragments of each message in one buffer and decodes text;
    the engine has checked every rule (order, UTF-8, ``max_size``) already.
    """

    def __init__(self) -> None:
        self._opcode = 0
        self._buffer = bytearray()

    def inbound(self, pipe: Pipe, item: Item) -> None:
        if not isinstance(item, Frame) or item.opcode >= 8:
            pipe.up(self, item)
            return
        if item.opcode != Opcode.CONT:
            self._opcode = item.opcode
            self._buffer = bytearray()
        self._buffer += item.payload
        if not item.fin:
            return
        data = bytes(self._buffer)
        self._buffer = bytearray()
        pipe.up(self, data.decode("utf-8") if self._opcode == Opcode.TEXT else data)


def _random_payload() -> bytes:
    return os.urandom(8)


class AutoPing(Stage):
    """Pings every ``interval`` seconds, matches pongs by payload, reports round trips.

    Each round-trip time goes to the application (``Listener.on_rtt(conn,
    seconds)``; ``await ws.wait_rtt()`` in the async API, and ``ws.latency``);
    the pongs that answer these pings go no further up.  ``payload_factory``
    makes each ping's payload (8 random bytes by default; at most 125).
    """

    def __init__(
        self, interval: float, payload_factory: Callable[[], bytes] = _random_payload
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.payload_factory = payload_factory
        self._sent: dict[bytes, float] = {}
        self._timer: Any = None

    def opened(self, pipe: Pipe) -> None:
        self._timer = pipe.call_later(self.interval, lambda: self._ping(pipe))

    def _ping(self, pipe: Pipe) -> None:
        self._timer = None
        if not pipe.is_open:
            return
        payload = self.payload_factory()
        if len(self._sent) > 64:  # pongs that never came: forget the oldest
            self._sent.pop(next(iter(self._sent)))
        self._sent[payload] = pipe.time()
        pipe.down(self, Frame(Opcode.PING, payload))
        self._timer = pipe.call_later(self.interval, lambda: self._ping(pipe))

    def inbound(self, pipe: Pipe, item: Item) -> None:
        if isinstance(item, Frame) and item.opcode == Opcode.PONG:
            sent = self._sent.pop(item.payload, None)
            if sent is not None:
                pipe.report_rtt(pipe.time() - sent)
                return
        pipe.up(self, item)

    def closed(self, pipe: Pipe) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

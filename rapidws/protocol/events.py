"""Events for using the engine as a plain sans-I/O object.

:class:`EventSink` implements the engine's :class:`~rapidws.protocol.engine.Sink`
by recording what happens as frozen event objects and buffering outgoing
bytes, in the style of wsproto and h11.  The I/O layers implement the sink
directly and never build these objects.
"""

from __future__ import annotations

import dataclasses

from ..exceptions import ProtocolError

__all__ = [
    "CloseReceived",
    "Event",
    "EventSink",
    "Failed",
    "FrameReceived",
    "Message",
    "Ping",
    "Pong",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class CloseReceived:
    code: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """The peer broke the protocol; ``code`` is the close code sent."""

    code: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class FrameReceived:
    """A frame, with the frame API (``Engine(frames=True)``); ``rsv`` as on the wire."""

    opcode: int
    payload: bytes
    fin: bool
    rsv: int


Event = Message | Ping | Pong | CloseReceived | Failed | FrameReceived


class EventSink:
    """A sink that collects events and outgoing bytes."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.out = bytearray()
        self.eof_sent = False

    def write(self, data: bytes) -> None:
        self.out += data

    def write_eof(self) -> None:
        self.eof_sent = True

    def on_message(self, message: str | bytes) -> None:
        self.events.append(Message(message))

    def on_ping(self, payload: bytes) -> None:
        self.events.append(Ping(payload))

    def on_pong(self, payload: bytes) -> None:
        self.events.append(Pong(payload))

    def on_close(self, code: int, reason: str) -> None:
        self.events.append(CloseReceived(code, reason))

    def on_fail(self, exc: ProtocolError) -> None:
        self.events.append(Failed(exc.code, str(exc)))

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        self.events.append(FrameReceived(opcode, payload, fin, rsv))

    def take_events(self) -> list[Event]:
        """Return and forget the events so far."""
        events, self.events = self.events, []
        return events

    def take_data(self) -> bytes:
        """Return and forget the bytes to send so far."""
        data = bytes(self.out)
        self.out.clear()
        return data

"""The engine against its closing and failing table (CLOSE_RULES), row by row, both roles."""

from __future__ import annotations

import pytest

from rapidws.exceptions import InvalidState
from rapidws.protocol.engine import CLIENT, CLOSE_RULES, CLOSED, CLOSING, OPEN, SERVER, Engine
from rapidws.protocol.events import CloseReceived, EventSink, Failed, Message
from rapidws.protocol.frames import Close, Frame, Opcode

STATES = {OPEN: "OPEN", CLOSING: "CLOSING", CLOSED: "CLOSED"}
CODES = {"send_close": 1000, "protocol error": 1002, "fail": 1011}


def frame(side: int, opcode: int, payload: bytes = b"") -> bytes:
    """A frame as the peer of ``side`` sends it."""
    return Frame(opcode, payload).serialize(mask=side == SERVER)


def engine_in(state: int, side: int) -> tuple[Engine, EventSink]:
    sink = EventSink()
    engine = Engine(side, sink)
    if state != OPEN:
        engine.send_close(1001)
    if state == CLOSED:
        engine.receive_data(frame(side, Opcode.CLOSE, Close(1001, "").serialize()))
    assert engine.state == state
    sink.take_data()
    sink.take_events()
    sink.eof_sent = False
    return engine, sink


def apply(engine: Engine, side: int, event: str) -> None:
    if event == "close frame":
        engine.receive_data(frame(side, Opcode.CLOSE, Close(1000, "bye").serialize()))
    elif event == "send_close":
        engine.send_close(1000)
    elif event == "protocol error":
        engine.receive_data(frame(side, 0x3, b"reserved opcode"))
    elif event == "fail":
        engine.fail(1011, "internal error")
    elif event == "data frame":
        engine.receive_data(frame(side, Opcode.TEXT, b"data"))
    else:
        assert event == "end of stream"
        engine.receive_eof()


@pytest.mark.parametrize("side", [SERVER, CLIENT], ids=["server", "client"])
@pytest.mark.parametrize(
    ("state", "event"), list(CLOSE_RULES), ids=[f"{STATES[s]}-{e}" for s, e in CLOSE_RULES]
)
def test_close_rule(state: int, event: str, side: int) -> None:
    new_state, written, half_close, told = CLOSE_RULES[state, event]
    engine, sink = engine_in(state, side)
    if written == "error":
        with pytest.raises(InvalidState):
            apply(engine, side, event)
        written = ""
    else:
        apply(engine, side, event)
    assert engine.state == new_state
    data = sink.take_data()
    if written:
        parsed = Frame.parse(data)
        assert parsed is not None and parsed[2] == len(data), "one frame"
        sent, masked, _ = parsed
        assert masked is (side == CLIENT)
        assert sent.opcode == Opcode.CLOSE
        code = Close.parse(sent.payload).code
        assert code == (1000 if written == "echo" else CODES[event])
    else:
        assert data == b""
    assert sink.eof_sent is (half_close and side == SERVER)
    kinds = {"on_close": CloseReceived, "on_fail": Failed, "on_message": Message}
    events = sink.take_events()
    if told:
        assert [type(e) for e in events] == [kinds[told]]
    else:
        assert events == []


def test_every_state_meets_every_event() -> None:
    events = {event for _, event in CLOSE_RULES}
    assert set(CLOSE_RULES) == {(state, event) for state in STATES for event in events}


def test_nothing_after_a_local_failure_in_the_same_read() -> None:
    # A callback that fails the connection (a Listener whose on_message
    # raised) is given nothing more, not even the rest of that read.
    class FailOnFirst(EventSink):
        engine: Engine

        def on_message(self, message: str | bytes) -> None:
            super().on_message(message)
            self.engine.fail(1011, "internal error")

    sink = FailOnFirst()
    engine = sink.engine = Engine(SERVER, sink)
    engine.receive_data(b"".join(frame(SERVER, Opcode.TEXT, b"%d" % i) for i in range(3)))
    assert sink.take_events() == [Message("0")]
    assert engine.state == CLOSED


def test_messages_after_a_local_close_are_still_delivered() -> None:
    engine, sink = engine_in(CLOSING, SERVER)
    engine.receive_data(
        frame(SERVER, Opcode.TEXT, b"sent before it saw our close")
        + frame(SERVER, Opcode.CLOSE, Close(1001, "").serialize())
    )
    assert sink.take_events() == [Message("sent before it saw our close"), CloseReceived(1001, "")]

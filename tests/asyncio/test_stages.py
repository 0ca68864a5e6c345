"""Pipeline stages over loopback: user stages, AutoPong, AutoPing, Reassemble, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import rapidws
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.frames import Frame, Opcode
from rapidws.protocol.pipeline import AutoPing, AutoPong, Item, Pipe, Reassemble, Stage

from .helpers import port_of, running_server


class Upper(Stage):
    """Transforms text both ways; drops messages that say "drop"; injects a greeting."""

    def opened(self, pipe: Pipe) -> None:
        pipe.down(self, "welcome")

    def inbound(self, pipe: Pipe, item: Item) -> None:
        if item == "drop":
            return
        pipe.up(self, item.upper() if isinstance(item, str) else item)

    def outbound(self, pipe: Pipe, item: Item) -> None:
        pipe.down(self, f"<{item}>" if isinstance(item, str) else item)


async def test_a_user_stage_passes_drops_transforms_and_injects() -> None:
    async with (
        running_server(stages=[Upper()]) as (_, uri),
        rapidws.connect(uri) as ws,
    ):
        assert await ws.recv() == "welcome"  # injected by the stage as the connection opened
        await ws.send("drop")
        await ws.send("hello")
        assert await ws.recv() == "<HELLO>"  # up: upper-cased; down: bracketed


class CountFrames(Stage):
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def inbound(self, pipe: Pipe, item: Item) -> None:
        if isinstance(item, Frame):
            self.frames.append(item)
        pipe.up(self, item)


async def test_frame_stages_below_reassemble_then_messages_above() -> None:
    made: list[CountFrames] = []

    def counter() -> CountFrames:  # a factory: each connection gets its own stage
        made.append(CountFrames())
        return made[-1]

    async with (
        running_server(stages=[AutoPong, counter, Reassemble]) as (_, uri),
        rapidws.connect(uri) as ws,
    ):
        await ws.send(["one ", "message ", "in three"])
        assert await ws.recv() == "one message in three"
    (stage,) = made
    data = [f for f in stage.frames if f.opcode < 8]
    assert [f.opcode for f in data] == [Opcode.TEXT, Opcode.CONT, Opcode.CONT]


class Recorder(Listener):
    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.rtts: list[float] = []
        self.rtt = asyncio.Event()

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        conn.send(data)

    def on_ping(self, conn: ListenerConnection, payload: bytes) -> None:
        self.pings.append(payload)

    def on_rtt(self, conn: ListenerConnection, seconds: float) -> None:
        self.rtts.append(seconds)
        self.rtt.set()


async def test_without_autopong_pings_go_to_the_application_unanswered() -> None:
    recorder = Recorder()
    async with (
        serve_listener(lambda request: recorder, "127.0.0.1", 0, stages=[Reassemble()]) as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}") as ws,
    ):
        pong = await ws.ping(b"anyone?")
        await ws.send("sync")  # the echo comes after the ping was handled
        assert await ws.recv() == "sync"
        assert recorder.pings == [b"anyone?"]
        assert not pong.done()  # nobody answered


async def test_autoping_reports_round_trips_and_hides_its_pongs() -> None:
    recorder = Recorder()
    stages = [AutoPong(), Reassemble(), AutoPing(0.01, lambda: b"rtt")]
    async with (
        serve_listener(lambda request: recorder, "127.0.0.1", 0, stages=stages) as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}") as ws,
    ):
        await asyncio.wait_for(recorder.rtt.wait(), 10)
        assert 0 <= recorder.rtts[0] < 5
        await ws.send("still fine")
        assert await ws.recv() == "still fine"


async def test_autoping_in_the_async_api() -> None:
    async with (
        running_server() as (_, uri),
        rapidws.connect(uri, stages=[AutoPing(0.01)]) as ws,
    ):
        seconds = await asyncio.wait_for(ws.wait_rtt(), 10)
        assert 0 <= seconds < 5 and ws.latency == seconds


class Broken(Stage):
    def inbound(self, pipe: Pipe, item: Item) -> None:
        raise RuntimeError("stage bug")


async def test_a_stage_that_raises_closes_with_1011_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_server(stages=[Broken()]) as (_, uri):
        async with rapidws.connect(uri) as ws:
            await ws.send("x")
            with pytest.raises(rapidws.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1011
        assert "pipeline stage" in caplog.text
        async with rapidws.connect(uri) as ws:  # the next client is served (and fails alike)
            await ws.send("y")
            with pytest.raises(rapidws.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)


async def test_outbound_errors_reach_the_caller() -> None:
    class Refuse(Stage):
        def outbound(self, pipe: Pipe, item: Item) -> None:
            raise ValueError("not this")

    async with running_server() as (_, uri), rapidws.connect(uri, stages=[Refuse()]) as ws:
        with pytest.raises(ValueError, match="not this"):
            await ws.send("x")


async def test_no_stages_means_no_pipe() -> None:
    async def check(ws: Any) -> None:
        assert ws._pipe is None and type(ws.engine).__name__ == "Engine"
        await ws.send("ok")

    async with running_server(check) as (_, uri), rapidws.connect(uri) as ws:
        assert await ws.recv() == "ok"


async def test_each_connection_gets_stages_of_its_own() -> None:
    template = Reassemble()
    async with (
        running_server(stages=[AutoPong(), CountFrames(), template]) as (server, uri),
        rapidws.connect(uri) as a,
        rapidws.connect(uri) as b,
    ):
        await a.send(["a1", "a2"])
        await b.send(["b1", "b2"])
        assert await a.recv() == "a1a2" and await b.recv() == "b1b2"
        pipes = [conn._pipe for conn in server.connections]  # type: ignore[attr-defined]
        assert pipes[0].stages[2] is not pipes[1].stages[2] is not template

"""The frame API over loopback: frames=True in the async and callback APIs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import rapidws
from rapidws.exceptions import InvalidState
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.frames import Frame, Opcode

from .helpers import port_of, running_server


class FrameEcho(Listener):
    """Sends each data frame back as it came, fragments and all."""

    def __init__(self) -> None:
        self.seen: list[Frame] = []

    def on_frame(self, conn: ListenerConnection, frame: Frame) -> None:
        self.seen.append(frame)
        if frame.opcode < 8:
            conn.send_frame(Frame(frame.opcode, frame.payload, frame.fin))


async def test_callback_frames_in_and_out_unassembled() -> None:
    echo = FrameEcho()
    async with serve_listener(lambda request: echo, "127.0.0.1", 0, frames=True) as server:
        uri = f"ws://127.0.0.1:{port_of(server)}"
        async with rapidws.connect(uri, frames=True) as ws:
            await ws.send(["frag", "ments", "!"])  # one message, three frames
            got = [await ws.recv_frame() for _ in range(3)]
            assert [(f.opcode, f.payload, f.fin) for f in got] == [
                (Opcode.TEXT, b"frag", False),
                (Opcode.CONT, b"ments", False),
                (Opcode.CONT, b"!", True),
            ]
            await ws.ping(b"are you there")
            pong = await ws.recv_frame()
            assert (pong.opcode, pong.payload) == (Opcode.PONG, b"are you there")
    assert [f.opcode for f in echo.seen[:3]] == [Opcode.TEXT, Opcode.CONT, Opcode.CONT]
    assert Opcode.PING in [f.opcode for f in echo.seen]


async def test_async_frames_iterator_and_send_frame() -> None:
    async def frame_echo(ws: Any) -> None:
        async for frame in ws.frames():
            if frame.opcode < 8:
                await ws.send_frame(Frame(frame.opcode, frame.payload, frame.fin))

    async with (
        running_server(frame_echo, frames=True, compression=None) as (_, uri),
        rapidws.connect(uri, compression=None) as ws,
    ):
        await ws.send([b"a", b"b"])
        assert await ws.recv() == b"ab"  # the client reassembles, as a message API does


async def test_recv_frame_needs_frames_true() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(InvalidState, match="frames=True"):
            await ws.recv_frame()


async def test_send_frame_refuses_rsv_bits_without_their_extension() -> None:
    async with running_server(compression=None) as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(ValueError, match="RSV"):
            await ws.send_frame(Frame(Opcode.BINARY, b"x", rsv1=True))
        await ws.send("still open")
        assert await ws.recv() == "still open"


async def test_a_raising_on_frame_closes_with_1011() -> None:
    class Broken(Listener):
        def on_frame(self, conn: ListenerConnection, frame: Frame) -> None:
            raise RuntimeError("boom")

    async with (
        serve_listener(lambda request: Broken(), "127.0.0.1", 0, frames=True) as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}") as ws,
    ):
        await ws.send("x")
        with pytest.raises(rapidws.ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1011

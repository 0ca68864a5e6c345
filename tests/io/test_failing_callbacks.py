"""Both APIs agree: a callback or handler that raises fails the connection with 1011,
and is given nothing more, not even the rest of the read being handled."""

from __future__ import annotations

import asyncio
from typing import Any

import rapidws
from rapidws.listener import Listener, ListenerConnection, serve_listener
from rapidws.protocol.frames import Close, Frame, Opcode

from ..asyncio.helpers import RawClient, port_of


class RaiseOnFirst(Listener):
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []

    def on_message(self, conn: ListenerConnection, opcode: int, data: str | bytes) -> None:
        self.messages.append(data)
        raise RuntimeError("boom")


async def three_messages_in_one_write(port: int) -> Close | None:
    client, _ = await RawClient.open(port)
    client.writer.write(
        b"".join(Frame(Opcode.TEXT, b"%d" % i).serialize(mask=True) for i in range(3))
    )
    data = await asyncio.wait_for(client.reader.read(), 10)  # until the server closes
    parsed = Frame.parse(data)
    assert parsed is not None
    return Close.parse(parsed[0].payload) if parsed[0].opcode == Opcode.CLOSE else None


async def test_listener_that_raises_gets_nothing_more_of_that_read() -> None:
    listener = RaiseOnFirst()
    async with serve_listener(lambda request: listener, "127.0.0.1", 0) as server:
        close = await three_messages_in_one_write(port_of(server))
    assert listener.messages == ["0"]
    assert close is not None and close.code == 1011


async def test_handler_that_raises_fails_with_1011_too() -> None:
    got: list[Any] = []

    async def handler(ws: rapidws.ServerConnection) -> None:
        got.append(await ws.recv())
        raise RuntimeError("boom")

    async with rapidws.serve(handler, "127.0.0.1", 0) as server:
        close = await three_messages_in_one_write(port_of(server))
    assert got == ["0"]
    assert close is not None and close.code == 1011

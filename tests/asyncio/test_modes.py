"""Text-only and binary-only connections, and max_fragment_size, over loopback."""

from __future__ import annotations

from typing import Any

import pytest

import rapidws
from rapidws.exceptions import ConnectionClosedError

from .helpers import running_server


async def test_the_other_type_from_the_peer_closes_with_1003() -> None:
    seen: list[BaseException] = []

    async def handler(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosedError as exc:
            seen.append(exc)
            raise

    async with (
        running_server(handler, mode="text") as (_, uri),
        rapidws.connect(uri) as ws,
    ):
        await ws.send("text is fine")
        assert await ws.recv() == "text is fine"
        await ws.send(b"binary is not")
        with pytest.raises(ConnectionClosedError) as caught:
            await ws.recv()
        assert caught.value.code == 1003
    await ws.wait_closed()
    assert len(seen) == 1 and seen[0].sent_code == 1003  # type: ignore[attr-defined]


async def test_sending_the_other_type_raises_type_error_and_the_connection_lives() -> None:
    async with (
        running_server() as (_, uri),
        rapidws.connect(uri, mode="binary") as ws,
    ):
        with pytest.raises(TypeError, match="binary only"):
            await ws.send("text")
        with pytest.raises(TypeError, match="binary only"):
            await ws.send(["frag", "ments"])
        await ws.send(b"bytes")
        assert await ws.recv() == b"bytes"


async def test_per_message_max_fragment_size_round_trips() -> None:
    message = "0123456789" * 1000
    async with (
        running_server(max_fragment_size=100) as (_, uri),
        rapidws.connect(uri, max_fragment_size=1000) as ws,
    ):
        await ws.send(message)
        await ws.send(message, max_fragment_size=7)
        await ws.send(message, compress=False, max_fragment_size=0)
        for _ in range(3):
            assert await ws.recv() == message

"""The frame-level API (as SprayWebSockets): frames unassembled, in and out.

    python examples/frames.py

With ``frames=True`` the engine still enforces every rule (masking, control
frame sizes, continuation order, UTF-8 of text across fragments, max_size)
and still answers pings and closes, but hands the application each frame as
it comes.  ``send_frame`` sends any frame the application builds.
"""

from __future__ import annotations

import asyncio

import rapidws
from rapidws import Frame, Opcode


class FrameLogger(rapidws.Listener):
    def on_frame(self, conn: rapidws.ListenerConnection, frame: Frame) -> None:
        print("server got", frame)
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            conn.send_frame(Frame(frame.opcode, frame.payload.upper(), frame.fin))


async def main() -> None:
    async with rapidws.serve_listener(
        lambda request: FrameLogger(), "127.0.0.1", 0, frames=True
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"ws://127.0.0.1:{port}", frames=True) as ws:
            await ws.send_frame(Frame(Opcode.TEXT, b"one ", fin=False))
            await ws.send_frame(Frame(Opcode.PING, b"in between"))
            await ws.send_frame(Frame(Opcode.CONT, b"message"))
            for _ in range(3):  # the two echoed fragments and the pong, in order
                print("client got", await ws.recv_frame())


if __name__ == "__main__":
    asyncio.run(main())

"""Helpers for tests over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import rapidws
from rapidws.protocol.frames import Close, Frame, Opcode
from rapidws.protocol.http11 import Response, parse_response


def write_cert(cert: Any, folder: Path, name: str) -> tuple[str, str]:
    """Write a trustme leaf certificate's chain and key: ``(certfile, keyfile)``."""
    chain, key = folder / f"{name}.pem", folder / f"{name}.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    return str(chain), str(key)


def port_of(server: rapidws.Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


async def echo(ws: rapidws.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@contextlib.asynccontextmanager
async def running_server(
    handler: Callable[[rapidws.ServerConnection], Awaitable[Any]] = echo, **kwargs: Any
) -> AsyncIterator[tuple[rapidws.Server, str]]:
    async with rapidws.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server, f"ws://127.0.0.1:{port_of(server)}"


REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


class RawClient:
    """A hand-driven TCP client, to send what a well-behaved client would not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""

    @classmethod
    async def open(
        cls, port: int, request: bytes | None = REQUEST
    ) -> tuple[RawClient, Response | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        response = None
        if request is not None:
            writer.write(request)
            response = await client.read_response()
        return client, response

    async def read_response(self) -> Response:
        while True:
            parsed = parse_response(self.buffer)
            if parsed is not None:
                response, consumed = parsed
                self.buffer = self.buffer[consumed:]
                return response
            data = await self.reader.read(65536)
            if not data:
                raise EOFError(f"connection closed; got {self.buffer!r}")
            self.buffer += data

    def send_frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        mask: bool = True,
        rsv1: bool = False,
    ) -> None:
        self.writer.write(Frame(opcode, payload, fin, rsv1).serialize(mask=mask))

    async def read_frame(self) -> Frame | None:
        """The next frame, or None at EOF."""
        while True:
            parsed = Frame.parse(self.buffer)
            if parsed is not None:
                frame, _, consumed = parsed
                self.buffer = self.buffer[consumed:]
                return frame
            data = await self.reader.read(65536)
            if not data:
                return None
            self.buffer += data

    async def read_close(self) -> Close:
        """Skip frames until a close frame; return its payload."""
        while True:
            frame = await self.read_frame()
            assert frame is not None, "connection closed without a close frame"
            if frame.opcode == Opcode.CLOSE:
                return Close.parse(frame.payload)

    async def read_eof(self) -> bytes:
        """Read until the server closes; return what came."""
        rest = self.buffer
        while data := await self.reader.read(65536):
            rest += data
        return rest

    def close(self) -> None:
        self.writer.close()

"""Byte streams (stream=True): reader and writer, hostile peers, 1 GiB in bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import rapidws
from rapidws.asyncio.streams import open_streams
from rapidws.exceptions import ConnectionClosedError, ConnectionClosedOK
from rapidws.protocol.frames import Close, Opcode

from .helpers import RawClient, port_of, running_server

StreamHandler = Callable[
    [rapidws.WebSocketStreamReader, rapidws.WebSocketStreamWriter], Awaitable[Any]
]


async def sender(*messages: str | bytes | list[bytes]) -> Callable[[Any], Awaitable[None]]:
    """A message-API handler sending ``messages`` (a list: one fragmented message), then closing."""

    async def handler(ws: rapidws.ServerConnection) -> None:
        for message in messages:
            await ws.send(message)
        await ws.close()

    return handler


@contextlib.asynccontextmanager
async def stream_server(
    handler: StreamHandler, **kwargs: Any
) -> AsyncIterator[tuple[rapidws.Server, str]]:
    async with rapidws.serve(handler, "127.0.0.1", 0, stream=True, **kwargs) as server:
        yield server, f"ws://127.0.0.1:{port_of(server)}"


# -- reading ---------------------------------------------------------------------


async def test_read_crosses_message_boundaries() -> None:
    async with running_server() as (_, uri):
        reader, writer = await rapidws.open_connection(uri)
        writer.write(b"abc")
        writer.write(b"def")  # two messages, echoed as two
        writer.writelines([b"gh", b"ij"])  # one message, two frames
        await writer.drain()
        assert await reader.readexactly(10) == b"abcdefghij"
        writer.close()
        await writer.wait_closed()


async def test_read_sizes() -> None:
    handler = await sender(b"0123456789", b"abc", b"", b"xyz")
    async with running_server(handler) as (_, uri):
        reader, writer = await rapidws.open_connection(uri)
        assert await reader.read(4) == b"0123"
        assert await reader.read(100) == b"456789"  # the rest of that frame, no more
        assert await reader.read(0) == b""
        assert await reader.read(100) == b"abc"
        assert await reader.read(100) == b"xyz"  # an empty message is no end of stream
        assert await reader.read(100) == b""
        assert reader.at_eof()
        assert writer.websocket.close_code == 1000


async def test_read_all_until_the_end() -> None:
    handler = await sender(b"a" * 70000, [b"b" * 10, b"c" * 10], "d")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        assert await reader.read() == b"a" * 70000 + b"b" * 10 + b"c" * 10 + b"d"
        assert await reader.read() == b""


async def test_readexactly_incomplete_at_the_end() -> None:
    async with running_server(await sender(b"abc")) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        with pytest.raises(asyncio.IncompleteReadError) as caught:
            await reader.readexactly(5)
        assert caught.value.partial == b"abc"
        with pytest.raises(ValueError):
            await reader.readexactly(-1)


async def test_readline_and_readuntil_across_frames() -> None:
    handler = await sender(b"line1\nli", [b"ne2\r", b"\nrest:", b"tail"], b"end")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        assert await reader.readline() == b"line1\n"
        assert await reader.readuntil(b"\r\n") == b"line2\r\n"  # the separator spans frames
        assert await reader.readuntil(b":") == b"rest:"
        assert await reader.read(2) == b"ta"
        assert await reader.readline() == b"ilend"  # the end of the stream ends the line
        assert await reader.readline() == b""
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.readuntil(b"\n")


async def test_readuntil_limit_keeps_the_data() -> None:
    handler = await sender(b"x" * 50, b"y" * 50 + b"\nz")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        reader._limit = 60
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")
        assert await reader.read(1000) == b"x" * 50 + b"y" * 50 + b"\nz"


async def test_readline_over_the_limit_is_dropped() -> None:
    handler = await sender(b"x" * 100, b"\nnext\n")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        reader._limit = 60
        with pytest.raises(ValueError):
            await reader.readline()
        assert [line async for line in reader] == [b"\n", b"next\n"]  # the line's rest

    handler = await sender(b"x" * 100 + b"\nnext\n")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        reader._limit = 60
        with pytest.raises(ValueError):
            await reader.readline()  # the separator came, past the limit
        assert [line async for line in reader] == [b"next\n"]


async def test_read_message_keeps_boundaries_and_types() -> None:
    handler = await sender("héllo", [b"frag", b"ments"], b"partly read", "é" * 3, b"")
    async with running_server(handler) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        assert await reader.read_message() == "héllo"
        assert await reader.read_message() == b"fragments"
        assert await reader.read(3) == b"par"
        assert await reader.read_message() == b"tly read"  # the rest, as bytes
        assert await reader.read(1) == b"\xc3"  # text as UTF-8 bytes, mid-character
        assert await reader.read_message() == b"\xa9" + "éé".encode()  # the rest: bytes
        assert await reader.read_message() == b""  # an empty message
        assert await reader.read_message() is None  # the end of the stream


async def test_text_is_read_as_utf8_bytes() -> None:
    async with running_server(await sender("zoë", ["ab", "ç"])) as (_, uri):
        reader, _ = await rapidws.open_connection(uri)
        assert await reader.read() == "zoëabç".encode()


@pytest.mark.parametrize("server_compression", ["deflate", None])
@pytest.mark.parametrize("client_compression", ["deflate", None])
async def test_compressed_and_uncompressed_peers(
    server_compression: str | None, client_compression: str | None
) -> None:
    """The reader gives decoded bytes: the engine inflates each frame first."""
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    payload = b"".join(b"%08d compressible line\n" % i for i in range(40000))  # ~1.2 MB

    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        received.set_result(await reader.readexactly(len(payload)))
        writer.write(payload[:100000])

    async with (
        stream_server(handler, compression=server_compression) as (_, uri),
        rapidws.connect(uri, compression=client_compression) as ws,
    ):
        negotiated = bool(ws.extensions)
        assert negotiated == (server_compression is not None and client_compression is not None)
        chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
        await ws.send(chunks)  # one message of 19 frames, over max_size in all
        assert await received == payload
        assert await ws.recv() == payload[:100000]


# -- the end of the stream -----------------------------------------------------------


async def test_writer_close_sends_1000() -> None:
    seen: asyncio.Future[tuple[int | None, list[Any]]] = asyncio.get_running_loop().create_future()

    async def handler(ws: rapidws.ServerConnection) -> None:
        messages = [message async for message in ws]
        seen.set_result((ws.close_code, messages))

    async with running_server(handler) as (_, uri):
        reader, writer = await rapidws.open_connection(uri)
        writer.write(b"bye")
        assert not writer.is_closing()
        writer.close()
        assert writer.is_closing()
        with pytest.raises(rapidws.ConnectionClosed):
            writer.write(b"too late")
        await writer.wait_closed()
        assert await seen == (1000, [b"bye"])
        assert await reader.read() == b""
        with pytest.raises(ConnectionClosedOK):
            await writer.drain()


async def test_writer_close_with_a_code() -> None:
    async with running_server() as (_, uri):
        reader, writer = await rapidws.open_connection(uri)
        writer.close(4000, "done")
        await writer.wait_closed()
        assert writer.websocket.close_code == 4000
        with pytest.raises(ConnectionClosedError):
            await reader.read()  # b"" only for 1000 and 1001, as recv() raises ConnectionClosedOK


async def test_stream_handler_end_closes_with_1000() -> None:
    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        writer.write(await reader.readexactly(4))

    async with stream_server(handler) as (_, uri), rapidws.connect(uri) as ws:
        await ws.send(b"ping")
        assert await ws.recv() == b"ping"
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        assert ws.close_code == 1000


# -- writing ---------------------------------------------------------------------


async def test_write_types_and_text_streams() -> None:
    async with running_server() as (_, uri):
        reader, writer = await rapidws.open_connection(uri)
        with pytest.raises(TypeError, match="stream='text'"):
            writer.write("text")  # type: ignore[arg-type]
        writer.write(bytearray(b"ba"))
        writer.write(memoryview(b"mv"))
        writer.write(b"")  # nothing
        assert await reader.read_message() == b"ba"
        assert await reader.read_message() == b"mv"
        assert not writer.can_write_eof()
        with pytest.raises(NotImplementedError):
            writer.write_eof()
        assert writer.get_extra_info("peername")[0] == "127.0.0.1"
        assert writer.transport is writer.websocket.transport

        text_reader, text_writer = await rapidws.open_connection(uri, text=True)
        text_writer.write("zoë")
        text_writer.writelines(["a", "b"])
        with pytest.raises(TypeError, match="text stream writes str"):
            text_writer.write(b"bytes")
        assert await text_reader.read_message() == "zoë"
        assert await text_reader.read_message() == "ab"
        for w in (writer, text_writer):
            w.close()
            await w.wait_closed()


async def test_serve_text_stream() -> None:
    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        writer.write((await reader.readline()).decode().upper())

    async with (
        rapidws.serve(handler, "127.0.0.1", 0, stream="text") as server,
        rapidws.connect(f"ws://127.0.0.1:{port_of(server)}") as ws,
    ):
        await ws.send("hi\n")
        assert await ws.recv() == "HI\n"
    with pytest.raises(ValueError, match="stream must be"):
        rapidws.serve(handler, "127.0.0.1", 0, stream="lines")


async def test_open_streams_needs_stream_mode() -> None:
    async with running_server() as (_, uri), rapidws.connect(uri) as ws:
        with pytest.raises(TypeError, match="stream mode"):
            open_streams(ws)


async def test_attach_stream_pair() -> None:
    served: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        served.set_result(await rapidws.attach(r, w, side="server", stream=True))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        pair = await rapidws.attach(r, w, uri=f"ws://127.0.0.1:{port}/", stream=True)
        assert isinstance(pair, tuple)
        reader, writer = pair
        server_reader, server_writer = await served
        writer.write(b"hello ")
        writer.write(b"server")
        assert await server_reader.readexactly(12) == b"hello server"
        server_writer.write(b"hi")
        assert await reader.read(10) == b"hi"
        writer.close()
        await writer.wait_closed()
        assert await server_reader.read() == b""
        server_writer.close()  # an attached stream stays open until closed (or detached)
        await server_writer.wait_closed()


async def test_attach_checks_stream_first() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(ValueError, match="stream must be"):
            await rapidws.attach(r, w, uri="ws://127.0.0.1/", stream="lines")
        with pytest.raises(ValueError, match="do not mix"):
            await rapidws.attach(
                r, w, uri="ws://127.0.0.1/", stream=True, listener=rapidws.Listener()
            )
        w.close()


# -- flow control ------------------------------------------------------------------


async def test_a_reader_that_never_reads_pauses_the_socket() -> None:
    """The frame queue stops at max_queue: reading from the socket pauses, memory stays bounded."""
    connections: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    go = asyncio.Event()

    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        connections.set_result(reader.websocket)
        await go.wait()
        total = 0
        while chunk := await reader.read(1 << 20):
            total += len(chunk)
        writer.websocket.total = total  # type: ignore[attr-defined]

    chunk = b"x" * 65536
    async with stream_server(handler, max_queue=4) as (_, uri):
        _, writer = await rapidws.open_connection(uri, compression=None)
        server_side = await connections
        sent = 0
        for _ in range(4000):  # at most 250 MiB: the server stops reading long before
            writer.write(chunk)
            sent += 1
            if writer.websocket._paused_writing:
                break
            await asyncio.sleep(0)  # let the event loop send and receive
        assert writer.websocket._paused_writing, "the client's writes never backed up"
        assert len(server_side._messages) <= 4
        assert server_side._read_pauses  # reading from the socket paused
        go.set()
        await writer.drain()  # returns once the server reads again
        writer.close()
        await writer.wait_closed()
        await server_side.wait_closed()
        assert server_side.total == sent * 65536


async def test_drain_waits_while_the_peer_does_not_read() -> None:
    stop = asyncio.Event()
    chunk = b"x" * 65536

    async def handler(ws: rapidws.ServerConnection) -> None:
        await stop.wait()  # reads nothing until told
        async for _ in ws:
            pass

    async with running_server(handler, max_queue=1) as (_, uri):
        _, writer = await rapidws.open_connection(uri, compression=None)
        for _ in range(4000):
            writer.write(chunk)
            if writer.websocket._paused_writing:
                break
            await asyncio.sleep(0)
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0)
        assert not drain.done()  # waits: the write buffer is over write_limit
        stop.set()
        await drain  # the peer reads again
        writer.close()
        await writer.wait_closed()

    stop = asyncio.Event()
    async with running_server(handler, max_queue=1) as (_, uri):
        _, writer = await rapidws.open_connection(uri, compression=None)
        for _ in range(4000):
            writer.write(chunk)
            if writer.websocket._paused_writing:
                break
            await asyncio.sleep(0)
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0)
        writer.websocket.transport.abort()
        with pytest.raises(ConnectionClosedError):
            await drain  # the connection is lost while waiting
        stop.set()


async def test_max_size_bounds_each_frame_not_the_message() -> None:
    got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        total = 0
        try:
            while chunk := await reader.read(1 << 20):
                total += len(chunk)
        except ConnectionClosedError as exc:
            got.set_result(-1 if exc.sent_code is None else exc.sent_code)
            raise

    async with (
        stream_server(handler, max_size=1000, compression=None) as (_, uri),
        rapidws.connect(uri, compression=None) as ws,
    ):
        await ws.send([b"y" * 900] * 10)  # 9000 bytes, frames of 900: fine
        await ws.send(b"z" * 2000)  # one frame over max_size: 1009
        with pytest.raises(ConnectionClosedError) as caught:
            await ws.recv()
        assert caught.value.code == 1009
    assert await got == 1009


# -- hostile peers -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def recording_stream_server(
    **kwargs: Any,
) -> AsyncIterator[tuple[int, asyncio.Future[tuple[bytes, BaseException | None]]]]:
    """A stream server that reads everything, recording what came and how it ended."""
    outcome: asyncio.Future[tuple[bytes, BaseException | None]] = (
        asyncio.get_running_loop().create_future()
    )

    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        data = b""
        try:
            while chunk := await reader.read(100):
                data += chunk
        except BaseException as exc:
            outcome.set_result((data, exc))
            raise
        outcome.set_result((data, None))

    async with stream_server(handler, **kwargs) as (server, _):
        yield port_of(server), outcome


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(Opcode.TEXT, b"ok", False), (Opcode.CONT, b"\xff", True)], 1007),  # bad UTF-8
        ([(Opcode.TEXT, b"ok \xe2\x82", True)], 1007),  # a character cut at the end
        ([(Opcode.BINARY, b"ok", True), (Opcode.CONT, b"x", True)], 1002),  # nothing to continue
        ([(Opcode.BINARY, b"ok", False), (Opcode.BINARY, b"x", True)], 1002),  # not continued
        ([(Opcode.BINARY, b"ok", True), (3, b"x", True)], 1002),  # reserved opcode
    ],
)
async def test_bad_frames_close_with_the_rfc_code(
    frames: list[tuple[int, bytes, bool]], code: int
) -> None:
    """The data before the bad frame is read; then the reader raises ConnectionClosedError."""
    async with recording_stream_server() as (port, outcome):
        raw, _ = await RawClient.open(port)
        for opcode, payload, fin in frames:
            raw.send_frame(opcode, payload, fin=fin)
        close = await raw.read_close()
        assert close.code == code
        raw.close()
        data, exc = await outcome
        assert isinstance(exc, ConnectionClosedError)
        assert exc.sent_code == code
        assert data in (b"", b"ok")  # what came before the bad frame, as far as it was valid


async def test_unmasked_frame_closes_with_1002() -> None:
    async with recording_stream_server() as (port, outcome):
        raw, _ = await RawClient.open(port)
        raw.send_frame(Opcode.BINARY, b"data", mask=False)
        assert (await raw.read_close()).code == 1002
        raw.close()
        _, exc = await outcome
        assert isinstance(exc, ConnectionClosedError)


async def test_peer_closes_mid_message() -> None:
    """A close frame mid-message ends the stream: read() gives b"", read_message() raises."""
    async with recording_stream_server() as (port, outcome):
        raw, _ = await RawClient.open(port)
        raw.send_frame(Opcode.BINARY, b"half a mess", fin=False)
        raw.send_frame(Opcode.CLOSE, Close(1000, "").serialize())
        assert (await raw.read_close()).code == 1000
        assert await outcome == (b"half a mess", None)
        raw.close()

    incomplete: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(
        reader: rapidws.WebSocketStreamReader, writer: rapidws.WebSocketStreamWriter
    ) -> None:
        try:
            await reader.read_message()
        except asyncio.IncompleteReadError as exc:
            incomplete.set_result(exc)

    async with stream_server(handler) as (server, _):
        raw, _ = await RawClient.open(port_of(server))
        raw.send_frame(Opcode.TEXT, b"half", fin=False)
        raw.send_frame(Opcode.CLOSE, Close(1000, "").serialize())
        exc = await incomplete
        assert isinstance(exc, asyncio.IncompleteReadError) and exc.partial == b"half"
        raw.close()


async def test_peer_drops_tcp_mid_message() -> None:
    async with recording_stream_server() as (port, outcome):
        raw, _ = await RawClient.open(port)
        raw.send_frame(Opcode.BINARY, b"cut", fin=False)
        await raw.writer.drain()
        raw.writer.transport.abort()
        data, exc = await outcome
        assert data == b"cut"
        assert isinstance(exc, ConnectionClosedError) and exc.code == 1006


# -- a 1 GiB upload in bounded memory -----------------------------------------------

COUNTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stream_counter.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1 << 30


@contextlib.contextmanager
def counter_process() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    env = dict(os.environ, PYTHONPATH=ROOT)  # this checkout's rapidws, same build choice
    proc = subprocess.Popen([sys.executable, COUNTER], stdout=subprocess.PIPE, env=env, cwd="/")
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline()), proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def memory(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (its peak) of process ``pid``, in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return int(fields["VmRSS"][0]) * 1024, int(fields["VmHWM"][0]) * 1024


@pytest.mark.parametrize("shape", ["one fragmented message", "1 MiB messages"])
async def test_a_1_gib_upload_streams_in_bounded_memory(shape: str) -> None:
    """1 GiB through a stream-mode server process: its peak RSS grows by less than 64 MiB.

    The server process reads with ``reader.read`` and answers with the count.
    Both builds send the full GiB: on this loopback it took 0.4 s compiled and
    2-3 s pure (each way), well under the ~60 s that would call for less.
    """
    block = os.urandom(1 << 20)
    with counter_process() as (port, proc):
        before, _ = memory(proc.pid)
        uri = f"ws://127.0.0.1:{port}/{GIB}"
        async with rapidws.connect(uri, compression=None, max_size=None) as ws:
            if shape == "one fragmented message":

                async def frames() -> AsyncIterator[memoryview]:
                    view = memoryview(block)
                    for i in range(GIB // 65536):
                        start = (i % 16) * 65536
                        yield view[start : start + 65536]

                await ws.send(frames())
            else:
                for _ in range(GIB >> 20):
                    await ws.send(block)
            assert await ws.recv() == str(GIB).encode()
        _, peak = memory(proc.pid)
    assert peak - before < 64 << 20, f"RSS grew by {(peak - before) >> 20} MiB"


async def test_a_server_that_never_reads_stays_bounded() -> None:
    """A stream handler that never reads: the client's writes back up, the server's RSS does not."""
    chunk = os.urandom(65536)
    with counter_process() as (port, proc):
        before, _ = memory(proc.pid)
        uri = f"ws://127.0.0.1:{port}/stall"
        _, writer = await rapidws.open_connection(uri, compression=None)
        sent = 0
        for _ in range(4096):  # 256 MiB at most: the writes back up long before
            writer.write(chunk)
            sent += len(chunk)
            if writer.websocket._paused_writing:
                break
            await asyncio.sleep(0)  # let the event loop send
        assert writer.websocket._paused_writing, "the client's writes never backed up"
        _, peak = memory(proc.pid)
        writer.websocket.transport.abort()
    assert peak - before < 64 << 20, f"RSS grew by {(peak - before) >> 20} MiB for {sent >> 20} MiB"

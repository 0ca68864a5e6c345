"""SocketTransport: asyncio's transport contract over real loopback sockets, on both loops."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from rapidws.io.sockets import SocketTransport

from .conftest import LoopRunner


class Recorder(asyncio.Protocol):
    """Records what the transport tells it; ``eof_received`` answers ``keep_open``."""

    def __init__(self, keep_open: bool = False) -> None:
        self.keep_open = keep_open
        self.events: list[str] = []
        self.data = bytearray()
        self.made: asyncio.Future[asyncio.BaseTransport] = (
            asyncio.get_running_loop().create_future()
        )
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got_data.set()

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


class BufferedRecorder(Recorder, asyncio.BufferedProtocol):
    def __init__(self, keep_open: bool = False) -> None:
        super().__init__(keep_open)
        self.buffer = bytearray(7)  # small: many reads

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.buffer[:nbytes]))


async def connected(
    protocol: asyncio.BaseProtocol,
) -> tuple[SocketTransport, socket.socket]:
    """A SocketTransport on one end of a TCP connection; the other end, blocking."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        sock, _ = listener.accept()
    transport = SocketTransport(asyncio.get_running_loop(), sock, protocol)
    await protocol.made  # type: ignore[attr-defined]
    return transport, peer


async def receive_exactly(peer: socket.socket, n: int) -> bytes:
    """Read ``n`` bytes from a blocking socket without blocking the loop."""
    loop = asyncio.get_running_loop()
    chunks = bytearray()
    while len(chunks) < n:
        chunk = await loop.run_in_executor(None, peer.recv, n - len(chunks))
        assert chunk, "EOF"
        chunks += chunk
    return bytes(chunks)


@pytest.mark.parametrize("kind", [Recorder, BufferedRecorder])
def test_data_both_ways_then_peer_eof_closes(run: LoopRunner, kind: type[Recorder]) -> None:
    async def main() -> None:
        protocol = kind()
        transport, peer = await connected(protocol)
        addresses = (peer.getsockname(), peer.getpeername())
        assert transport.get_extra_info("peername") == addresses[0]
        assert transport.get_extra_info("sockname") == addresses[1]
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        peer.sendall(b"hello, transport")
        while len(protocol.data) < 16:
            protocol.got_data.clear()
            await protocol.got_data.wait()
        assert protocol.data == b"hello, transport"
        transport.write(b"and back")
        transport.writelines([b"in ", bytearray(b"pieces"), memoryview(b"!")])
        assert await receive_exactly(peer, 18) == b"and backin pieces!"
        peer.shutdown(socket.SHUT_WR)
        assert await protocol.lost is None
        assert protocol.events == ["made", "eof", "lost"]
        assert transport.is_closing()
        assert peer.recv(10) == b""  # the transport closed its side
        assert sock.fileno() == -1
        # Addresses asked for while open are still there once closed.
        assert transport.get_extra_info("peername") == addresses[0]
        assert transport.get_extra_info("sockname") == addresses[1]
        assert transport.get_extra_info("socket") is None
        assert transport.get_extra_info("cipher", "none") == "none"
        peer.close()

    run(main())


def test_eof_received_true_keeps_the_sending_side_open(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder(keep_open=True)
        transport, peer = await connected(protocol)
        peer.shutdown(socket.SHUT_WR)
        while "eof" not in protocol.events:
            await asyncio.sleep(0)
        assert not transport.is_closing()
        transport.resume_reading()  # not paused: nothing to resume, no second EOF
        for _ in range(10):
            await asyncio.sleep(0)
        assert protocol.events == ["made", "eof"]
        transport.write(b"still here")
        assert await receive_exactly(peer, 10) == b"still here"
        transport.close()
        assert await protocol.lost is None
        assert peer.recv(10) == b""
        peer.close()

    run(main())


def test_write_eof_shuts_down_sending_after_the_buffer(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        transport, peer = await connected(protocol)
        assert transport.can_write_eof()
        transport.write(b"last words")
        transport.write_eof()
        with pytest.raises(RuntimeError):
            transport.write(b"more")
        with pytest.raises(RuntimeError):
            transport.writelines([b"more"])
        assert await receive_exactly(peer, 10) == b"last words"
        assert peer.recv(10) == b""
        peer.sendall(b"reply")  # reading goes on
        await protocol.got_data.wait()
        assert protocol.data == b"reply"
        transport.close()
        await protocol.lost
        peer.close()

    run(main())


def test_large_writes_buffer_pause_resume_and_close_drains_first(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        transport, peer = await connected(protocol)
        transport.set_write_buffer_limits(high=65536)
        assert transport.get_write_buffer_limits() == (16384, 65536)
        payload = os.urandom(8 * 2**20)
        transport.write(payload[: 2**20])
        transport.writelines([payload[i : i + 4096] for i in range(2**20, 8 * 2**20, 4096)])
        assert transport.get_write_buffer_size() > 65536  # the peer reads nothing yet
        assert protocol.events == ["made", "pause"]
        transport.close()  # after what is buffered
        assert not protocol.lost.done()
        assert await receive_exactly(peer, len(payload)) == payload
        assert await protocol.lost is None
        assert protocol.events == ["made", "pause", "resume", "lost"]
        assert transport.get_write_buffer_size() == 0
        assert peer.recv(10) == b""
        peer.close()

    run(main())


def test_abort_drops_the_buffer_and_loses_the_connection(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        transport, peer = await connected(protocol)
        transport.write(os.urandom(16 * 2**20))
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        transport.abort()  # once is enough
        assert transport.is_closing()
        assert await protocol.lost is None
        assert transport.get_write_buffer_size() == 0
        assert protocol.events.count("lost") == 1
        transport.write(b"dropped")  # no error: dropped, as asyncio does
        peer.close()

    run(main())


def test_peer_reset_reports_the_error(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        _, peer = await connected(protocol)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        exc = await protocol.lost
        assert isinstance(exc, ConnectionResetError)
        assert protocol.events == ["made", "lost"]

    run(main())


def test_pause_and_resume_reading(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        transport, peer = await connected(protocol)
        assert transport.is_reading()
        transport.pause_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        peer.sendall(b"wait")
        for _ in range(20):  # loop iterations with the bytes there to read
            await asyncio.sleep(0)
        assert protocol.data == b""
        transport.resume_reading()
        await protocol.got_data.wait()
        assert protocol.data == b"wait"
        transport.close()
        await protocol.lost
        peer.close()

    run(main())


def test_protocol_errors_reach_the_exception_handler_and_close(run: LoopRunner) -> None:
    class Failing(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ValueError("broken protocol")

    async def main() -> None:
        protocol = Failing()
        transport, peer = await connected(protocol)
        peer.sendall(b"x")
        exc = await protocol.lost
        assert isinstance(exc, ValueError)
        assert [c["message"] for c in run.errors] == [
            "Fatal error: protocol.data_received() call failed."
        ]
        assert run.errors[0]["transport"] is transport
        peer.close()

    run(main(), errors_expected=True)


def test_close_before_connection_made_still_makes_and_loses(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            peer = socket.create_connection(listener.getsockname())
            sock, _ = listener.accept()
        transport = SocketTransport(asyncio.get_running_loop(), sock, protocol)
        transport.close()
        assert await protocol.lost is None
        assert protocol.events == ["made", "lost"]
        assert peer.recv(10) == b""
        peer.close()

    run(main())


def test_write_rejects_what_is_not_bytes_like(run: LoopRunner) -> None:
    async def main() -> None:
        protocol = Recorder()
        transport, peer = await connected(protocol)
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.write(b"")  # nothing
        assert transport.get_protocol() is protocol
        assert "open" in repr(transport)
        transport.close()
        await protocol.lost
        assert "closed" in repr(transport)
        peer.close()

    run(main())

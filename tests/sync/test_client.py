"""rapidws.sync: the blocking client, against rapidws.serve, raw peers and Node's `ws`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import rapidws
import rapidws.sync
from rapidws.exceptions import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)
from rapidws.protocol.frames import Frame
from rapidws.protocol.opening import ServerOpening

T = TypeVar("T")
WAIT = 10.0  # seconds: the bound on every wait for an event, never reached when things work


# ------------------------------------------------------------------ a rapidws server in a thread


class LoopThread:
    """An event loop running in a thread of its own, for async servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


class Peer:
    """What the test server's handler saw and did, readable from the test's thread."""

    def __init__(self) -> None:
        self.pong = threading.Event()
        self.close_codes: list[int | None] = []
        self.closed = threading.Event()
        self.sent = 0


def command_handler(peer: Peer) -> Callable[[rapidws.ServerConnection], Coroutine[Any, Any, None]]:
    """Echo, except text commands starting with "!"."""

    async def handler(ws: rapidws.ServerConnection) -> None:
        try:
            async for message in ws:
                if not (isinstance(message, str) and message.startswith("!")):
                    await ws.send(message)
                    continue
                command, *args = message[1:].split(" ")
                if command == "close":
                    await ws.close(int(args[0]), " ".join(args[1:]))
                elif command == "fragments":
                    await ws.send(["ab", "cd", "ef"])
                elif command == "flood":
                    count, size = int(args[0]), int(args[1])
                    for i in range(count):
                        await ws.send(i.to_bytes(4, "big") * (size // 4))
                        peer.sent += 1
                elif command == "ping":
                    waiter = await ws.ping(b"server")
                    await waiter
                    peer.pong.set()
                elif command == "request":
                    assert ws.request is not None
                    await ws.send(json.dumps(dict(ws.request.headers.raw_items())))
        except rapidws.ConnectionClosed:
            pass
        await ws.wait_closed()
        peer.close_codes.append(ws.close_code)
        peer.closed.set()

    return handler


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@contextlib.contextmanager
def rapidws_server(loop_thread: LoopThread, **kwargs: Any) -> Iterator[tuple[str, Peer]]:
    peer = Peer()

    async def start() -> rapidws.Server:
        return await rapidws.serve(command_handler(peer), "127.0.0.1", 0, **kwargs)

    server = loop_thread.run(start())
    port = next(iter(server.sockets)).getsockname()[1]
    scheme = "wss" if kwargs.get("ssl") else "ws"
    try:
        yield f"{scheme}://127.0.0.1:{port}/", peer
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        loop_thread.run(stop())


@pytest.fixture
def server(loop_thread: LoopThread) -> Iterator[tuple[str, Peer]]:
    with rapidws_server(loop_thread, max_size=2**23) as result:
        yield result


def keepers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rapidws.sync keeper")]


# ------------------------------------------------------------------ messages


def test_text_and_binary(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        assert ws.state == rapidws.State.OPEN
        ws.send("héllo")
        assert ws.recv() == "héllo"
        ws.send(b"\x00\x01")
        assert ws.recv() == b"\x00\x01"
        ws.send(bytearray(b"ba"))
        assert ws.recv() == b"ba"
        ws.send(memoryview(b"mv"))
        assert ws.recv() == b"mv"
        ws.send("text")
        assert ws.recv(decode=False) == b"text"
        ws.send(b"bytes")
        assert ws.recv(decode=True) == "bytes"
        ws.send(b"as text", text=True)
        assert ws.recv() == "as text"
        ws.send("as binary", text=False)
        assert ws.recv() == b"as binary"
        with pytest.raises(TypeError, match="dict"):
            ws.send({"a": 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.send(42)  # type: ignore[arg-type]
        assert ws.local_address[0] == "127.0.0.1"
        assert ws.remote_address[1] == int(uri.rsplit(":", 1)[1].strip("/"))
        assert ws.request.headers["Host"].startswith("127.0.0.1")
        assert ws.response.status_code == 101
        assert ws.subprotocol is None
        assert ws.id is not None
        assert "OPEN" in repr(ws)
    assert ws.state == rapidws.State.CLOSED
    assert ws.close_code == 1000


def test_fragmented_both_ways(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        ws.send(["Hello, ", "", "wörld"])
        assert ws.recv() == "Hello, wörld"
        ws.send([b"\x01", bytearray(b"\x02"), memoryview(b"\x03")])
        assert ws.recv() == b"\x01\x02\x03"
        ws.send(iter(["a", "b"]), text=False)
        assert ws.recv() == b"ab"
        ws.send([])  # nothing
        ws.send("!fragments")
        assert list(ws.recv_streaming()) == ["abcdef"]
        with pytest.raises(TypeError, match="same type"):
            ws.send(["a", b"b"])  # refused before anything is sent
        ws.send("still open")
        assert ws.recv() == "still open"

        def fragments() -> Iterator[str]:
            yield "sent"
            yield "too"
            raise RuntimeError("the source failed")

        with pytest.raises(RuntimeError):
            ws.send(fragments())
        # Half a message cannot be taken back: the connection fails with 1011.
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv()
        assert info.value.sent_code == 1011


@pytest.mark.parametrize("compression", ["deflate", None])
def test_large_and_compressed(server: tuple[str, Peer], compression: str | None) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri, compression=compression, max_size=2**23) as ws:
        names = [extension.name for extension in ws.extensions]
        assert names == (["permessage-deflate"] if compression else [])
        big_text = "wörld " * 500_000  # 3.5 MB
        ws.send(big_text)
        assert ws.recv() == big_text
        big_binary = os.urandom(3 * 2**20)
        ws.send(big_binary)
        assert ws.recv() == big_binary


def test_max_fragment_size(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri, max_fragment_size=100, compression=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv() == "x" * 1000
        ws.send(b"y" * 1000, text=True)
        assert ws.recv() == "y" * 1000


def test_mode_text(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri, mode="text") as ws:
        with pytest.raises(TypeError, match="text only"):
            ws.send(b"no")
        ws.send("yes")
        assert ws.recv() == "yes"


def test_recv_timeout_keeps_the_connection(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("still there")
        assert ws.recv(timeout=WAIT) == "still there"


def test_spinning_turns_itself_off_for_a_slow_server(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri, spin=0.001) as ws:
        for _ in range(4):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.01)  # a spin that found nothing
        assert ws._spin_misses == 4
        assert ws._spin_read(ws._sock) is None
        assert ws._spin_misses == 4  # it did not spin (a spin finding nothing counts)
        ws.send("x")
        assert ws.recv(timeout=WAIT) == "x"
    with rapidws.sync.connect(uri, spin=0) as ws:
        ws.send("no spin")
        assert ws.recv(timeout=WAIT) == "no spin"
        assert ws._waits == 0


def test_iteration_ends_on_normal_close(server: tuple[str, Peer]) -> None:
    uri, peer = server
    with rapidws.sync.connect(uri) as ws:
        ws.send("one")
        ws.send("!close 1000 bye")
        assert list(ws) == ["one"]
        assert ws.close_code == 1000
        assert ws.close_reason == "bye"
        with pytest.raises(ConnectionClosedOK):
            ws.recv()
        with pytest.raises(ConnectionClosedOK):
            ws.send("late")
    assert peer.closed.wait(WAIT)
    assert peer.close_codes == [1000]


def test_server_close_code(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        ws.send("!close 4000 custom")
        with pytest.raises(ConnectionClosedError) as info:
            list(ws)
        assert info.value.code == 4000
        assert info.value.reason == "custom"
        assert ws.close_code == 4000


def test_client_close_code(server: tuple[str, Peer]) -> None:
    uri, peer = server
    ws = rapidws.sync.connect(uri)
    ws.close(4001, "done")
    ws.close()  # idempotent
    assert ws.state == rapidws.State.CLOSED
    assert peer.closed.wait(WAIT)
    assert peer.close_codes == [4001]
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv()
    assert info.value.sent_code == 4001


def test_exception_in_with_block_closes_with_1011(server: tuple[str, Peer]) -> None:
    uri, peer = server
    with pytest.raises(RuntimeError), rapidws.sync.connect(uri):
        raise RuntimeError("boom")
    assert peer.closed.wait(WAIT)
    assert peer.close_codes == [1011]


def test_close_while_another_thread_receives(server: tuple[str, Peer]) -> None:
    uri, _ = server
    ws = rapidws.sync.connect(uri)
    errors: list[BaseException] = []

    def receive() -> None:
        try:
            ws.recv()
        except BaseException as exc:
            errors.append(exc)

    receiver = threading.Thread(target=receive)
    receiver.start()
    wait_until(ws._recv_mutex.locked)
    ws.close()
    receiver.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedOK)


# ------------------------------------------------------------------ ping, pong, keepalive


def test_ping_pong(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        assert ws.ping().wait(WAIT)
        assert ws.latency > 0
        assert ws.ping("text").wait(WAIT)
        assert ws.ping(b"bytes").wait(WAIT)
        with pytest.raises(TypeError):
            ws.ping(42)  # type: ignore[arg-type]
        ws.pong(b"unsolicited")
        ws.send("after")
        assert ws.recv() == "after"
    with pytest.raises(ConnectionClosedOK):
        ws.ping()
    event = threading.Event()
    assert not event.is_set()


def test_server_ping_is_answered_without_recv(server: tuple[str, Peer]) -> None:
    uri, peer = server
    with rapidws.sync.connect(uri) as ws:
        ws.send("!ping")
        # Nobody calls recv: the keeper thread reads and the engine answers.
        assert peer.pong.wait(WAIT)


def test_keeper_sleeps_while_a_recv_waits_long(server: tuple[str, Peer]) -> None:
    uri, peer = server
    with rapidws.sync.connect(uri) as ws:
        got: list[str | bytes] = []
        receiver = threading.Thread(target=lambda: got.append(ws.recv(timeout=WAIT)))
        receiver.start()
        wait_until(lambda: ws._keeper_asleep)  # no wake-up every IDLE seconds
        ws.send("wake up")
        receiver.join(WAIT)
        assert got == ["wake up"]
        wait_until(lambda: not ws._keeper_asleep)
        ws.send("!ping")  # nobody receives now: the keeper reads again
        assert peer.pong.wait(WAIT)


def test_keepalive_pings_answered(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri, ping_interval=0.02, ping_timeout=WAIT) as ws:
        wait_until(lambda: ws._keepalive_event is not None and ws._keepalive_event.is_set())
        ws.send("alive")
        assert ws.recv() == "alive"


# ------------------------------------------------------------------ threads


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (another thread's progress) within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0)  # yield the GIL


def test_threads_send_and_receive_at_once(server: tuple[str, Peer]) -> None:
    uri, _ = server
    senders, per_sender = 8, 200
    received: list[str | bytes] = []
    with rapidws.sync.connect(uri, max_queue=4) as ws:

        def send(i: int) -> None:
            for j in range(per_sender):
                if j % 10 == 0:
                    ws.send([f"{i}-", f"{j}-", "x" * 3000])  # fragmented
                else:
                    ws.send(f"{i}-{j}-" + "y" * (j * 7))

        def receive() -> None:
            for _ in range(senders * per_sender):
                received.append(ws.recv(timeout=WAIT))

        receiver = threading.Thread(target=receive)
        receiver.start()
        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        receiver.join(WAIT * 3)
    assert len(received) == senders * per_sender
    seen = set()
    for message in received:
        assert isinstance(message, str)
        i, j, rest = message.split("-", 2)
        assert rest == ("x" * 3000 if int(j) % 10 == 0 else "y" * (int(j) * 7))
        seen.add((int(i), int(j)))
    assert seen == {(i, j) for i in range(senders) for j in range(per_sender)}
    # Each sender's messages come back in its order.
    for i in range(senders):
        order = [
            int(m.split("-")[1])
            for m in received
            if isinstance(m, str) and m.split("-")[0] == str(i)
        ]
        assert order == sorted(order)


def test_second_concurrent_recv_raises(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(uri) as ws:
        got: list[str | bytes] = []
        receiver = threading.Thread(target=lambda: got.append(ws.recv(timeout=WAIT)))
        receiver.start()
        wait_until(ws._recv_mutex.locked)
        with pytest.raises(ConcurrencyError):
            ws.recv()
        ws.send("for the first")
        receiver.join(WAIT)
        assert got == ["for the first"]


def test_nothing_leaks(server: tuple[str, Peer]) -> None:
    uri, _ = server
    before = set(keepers())
    ws = rapidws.sync.connect(uri)
    ws.send("x")
    assert ws.recv() == "x"
    sock = ws._sock
    ref = weakref.ref(ws)
    ws.close()
    assert sock.fileno() == -1
    assert set(keepers()) == before
    del ws
    gc.collect()
    assert ref() is None


def test_nothing_leaks_after_the_server_closes(server: tuple[str, Peer]) -> None:
    uri, _ = server
    before = set(keepers())
    ws = rapidws.sync.connect(uri)
    ws.send("!close 1000")
    with pytest.raises(ConnectionClosedOK):
        ws.recv()
    assert ws.wait_closed(0)
    assert set(keepers()) == before
    assert ws._sock.fileno() == -1


# ------------------------------------------------------------------ connect options


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(TypeError, match=r"rapidws\.sync\.connect.*open_timout.*'open_timeout'"):
        rapidws.sync.connect("ws://127.0.0.1:1/", open_timout=1)


def test_invalid_uri() -> None:
    with pytest.raises(InvalidURI):
        rapidws.sync.connect("http://example.com/")


def test_handshake_options(server: tuple[str, Peer]) -> None:
    uri, _ = server
    with rapidws.sync.connect(
        uri,
        additional_headers={"X-Test": "1"},
        user_agent_header="agent/1",
        origin="http://origin.test",
    ) as ws:
        ws.send("!request")
        headers = json.loads(ws.recv())  # type: ignore[arg-type]
        assert headers["X-Test"] == "1"
        assert headers["User-Agent"] == "agent/1"
        assert headers["Origin"] == "http://origin.test"


def test_subprotocols(loop_thread: LoopThread) -> None:
    with (
        rapidws_server(loop_thread, subprotocols=["chat"]) as (uri, _),
        rapidws.sync.connect(uri, subprotocols=["chat"]) as ws,
    ):
        assert ws.subprotocol == "chat"


def test_sock_option(server: tuple[str, Peer]) -> None:
    uri, _ = server
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    sock = socket.create_connection(("127.0.0.1", port))
    with rapidws.sync.connect(uri, sock=sock) as ws:
        ws.send("over my socket")
        assert ws.recv() == "over my socket"


def test_unix_socket(loop_thread: LoopThread) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()
        with (
            rapidws_server_on(loop_thread, listener),
            rapidws.sync.connect("ws://localhost/", unix=path) as ws,
        ):
            ws.send("unix")
            assert ws.recv() == "unix"


@contextlib.contextmanager
def rapidws_server_on(loop_thread: LoopThread, sock: socket.socket) -> Iterator[None]:
    async def start() -> rapidws.Server:
        return await rapidws.serve(command_handler(Peer()), sock=sock)

    server = loop_thread.run(start())
    try:
        yield
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        loop_thread.run(stop())


def test_tls(loop_thread: LoopThread) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with (
        rapidws_server(loop_thread, ssl=server_context) as (uri, _),
        rapidws.sync.connect(uri, ssl=client_context) as ws,
    ):
        assert uri.startswith("wss://")
        for size in (10, 100_000):
            ws.send("s" * size)
            assert ws.recv(timeout=WAIT) == "s" * size
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.01)
        assert ws.ping().wait(WAIT)


# ------------------------------------------------------------------ raw peers: bad input


class RawServer:
    """A TCP server in a thread that runs ``script`` on its first connection."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.uri = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                self.script(conn)
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def raw_server(script: Callable[[socket.socket], None]) -> Iterator[str]:
    server = RawServer(script)
    try:
        yield server.uri
    finally:
        server.close()


def accept(conn: socket.socket) -> bytes:
    """Answer the opening handshake (no extension); return what came after the request."""
    conn.settimeout(WAIT)
    opening = ServerOpening()
    while opening.receive_data(conn.recv(65536)) is None:
        pass
    opening.accept()
    conn.sendall(opening.data_to_send())
    return opening.trailing


class FrameReader:
    """The client's frames one by one; a read may bring several, none is lost."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.data = b""

    def next(self) -> Frame:
        while True:
            parsed = Frame.parse(self.data)
            if parsed is not None:
                frame, _, consumed = parsed
                self.data = self.data[consumed:]
                return frame
            chunk = self.conn.recv(65536)
            assert chunk, "the client closed before sending a frame"
            self.data += chunk


def read_close_code(conn: socket.socket) -> int:
    """Read frames until the client's close frame; return its code."""
    data = b""
    while True:
        chunk = conn.recv(65536)
        assert chunk, "the client closed without a close frame"
        data += chunk
        while (parsed := Frame.parse(data)) is not None:
            frame, masked, consumed = parsed
            assert masked
            data = data[consumed:]
            if frame.opcode == 8:
                return int.from_bytes(frame.payload[:2], "big")


@pytest.mark.parametrize(
    ("wire", "code", "match"),
    [
        (b"\x83\x00", 1002, "opcode"),  # a reserved opcode
        (b"\x81\x82abcd", 1002, "mask"),  # a masked frame from the server
        (b"\x81\x02\xc3\x28", 1007, "UTF-8"),  # invalid UTF-8
        (b"\x82\x7e\x10\x00" + b"x" * 4096, 1009, ""),  # over max_size
        (b"\x00\x00", 1002, ""),  # a continuation with no message
    ],
)
def test_bad_frames_fail_with_the_right_code(wire: bytes, code: int, match: str) -> None:
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        accept(conn)
        conn.sendall(wire)
        codes.append(read_close_code(conn))

    with (
        raw_server(script) as uri,
        rapidws.sync.connect(uri, max_size=1000, close_timeout=WAIT) as ws,
    ):
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=WAIT)
        assert info.value.sent_code == code
        assert info.value.code == 1006  # no close frame came from the server
        assert match.lower() in str(info.value.__cause__).lower()
    assert codes == [code]


def test_garbage_instead_of_a_handshake_response() -> None:
    def script(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"\x00\x01garbage\r\n\r\n")

    with raw_server(script) as uri, pytest.raises(rapidws.InvalidMessage):
        rapidws.sync.connect(uri)


def test_endless_response_head_is_refused() -> None:
    def script(conn: socket.socket) -> None:
        conn.recv(65536)
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: y\r\n" * 20_000)

    with raw_server(script) as uri, pytest.raises(rapidws.SecurityError):
        rapidws.sync.connect(uri)


def test_close_while_a_send_is_stuck() -> None:
    released = threading.Event()

    def script(conn: socket.socket) -> None:
        accept(conn)
        released.wait(WAIT)  # never reads

    errors: list[BaseException] = []
    with raw_server(script) as uri:
        ws = rapidws.sync.connect(uri, close_timeout=0.2, compression=None)

        def send() -> None:
            try:
                ws.send(os.urandom(2**26))  # far more than the socket buffers hold
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            ws.close()
            sender.join(WAIT)
            assert ws.state == rapidws.State.CLOSED
            assert not sender.is_alive()
            assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)
        finally:
            released.set()


def test_rejected_handshake() -> None:
    def script(conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        opening = ServerOpening()
        while opening.receive_data(conn.recv(65536)) is None:
            pass
        opening.reject(403, "no")
        conn.sendall(opening.data_to_send())

    with raw_server(script) as uri, pytest.raises(InvalidStatus) as info:
        rapidws.sync.connect(uri)
    assert info.value.response.status_code == 403


def test_redirect(server: tuple[str, Peer]) -> None:
    target, _ = server

    def script(conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        opening = ServerOpening()
        while opening.receive_data(conn.recv(65536)) is None:
            pass
        opening.redirect(302, target + "elsewhere")
        conn.sendall(opening.data_to_send())

    with raw_server(script) as uri, rapidws.sync.connect(uri) as ws:
        ws.send("redirected")
        assert ws.recv() == "redirected"
        assert ws.request.path == "/elsewhere"


def test_no_handshake_answer_times_out_naming_the_limit() -> None:
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        conn.recv(65536)
        done.wait(WAIT)  # never answers

    with raw_server(script) as uri:
        try:
            with pytest.raises(TimeoutError, match=r"open_timeout=0\.2"):
                rapidws.sync.connect(uri, open_timeout=0.2)
        finally:
            done.set()


def test_server_closes_mid_message() -> None:
    def script(conn: socket.socket) -> None:
        accept(conn)
        conn.sendall(b"\x82\x64" + b"x" * 10)  # 10 of 100 bytes, then TCP closes

    with raw_server(script) as uri, rapidws.sync.connect(uri) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=WAIT)
        assert info.value.code == 1006
        assert ws.close_code == 1006


def test_server_never_closes_tcp_after_the_close_handshake() -> None:
    released = threading.Event()

    def script(conn: socket.socket) -> None:
        accept(conn)
        read_close_code(conn)
        conn.sendall(b"\x88\x02\x03\xe8")  # its close frame, 1000, but TCP stays open
        released.wait(WAIT)

    with raw_server(script) as uri:
        ws = rapidws.sync.connect(uri, close_timeout=0.2)
        try:
            ws.close()  # returns once close_timeout is over
            assert ws.state == rapidws.State.CLOSED
            assert ws.close_code == 1000
            assert ws._sock.fileno() == -1
            assert not ws._keeper.is_alive()
        finally:
            released.set()


def test_server_never_answers_the_close_frame() -> None:
    released = threading.Event()

    def script(conn: socket.socket) -> None:
        accept(conn)
        read_close_code(conn)
        released.wait(WAIT)

    with raw_server(script) as uri:
        ws = rapidws.sync.connect(uri, close_timeout=0.2)
        try:
            ws.close()
            assert ws.close_code == 1006
            assert not ws._keeper.is_alive()
        finally:
            released.set()


def test_keepalive_timeout_fails_with_1011() -> None:
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        accept(conn)  # reads the pings and never answers them
        codes.append(read_close_code(conn))

    with (
        raw_server(script) as uri,
        rapidws.sync.connect(uri, ping_interval=0.02, ping_timeout=0.05, close_timeout=0.2) as ws,
    ):
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=WAIT)
        assert info.value.sent_code == 1011
    assert codes == [1011]


def test_flood_keeps_memory_bounded(server: tuple[str, Peer]) -> None:
    uri, peer = server
    high, count, size = 4, 400, 16384
    with rapidws.sync.connect(uri, max_queue=high, compression=None) as ws:
        most = 0
        original = ws.on_message

        def on_message(message: str | bytes) -> None:
            nonlocal most
            original(message)
            most = max(most, len(ws._messages))

        ws.on_message = on_message  # type: ignore[method-assign]
        ws.engine._csink = None  # the engine calls the instance attribute
        ws.send(f"!flood {count} {size}")
        # Nobody receives: the keeper reads until the queue is full, then stops.
        wait_until(lambda: len(ws._messages) >= high)
        assert peer.sent < count  # the server is held back by TCP flow control
        for i in range(count):
            message = ws.recv(timeout=WAIT)
            assert message == i.to_bytes(4, "big") * (size // 4)
        # One read (64 KiB) completes at most 5 messages of 16 KiB past the bound.
        assert most <= high + 5


def test_ping_flood_is_answered_while_receiving() -> None:
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        accept(conn)
        conn.sendall(b"\x89\x00" * 10_000 + b"\x81\x02ok")
        frames = FrameReader(conn)
        frame = frames.next()
        while frame.opcode == 0xA:  # pongs, then the client's "bye"
            frame = frames.next()
        codes.append(frame.opcode)

    with raw_server(script) as uri, rapidws.sync.connect(uri, close_timeout=0.2) as ws:
        assert ws.recv(timeout=WAIT) == "ok"
        ws.send("bye")
    assert codes == [1]


# ------------------------------------------------------------------ Node's ws


def test_node_ws_server(loop_thread: LoopThread) -> None:
    from tests.interop.helpers import node_ws_server, require_node_package

    node = require_node_package("ws")
    context = node_ws_server(node)
    uri = loop_thread.run(context.__aenter__())
    try:
        with rapidws.sync.connect(uri, max_size=2**23, open_timeout=WAIT) as ws:
            assert [extension.name for extension in ws.extensions] == ["permessage-deflate"]
            for message in ("hello", "wörld" * 10_000, b"\x00" * 10, os.urandom(2**20)):
                ws.send(message)
                assert ws.recv(timeout=WAIT) == message
            ws.send(["frag", "mented"])
            assert ws.recv(timeout=WAIT) == "fragmented"
            assert ws.ping().wait(WAIT)
            ws.send("__info__")
            info = json.loads(ws.recv(timeout=WAIT))  # type: ignore[arg-type]
            assert "permessage-deflate" in info["response"]
        assert ws.close_code == 1000
    finally:
        loop_thread.run(context.__aexit__(None, None, None))

"""Broadcast benchmark: one message to 10,000 connections, rapidws against websockets and picows.

    python benchmarks/broadcast.py [--connections 10000] [--rounds 3] [--duration 3.0]
        [--sizes 64,4096] [--libs rapidws,rapidws-callback,websockets,picows]
        [--windows 1,4 | --window N] [--uvloop] [--no-json]
    python benchmarks/broadcast.py --count 20 [--connections 1000] [--libs ...] [--windows 1]

Each server runs in a fresh subprocess pinned to core 0 with ``--connections``
WebSocket connections; a light raw-socket client process pinned to core 1
opens them (plain ``socket`` + ``epoll``: no WebSocket library), then counts
the bytes each connection receives (each message is one unmasked binary
frame of known size: no compression, no pings).  The client drives the
server through connection 0: once every connection has received message
*k*, it sends the text ``k`` back; the server keeps at most *window*
messages in flight, broadcasting the next one as each acknowledgement
comes.  So no write buffer grows and no receiver is slow: what is measured
is the broadcast itself.  Each window of ``--windows`` (``--window N``: one)
gets rows of its own: with window 1 every broadcast has a loop iteration to
itself (nothing to gather), with 4 several acknowledgements are often read
at once and their broadcasts leave together.  Servers:

- ``rapidws``: :func:`rapidws.broadcast` from the async API's handler;
- ``rapidws-callback``: :func:`rapidws.broadcast` from a callback of the callback API;
- ``rapidws-nocork`` (not run by default): ``rapidws.broadcast(..., cork=False)``;
- ``websockets``: ``websockets.broadcast`` (its asyncio server) from its handler;
- ``picows``: a loop of ``transport.send`` over its connections, from ``on_ws_frame``.

After a warm-up, over ``--duration`` seconds: deliveries (messages received,
all connections together) per second, and the server's CPU time per
delivery (from ``schedstat``), split into user and system time in the ratio
of utime to stime in /proc (clock ticks).  System time is the ``send``
calls and, on loopback, the TCP processing of what is sent (charged to the
sender): much the same for every library, a floor under the total.  The
client's CPU utilisation says whether it kept up (near 100 % the rates are
the client's).  Libraries, sizes and windows are interleaved in each round.

``--count N`` counts instead of timing: each server runs under
``valgrind --tool=callgrind`` for N broadcasts, then for 5N (per library,
size and window); the difference of the totals over the difference of the
deliveries is the user-space instructions per delivery, start-up (the
handshakes) cancelled out, as ``benchmarks/instructions.py`` counts
(valgrind must be installed; ``--connections 1000`` keeps the handshakes
short under valgrind).  Everything is bounded in time: a run that makes
no progress for 20 s is abandoned.  A markdown table goes to stdout,
progress to stderr, everything to ``benchmarks/results/broadcast.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from _harness import (
    ServerProcess,
    Summary,
    ensure_repo_on_path,
    environment,
    interleaved,
    markdown_table,
    process_cpu_ns,
    raise_nofile_limit,
    run_loop_interruptible,
    stale_extensions,
    write_json,
)

LIBS = ("rapidws", "rapidws-callback", "websockets", "picows")
#: Also runnable: rapidws.broadcast(..., cork=False), writing at once.
EXTRA_LIBS = ("rapidws-nocork",)
SERVER_CORE = 0
CLIENT_CORE = 1
CONNECT_BATCH = 250  # connections opened (then handshaken) at a time: under the listen backlog
STALL = 20.0  # seconds without progress after which a run is abandoned
TARGETS = {"websockets": 3.0, "picows": 1.5}  # rapidws at least this many times faster


def frame_size(size: int) -> int:
    """Bytes of an unmasked binary frame carrying ``size`` bytes."""
    return size + (2 if size < 126 else 4 if size < 65536 else 10)


# -- the server side ------------------------------------------------------------------


class Pump:
    """Keeps at most ``window`` messages in flight; ``send_all`` broadcasts one."""

    def __init__(self, size: int, window: int, limit: int = 0) -> None:
        self.message = bytes(i & 0xFF for i in range(size))
        self.window = window
        self.limit = limit  # broadcasts in all (0: no limit)
        self.sent = 0
        self.acked = -1
        self.started = False

    def control(self, text: str, send_all: Any) -> None:
        """A message from the client: ``go``, or the last round every connection has."""
        if text == "go":
            self.started = True
        else:
            self.acked = max(self.acked, int(text))
        if not self.started:
            return
        while self.sent - (self.acked + 1) < self.window:
            if self.limit and self.sent >= self.limit:
                return
            send_all(self.message)
            self.sent += 1


async def serve(lib: str, size: int, window: int, limit: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    for signum in (15, 2):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    pump = Pump(size, window, limit)
    conns: list[Any] = []
    options: dict[str, Any] = {"compression": None, "ping_interval": None, "max_queue": None}
    if lib in ("rapidws", "rapidws-nocork", "websockets"):
        if lib.startswith("rapidws"):
            import rapidws

            serve_ = rapidws.serve
            cork = lib == "rapidws"
            send_all = lambda m: rapidws.broadcast(conns, m, cork=cork)  # noqa: E731
            options["backlog"] = 1024
        else:
            import websockets
            from websockets.asyncio.server import serve as serve_  # type: ignore[assignment]

            send_all = lambda m: websockets.broadcast(conns, m)  # noqa: E731

        async def handler(ws: Any) -> None:
            conns.append(ws)
            with contextlib.suppress(Exception):  # the client leaves without a close frame
                async for text in ws:
                    pump.control(text, send_all)

        async with serve_(handler, "127.0.0.1", 0, **options) as server:
            print(f"READY {server.sockets[0].getsockname()[1]} {os.getpid()}", flush=True)
            await stop
    elif lib == "rapidws-callback":
        import rapidws

        def send_all(message: bytes) -> None:
            rapidws.broadcast(conns, message)

        class Control(rapidws.Listener):
            def on_open(self, conn: Any) -> None:
                conns.append(conn)

            def on_message(self, conn: Any, opcode: int, data: str | bytes) -> None:
                pump.control(str(data), send_all)

        del options["max_queue"]
        async with rapidws.serve_listener(
            lambda request: Control(), "127.0.0.1", 0, backlog=1024, **options
        ) as server:
            print(f"READY {server.sockets[0].getsockname()[1]} {os.getpid()}", flush=True)
            await stop
    elif lib == "picows":
        import picows

        binary = picows.WSMsgType.BINARY

        def send_all(message: bytes) -> None:
            for transport in conns:
                transport.send(binary, message)

        class PicowsControl(picows.WSListener):  # type: ignore[misc]
            def on_ws_connected(self, transport: Any) -> None:
                conns.append(transport)

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == picows.WSMsgType.TEXT:
                    pump.control(frame.get_payload_as_ascii_text(), send_all)
                elif frame.msg_type == picows.WSMsgType.CLOSE:
                    transport.disconnect()

        server = await picows.ws_create_server(lambda request: PicowsControl(), "127.0.0.1", 0)
        async with server:
            print(f"READY {server.sockets[0].getsockname()[1]} {os.getpid()}", flush=True)
            await stop
    else:
        raise ValueError(f"unknown library {lib}")


# -- the client side ------------------------------------------------------------------

REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


def text_frame(text: str) -> bytes:
    """A masked text frame (mask 0: the payload goes as it is)."""
    data = text.encode()
    return bytes((0x81, 0x80 | len(data))) + b"\0\0\0\0" + data


def open_connections(port: int, count: int) -> list[socket.socket]:
    request = REQUEST.format(port=port).encode()
    socks: list[socket.socket] = []
    while len(socks) < count:
        batch = []
        for _ in range(min(CONNECT_BATCH, count - len(socks))):
            sock = socket.create_connection(("127.0.0.1", port), timeout=STALL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # acks go at once
            sock.sendall(request)
            batch.append(sock)
        for sock in batch:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("connection closed during the handshake")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head[:40]!r}")
            if not head.endswith(b"\r\n\r\n"):
                raise RuntimeError("data before the first broadcast")
            sock.setblocking(False)
        socks += batch
    return socks


def client(port: int, count: int, size: int, warmup: float, duration: float, limit: int) -> None:
    """Receive; with ``limit``, until ``limit`` broadcasts are complete (no timing)."""
    raise_nofile_limit()
    frame = frame_size(size)
    socks = open_connections(port, count)
    index = {sock.fileno(): i for i, sock in enumerate(socks)}
    received = [0] * count  # bytes per connection
    rounds = [0] * count  # whole messages per connection
    reached: dict[int, int] = {}  # round -> connections that have it
    complete = -1
    total = 0
    poller = select.epoll(count + 1)
    for sock in socks:
        poller.register(sock.fileno(), select.EPOLLIN)
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    control = socks[0]
    control.send(text_frame("go"))
    started = time.monotonic()
    window_start = -1.0
    window_total = 0
    last_progress = started
    while True:
        events = poller.poll(1.0)
        now = time.monotonic()
        for fd, _ in events:
            sock = socks[index[fd]]
            try:
                n = sock.recv_into(view)
            except BlockingIOError:
                continue
            if n <= 0:
                raise RuntimeError("the server closed a connection")
            i = index[fd]
            got = received[i] + n
            received[i] = got
            total += n
            have = got // frame
            for r in range(rounds[i], have):
                seen = reached.get(r, 0) + 1
                if seen == count:
                    del reached[r]
                    complete = r
                    control.send(text_frame(str(r)))
                    if limit and complete == limit - 1:
                        # The server is stopped first: closing these is no part of the count.
                        print(f"DONE {total // frame}", flush=True)
                        time.sleep(STALL)
                        return
                else:
                    reached[r] = seen
            rounds[i] = have
        if events:
            last_progress = now
        elif now - last_progress > STALL:
            print(f"STALL {complete}", flush=True)
            sys.exit(1)
        if limit:
            continue
        if window_start < 0:
            if now - started >= warmup:
                window_start = now
                window_total = total
                print(f"START {complete}", flush=True)
        elif now - window_start >= duration:
            delivered = (total - window_total) / frame
            print(f"STOP {now - window_start:.6f} {delivered:.0f}", flush=True)
            return


# -- the driver ----------------------------------------------------------------------


def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not readable:
            raise TimeoutError("no answer from the client")
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError(f"the client exited ({process.wait()})")
        data += chunk
    return data.decode().strip()


def user_system_seconds(pid: int) -> tuple[float, float]:
    """User and kernel CPU time of a process (utime and stime from /proc), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def server_command(
    lib: str, size: int, window: int, args: argparse.Namespace, limit: int = 0
) -> list[str]:
    here = os.path.abspath(__file__)
    command = [sys.executable, here, "--role", "server", "--lib", lib, "--size", str(size)]
    command += ["--window", str(window), "--count", str(limit)]
    return command + (["--uvloop"] if args.uvloop else [])


def client_process(port: int, size: int, args: argparse.Namespace, limit: int = 0) -> Any:
    taskset = shutil.which("taskset")
    assert taskset is not None
    here = os.path.abspath(__file__)
    command = [taskset, "-c", str(CLIENT_CORE), sys.executable, here, "--role", "client"]
    command += ["--port", str(port), "--connections", str(args.connections)]
    command += ["--size", str(size), "--warmup", str(args.warmup)]
    command += ["--duration", str(args.duration), "--count", str(limit)]
    return subprocess.Popen(command, stdout=subprocess.PIPE)


def run_one(lib: str, size: int, window: int, args: argparse.Namespace) -> dict[str, float]:
    with ServerProcess(server_command(lib, size, window, args), core=SERVER_CORE) as server:
        proc = client_process(server.port, size, args)
        try:
            limit = STALL + args.warmup + 120.0  # opening 10,000 connections included
            line = read_line(proc, limit)
            if not line.startswith("START"):
                raise RuntimeError(f"{lib}: {line}")
            cpu0, ccpu0, t0 = process_cpu_ns(server.pid), process_cpu_ns(proc.pid), time.time()
            user0, sys0 = user_system_seconds(server.pid)
            line = read_line(proc, args.duration + STALL)
            cpu1, ccpu1, t1 = process_cpu_ns(server.pid), process_cpu_ns(proc.pid), time.time()
            user1, sys1 = user_system_seconds(server.pid)
            if not line.startswith("STOP"):
                raise RuntimeError(f"{lib}: {line}")
            _, elapsed, delivered = line.split()
            rate = float(delivered) / float(elapsed)
            cpu = (cpu1 - cpu0) / float(delivered)
            # schedstat's total is exact; /proc's ticks (10 ms) give the split.
            kernel_share = (sys1 - sys0) / max((user1 - user0) + (sys1 - sys0), 1e-9)
            return {
                "deliveries_per_s": rate,
                "server_ns_per_delivery": cpu,
                "server_user_ns_per_delivery": cpu * (1.0 - kernel_share),
                "server_system_ns_per_delivery": cpu * kernel_share,
                "server_kernel_share": kernel_share,
                "client_busy": (ccpu1 - ccpu0) / 1e9 / (t1 - t0),
                "server_busy": (cpu1 - cpu0) / 1e9 / (t1 - t0),
            }
        finally:
            proc.kill()
            proc.wait()


def counted_run(
    lib: str, size: int, window: int, args: argparse.Namespace, limit: int
) -> tuple[int, int]:
    """The server under callgrind for ``limit`` broadcasts: (instructions, deliveries)."""
    with tempfile.TemporaryDirectory() as out_dir:
        out = os.path.join(out_dir, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}"]
        command += server_command(lib, size, window, args, limit)
        server = ServerProcess(command, core=SERVER_CORE, ready_timeout=300.0, stop_timeout=300.0)
        with server:
            proc = client_process(server.port, size, args, limit)
            try:
                line = read_line(proc, 600.0)
                if not line.startswith("DONE"):
                    raise RuntimeError(f"{lib}: {line}")
                delivered = int(line.split()[1])
                server.stop()  # before the client closes its connections
            finally:
                proc.kill()
                proc.wait()
        # stop() waited for the server's exit: callgrind has written its counts.
        with open(out) as file:
            match = re.search(r"^summary:\s+(\d+)", file.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError("no summary line in callgrind's output")
    return int(match.group(1)), delivered


def count(args: argparse.Namespace) -> None:
    """User-space instructions per delivery (see the module's notes)."""
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    libs = args.libs.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    windows = windows_of(args)
    rows = []
    results: dict[str, float] = {}
    for window in windows:
        for size in sizes:
            line = [str(window), f"{size} B"]
            for lib in libs:
                small, n_small = counted_run(lib, size, window, args, args.count)
                large, n_large = counted_run(lib, size, window, args, 5 * args.count)
                per = (large - small) / (n_large - n_small)
                results[f"{size} {lib} window {window}"] = per
                print(f"window {window} {size} B {lib}: {per:,.0f}", file=sys.stderr)
                line.append(f"{per:,.0f}")
            rows.append(line)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"\n{args.connections:,} connections, {loop}, user-space instructions per delivery\n")
    print(markdown_table(["window", "message", *libs], rows))
    if not args.no_json:
        data = {"args": vars(args), "instructions_per_delivery": results}
        path = write_json("broadcast_instructions", data)
        print(f"\nresults: {path}", file=sys.stderr)


def windows_of(args: argparse.Namespace) -> list[int]:
    if args.window is not None:
        return [args.window]
    return [int(w) for w in args.windows.split(",")]


def drive(args: argparse.Namespace) -> None:
    ensure_repo_on_path()
    import rapidws._accel

    compiled = all(rapidws._accel.compiled_modules().values())
    stale = stale_extensions(os.path.join(os.path.dirname(os.path.dirname(__file__)), "rapidws"))
    print(f"rapidws build: {'compiled' if compiled else 'pure Python'}", file=sys.stderr)
    if stale:
        print(f"WARNING: compiled modules older than their source: {stale}", file=sys.stderr)
    if args.count:
        count(args)
        return
    libs = args.libs.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    windows = windows_of(args)
    cases = [(window, size, lib) for window in windows for size in sizes for lib in libs]
    samples: dict[tuple[int, int, str], list[dict[str, float]]] = {case: [] for case in cases}
    for round_, (window, size, lib) in interleaved(args.rounds, cases):
        sample = run_one(lib, size, window, args)
        samples[window, size, lib].append(sample)
        print(
            f"round {round_ + 1}/{args.rounds} window {window} {lib} {size} B: "
            f"{sample['deliveries_per_s']:,.0f} deliveries/s, "
            f"{sample['server_ns_per_delivery']:,.0f} ns/delivery "
            f"({sample['server_user_ns_per_delivery']:,.0f} user), "
            f"server {sample['server_busy']:.0%} ({sample['server_kernel_share']:.0%} kernel), "
            f"client {sample['client_busy']:.0%}",
            file=sys.stderr,
        )
    headers = [
        "message",
        "server",
        "deliveries/s",
        "server CPU ns/delivery",
        "user ns",
        "system ns",
        "client CPU",
        f"{libs[0]} faster",
        f"{libs[0]} CPU saving",
        f"{libs[0]} user CPU saving",
        "target",
    ]
    loop = "uvloop" if args.uvloop else "asyncio"
    for window in windows:
        rows = []
        for size in sizes:

            def median(lib: str, key: str, size: int = size, window: int = window) -> float:
                return Summary.of([s[key] for s in samples[window, size, lib]]).median

            base_rate = median(libs[0], "deliveries_per_s")
            base_cpu = median(libs[0], "server_ns_per_delivery")
            base_user = median(libs[0], "server_user_ns_per_delivery")
            for lib in libs:
                runs = samples[window, size, lib]
                rate = Summary.of([s["deliveries_per_s"] for s in runs])
                cpu = Summary.of([s["server_ns_per_delivery"] for s in runs])
                user = median(lib, "server_user_ns_per_delivery")
                system = median(lib, "server_system_ns_per_delivery")
                target = TARGETS.get(lib)
                rows.append(
                    [
                        f"{size} B",
                        lib,
                        rate.format(",.0f"),
                        cpu.format(",.0f"),
                        f"{user:,.0f}",
                        f"{system:,.0f}",
                        f"{median(lib, 'client_busy'):.0%}",
                        f"{base_rate / rate.median:.2f}x",
                        f"{cpu.median / base_cpu:.2f}x",
                        f"{user / base_user:.2f}x",
                        "" if target is None else f"{target:.1f}x",
                    ]
                )
        print(
            f"\n{args.connections:,} connections, {loop}, window {window}, median (min to max);"
            " user and system: medians of each\n"
        )
        print(markdown_table(headers, rows))
    if not args.no_json:
        path = write_json(
            "broadcast",
            {
                "environment": environment(["rapidws", "websockets", "picows", "uvloop"]),
                "compiled": compiled,
                "args": vars(args),
                "samples": {
                    f"{size} {lib}" + ("" if len(windows) == 1 else f" window {window}"): runs
                    for (window, size, lib), runs in samples.items()
                },
            },
        )
        print(f"\nresults: {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("driver", "server", "client"), default="driver")
    parser.add_argument("--lib", choices=LIBS + EXTRA_LIBS)
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sizes", default="64,4096")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--windows", default="1,4", help="messages in flight, rows for each")
    parser.add_argument("--window", type=int, help="one window only (the server's, too)")
    parser.add_argument("--count", type=int, default=0, help="count instructions (see above)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args()
    if args.role == "server":
        raise_nofile_limit()
        ensure_repo_on_path()
        window = 4 if args.window is None else args.window
        run_loop_interruptible(serve(args.lib, args.size, window, args.count), args.uvloop)
    elif args.role == "client":
        client(args.port, args.connections, args.size, args.warmup, args.duration, args.count)
    else:
        drive(args)


if __name__ == "__main__":
    main()

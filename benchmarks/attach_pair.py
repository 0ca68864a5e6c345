"""rapidws.attach over a socketpair, no HTTP, against the same echo over TCP.

    python benchmarks/attach_pair.py [--loops asyncio,uvloop] [--messages 2000]
        [--rounds 3] [--no-count]

The server is a subprocess pinned to core 0 that echoes with the async API;
this process, pinned to core 1, is the client (rapidws too) and sends 64 B
messages one at a time (rtt-64) and 64 at a time (pipelined-64).  Three ways
to reach the server:

- ``socketpair``: one end of ``socket.socketpair()`` is inherited by the
  server, both ends run ``rapidws.attach(..., handshake=False)``: the
  connection starts OPEN, no HTTP, no TCP;
- ``attach TCP``: ``asyncio.start_server`` accepts, ``rapidws.attach`` runs
  the opening handshake on its streams (the same transport as above: the
  loop's own), the client connects with ``rapidws.connect``;
- ``serve TCP``: ``rapidws.serve`` (rapidws's own transport on uvloop).

Two tables: round trips (or messages) per second, the median of interleaved
rounds; and, with valgrind installed and without ``--no-count``, the server's
user-space instructions per message, counted by callgrind over ``N`` and
``5N`` messages (start-up and shutdown cancel out).  The engine is the same
in all three; the first two share the transport too, so their counts differ
by what TCP's own path costs in user space, which is nothing: that is the
claim this script checks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _harness import (
    REPO_ROOT,
    ensure_repo_on_path,
    markdown_table,
    pin_current_process,
    run_loop,
)

WAYS = ("socketpair", "attach TCP", "serve TCP")
ROWS = {"rtt-64": 1, "pipelined-64": 64}  # row name: messages in flight
PAYLOAD = b"x" * 64


# -- the server (a subprocess) ------------------------------------------------------


async def serve_one(way: str, fd: int) -> None:
    """Echo on one connection, then return (the process exits: callgrind writes)."""
    ensure_repo_on_path()
    import rapidws

    options: dict[str, Any] = {"compression": None, "ping_interval": None}
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    if way == "socketpair":
        reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
        print("READY 0", flush=True)
        ws = await rapidws.attach(reader, writer, side="server", handshake=False, **options)
        await echo(ws)
        await ws.wait_closed()
        return

    async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ws = await rapidws.attach(reader, writer, side="server", **options)
        await echo(ws)
        await ws.wait_closed()
        done.set_result(None)

    async def handler(ws: Any) -> None:
        await echo(ws)
        done.set_result(None)

    if way == "attach TCP":
        server: Any = await asyncio.start_server(on_stream, "127.0.0.1", 0)
    else:
        server = await rapidws.serve(handler, "127.0.0.1", 0, **options)
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"READY {port}", flush=True)
    await done
    server.close()
    await server.wait_closed()


# -- the client (this process) ------------------------------------------------------


def start_server(
    way: str, loop: str, count_file: str | None
) -> tuple[subprocess.Popen[bytes], int, socket.socket | None]:
    """Start the server for ``way``: (process, TCP port or 0, the socketpair's client end)."""
    ours: socket.socket | None = None
    theirs: socket.socket | None = None
    fds: tuple[int, ...] = ()
    if way == "socketpair":
        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(),)
    command = [sys.executable, os.path.abspath(__file__), "--serve", way, "--loops", loop]
    command += ["--fd", str(fds[0] if fds else -1)]
    if count_file is not None:
        command = [
            "valgrind",
            "--tool=callgrind",
            "-q",
            f"--callgrind-out-file={count_file}",
            *command,
        ]
    command = ["taskset", "-c", "0", *command]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, pass_fds=fds, env=env)
    if theirs is not None:
        theirs.close()
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "READY":
        process.kill()
        raise RuntimeError(f"server for {way!r} did not start: {line!r}")
    return process, int(line[1]), ours


async def run_client(
    way: str, port: int, sock: socket.socket | None, window: int, messages: int
) -> float:
    """Echo ``messages`` 64 B messages, ``window`` in flight; return the seconds taken."""
    ensure_repo_on_path()
    import rapidws

    options: dict[str, Any] = {"compression": None, "ping_interval": None}
    if sock is not None:
        reader, writer = await asyncio.open_connection(sock=sock)
        ws: Any = await rapidws.attach(reader, writer, side="client", handshake=False, **options)
    else:
        ws = await rapidws.connect(f"ws://127.0.0.1:{port}/", **options)
    start = time.perf_counter()
    sent = 0
    while sent < messages:
        burst = min(window, messages - sent)
        for _ in range(burst):
            await ws.send(PAYLOAD)
        for _ in range(burst):
            await ws.recv()
        sent += burst
    elapsed = time.perf_counter() - start
    await ws.close()
    return elapsed


def one_run(way: str, loop: str, row: str, messages: int, count_file: str | None) -> float:
    process, port, sock = start_server(way, loop, count_file)
    try:
        return run_loop(run_client(way, port, sock, ROWS[row], messages), loop == "uvloop")
    finally:
        try:
            process.wait(120 if count_file else 20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def instructions(count_file: str) -> int:
    with open(count_file) as file:
        match = re.search(r"^summary:\s+(\d+)", file.read(), re.MULTILINE)
    os.unlink(count_file)
    if match is None:
        raise RuntimeError("no summary line in callgrind's output")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--messages", type=int, default=2000, help="messages per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-count", action="store_true", help="skip callgrind")
    parser.add_argument("--serve", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_loop(serve_one(args.serve, args.fd), args.loops == "uvloop")
        return
    pin_current_process(1)
    count = not args.no_count and shutil.which("valgrind") is not None
    for loop in args.loops.split(","):
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for row in ROWS:
                for way in WAYS:  # interleaved: drift hits every way alike
                    seconds = one_run(way, loop, row, args.messages, None)
                    rates.setdefault((row, way), []).append(args.messages / seconds)
        cells = [
            [row, *(f"{statistics.median(rates[row, way]):,.0f}" for way in WAYS)] for row in ROWS
        ]
        print(f"\n#### messages per second (median of {args.rounds}), {loop}\n")
        print(markdown_table(["row", *WAYS], cells))
        if not count:
            continue
        cells = []
        with tempfile.TemporaryDirectory() as out_dir:
            for row in ROWS:
                line = [row]
                for way in WAYS:
                    small_n, large_n = 200, 1000
                    totals = []
                    for n in (small_n, large_n):
                        out = os.path.join(out_dir, f"callgrind.{n}.out")
                        one_run(way, loop, row, n, out)
                        totals.append(instructions(out))
                    per = (totals[1] - totals[0]) / (large_n - small_n)
                    print(f"{loop} {row} {way}: {per:,.0f}", file=sys.stderr)
                    line.append(f"{per:,.0f}")
                cells.append(line)
        print(f"\n#### server instructions per message (callgrind), {loop}\n")
        print(markdown_table(["row", *WAYS], cells))


if __name__ == "__main__":
    main()

"""Instructions per message: a server's user-space cost, counted, not timed.

    python benchmarks/instructions.py [--servers "rapidws callback,picows"]
        [--rows rtt-64,rtt-1m,conns-100] [--loops asyncio,uvloop] [--messages 500]

Each server runs under ``valgrind --tool=callgrind`` twice: the load
generator sends ``--messages`` messages, then five times as many.  The
difference of the two totals over the difference of the counts is the
instructions per message, start-up and shutdown cancelled out.  A count
repeats for the same build and input whatever else the machine is doing,
so it shows differences of a few per cent that timed windows on a shared
VM cannot; it leaves out the kernel (system calls, TCP), which the suite's
CPU rows include, and it counts one instruction where the CPU may spend
many cycles (cache misses, page faults).  Rows and servers are the suite's
(``benchmarks/suite.py``); valgrind must be installed (Debian: valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile

import loadgen
from _harness import (
    BENCH_DIR,
    ServerProcess,
    markdown_table,
    pin_current_process,
    raise_nofile_limit,
)
from suite import ROWS, SERVERS, Row, ServerSpec

DEFAULT_SERVERS = "rapidws callback,rapidws async,picows,picows.websockets,websockets"
DEFAULT_ROWS = "rtt-64,rtt-1m,conns-100"


async def send_messages(port: int, row: Row, total: int, raw: bool) -> int:
    """At least ``total`` echoes over the row's connections, ``row.window`` in flight
    each; return how many there were."""
    message = loadgen.Message.binary(row.size, raw)
    clients = [
        await loadgen.open_client(port, message, raw, timeout=120.0) for _ in range(row.connections)
    ]
    for client in clients:
        client.start(row.window)
    while sum(client.echoed for client in clients) < total:
        await asyncio.sleep(0.005)
    for client in clients:
        client.stop()
    await asyncio.gather(*(client.drain(120.0) for client in clients))
    await asyncio.gather(*(client.close(30.0) for client in clients))
    return sum(client.echoed for client in clients)


def counted_run(spec: ServerSpec, row: Row, loop: str, total: int, out_dir: str) -> tuple[int, int]:
    """Run the server under callgrind for ``total`` echoes: (instructions, echoes)."""
    out = os.path.join(out_dir, f"callgrind.{os.getpid()}.{total}.out")
    command = [
        "valgrind",
        "--tool=callgrind",
        "-q",
        f"--callgrind-out-file={out}",
        sys.executable,
        os.path.join(BENCH_DIR, "echo_servers.py"),
        "--lib",
        spec.lib,
        "--port",
        "0",
        "--compression",
        "none",
        "--max-size",
        str(2**22),
    ]
    if loop == "uvloop":
        command.append("--uvloop")
    env = dict(os.environ)
    env.pop("RAPIDWS_NO_EXTENSIONS", None)
    if spec.pure:
        env["RAPIDWS_NO_EXTENSIONS"] = "1"
    server = ServerProcess(command, core=0, env=env, ready_timeout=300.0, stop_timeout=120.0)
    with server:
        echoes = asyncio.run(send_messages(server.port, row, total, spec.raw))
    # stop() waited for the server's exit: callgrind has written its counts.
    with open(out) as file:
        text = file.read()
    os.unlink(out)
    match = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no summary line in callgrind's output")
    return int(match.group(1)), echoes


def per_message(spec: ServerSpec, row: Row, loop: str, messages: int, out_dir: str) -> float:
    small, n_small = counted_run(spec, row, loop, messages, out_dir)
    large, n_large = counted_run(spec, row, loop, 5 * messages, out_dir)
    return (large - small) / (n_large - n_small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=DEFAULT_SERVERS)
    parser.add_argument("--rows", default=DEFAULT_ROWS)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--messages", type=int, default=500, help="the smaller run's echoes")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    servers = [SERVERS[name] for name in args.servers.split(",")]
    rows = [ROWS[name] for name in args.rows.split(",")]
    loops = args.loops.split(",")
    pin_current_process(1)
    raise_nofile_limit()
    with tempfile.TemporaryDirectory() as out_dir:
        for loop in loops:
            cells = []
            for row in rows:
                # Large messages are few: each costs as much as hundreds of small ones.
                messages = max(20, args.messages * 64 // max(64, row.size // 16))
                line = [row.name]
                for spec in servers:
                    count = per_message(spec, row, loop, messages, out_dir)
                    line.append(f"{count:,.0f}")
                    print(f"{loop} {row.name} {spec.name}: {count:,.0f}", file=sys.stderr)
                cells.append(line)
            print(f"\n#### user-space instructions per message, {loop}\n")
            print(markdown_table(["row", *[spec.name for spec in servers]], cells))


if __name__ == "__main__":
    main()

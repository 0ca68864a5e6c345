"""Blocking clients' round trips: ``rapidws.sync`` against ``websockets.sync.client``.

    python benchmarks/sync_client.py [--rounds 5] [--duration 1.0] [--server rapidws-callback]
                                     [--sizes 64,1024] [--uvloop]

One echo server process (``echo_servers.py``, compression off, pinned to core
0); this process, pinned to core 1, runs each client in turn against it,
interleaved round by round so that drift hits both alike.  A run: connect,
warm up, then send one binary message and wait for its echo, again and
again, for ``--duration`` seconds (bounded in count too).  Prints a markdown
table of round trips per second (median, min to max over the rounds) and the
ratio to websockets, then this process's CPU time per round trip (all its
threads: the client's own, and websockets' reader thread).  ``rapidws.sync
spin=0`` is rapidws without its spinning reads (see
``rapidws/sync/client.py``).  ``RAPIDWS_NO_EXTENSIONS=1`` measures rapidws's
pure-Python build.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _harness import (
    BENCH_DIR,
    ServerProcess,
    Summary,
    ensure_repo_on_path,
    interleaved,
    markdown_table,
    pin_current_process,
)

CLIENTS = ("rapidws.sync", "rapidws.sync spin=0", "websockets.sync")
WARMUP = 200
MAX_ROUND_TRIPS = 2_000_000


def _connector(name: str) -> Callable[[str], Any]:
    options: dict[str, Any] = {"compression": None, "max_size": 2**24, "ping_interval": None}
    if name.startswith("rapidws.sync"):
        ensure_repo_on_path()
        import rapidws.sync

        if name.endswith("spin=0"):
            options["spin"] = 0
        return lambda uri: rapidws.sync.connect(uri, **options)
    from websockets.sync.client import connect

    return lambda uri: connect(uri, **options)


def one_run(
    connect: Callable[[str], Any], uri: str, size: int, duration: float
) -> tuple[float, float]:
    """Round trips per second of one connection over ``duration`` seconds, and
    this process's CPU microseconds per round trip."""
    payload = os.urandom(size)
    with connect(uri) as ws:
        for _ in range(WARMUP):
            ws.send(payload)
            ws.recv()
        count = 0
        cpu = time.process_time()
        start = time.perf_counter()
        deadline = start + duration
        while count < MAX_ROUND_TRIPS:
            for _ in range(100):
                ws.send(payload)
                ws.recv()
            count += 100
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        return count / elapsed, (time.process_time() - cpu) / count * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--server", default="rapidws-callback")
    parser.add_argument("--sizes", default="64,1024")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    command = [
        sys.executable,
        os.path.join(BENCH_DIR, "echo_servers.py"),
        "--lib",
        args.server,
        "--compression",
        "none",
        "--max-size",
        str(2**24),
    ]
    if args.uvloop:
        command.append("--uvloop")
    pin_current_process(1)
    connectors = {name: _connector(name) for name in CLIENTS}
    results: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    with ServerProcess(command, core=0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        for _, name in interleaved(args.rounds, CLIENTS):
            for size in sizes:
                rate, cpu = one_run(connectors[name], uri, size, args.duration)
                results.setdefault((name, size), []).append(rate)
                cpus.setdefault((name, size), []).append(cpu)
    build = "pure" if os.environ.get("RAPIDWS_NO_EXTENSIONS") == "1" else "compiled"
    rows = []
    for size in sizes:
        theirs = Summary.of(results[("websockets.sync", size)])
        row = [f"{size} B"]
        for name in CLIENTS[:2]:
            ours = Summary.of(results[(name, size)])
            row += [ours.format(), f"{ours.median / theirs.median:.2f}x"]
        row.append(theirs.format())
        row += [Summary.of(cpus[(name, size)]).format(".1f", spread=False) for name in CLIENTS]
        rows.append(row)
    print(
        f"Round trips/s, one blocking client against `{args.server}` "
        f"({'uvloop' if args.uvloop else 'asyncio'}), rapidws {build} build, "
        f"{args.rounds} interleaved rounds of {args.duration} s; median (min to max)\n"
    )
    print(
        markdown_table(
            [
                "message",
                "rapidws.sync",
                "ratio",
                "rapidws.sync spin=0",
                "ratio",
                "websockets.sync.client",
                *(f"CPU µs/rt {name}" for name in CLIENTS),
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

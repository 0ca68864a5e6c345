"""The benchmark suite: rapidws against picows, websockets, aiohttp and raw TCP.

    python benchmarks/suite.py [--quick] [--rounds 3] [--duration 1.0]
        [--servers rapidws-callback,picows,...] [--loops asyncio,uvloop]
        [--rows rtt-64,pipelined-64,...] [--memory-connections 10000]
        [--no-clients] [--no-memory] [--no-chart]

Server side: each server (``echo_servers.py``) runs in a fresh subprocess
pinned to core 0, with asyncio's default loop and with uvloop; the load
comes from this process, pinned to core 1: ``loadgen.py``, one cheap fixed
client for every server (pre-built frames, echoes counted by bytes), on
uvloop.  Rows:

- ``rtt-64``, ``rtt-1k``, ``rtt-64k``, ``rtt-1m``: echo round trips per
  second over one connection, one message in flight;
- ``pipelined-64``, ``pipelined-64k``, ``pipelined-1m``: one connection, many
  messages in flight;
- ``conns-100``: 100 connections, one 64 B message in flight on each;
- ``handshakes``: connections opened, upgraded and closed per second;
- ``memory``: server RSS growth per connection with ``--memory-connections``
  idle connections open.

Client side: each library's client (``clients.py``, pinned to core 1)
against one fixed server, picows' listener on uvloop on core 0.

Servers are measured in interleaved rounds (each round visits every server
in turn, so drift hits all alike); tables give the median with min to max.
Beside rates, the server's CPU time per message (``/proc/PID/task/*/schedstat``
over the window) is reported: on these 2-core VMs a lone round trip is
bound by wake-up latency, and CPU per message is what separates libraries
there.  The load generator's own CPU utilisation is recorded for every
window; the report flags any window where it passed 90 % of its core.

Tables go to stdout (markdown), progress to stderr, everything to
``benchmarks/results/suite.json`` and a chart to ``benchmarks/results/suite.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import loadgen
from _harness import (
    BENCH_DIR,
    REPO_ROOT,
    RESULTS_DIR,
    ServerProcess,
    Summary,
    bounded_gather,
    environment,
    exit_on_sigterm,
    interleaved,
    markdown_table,
    pin_current_process,
    process_cpu_ns,
    process_rss_kib,
    raise_nofile_limit,
    run_loop_interruptible,
    stale_extensions,
    tree_digest,
    write_json,
)

SERVER_CORE = 0
CLIENT_CORE = 1
MAX_SIZE = 2**22  # every server accepts the 1 MiB message
CLIENT_BUSY = 0.9
CONNECT_CONCURRENCY = 64  # under asyncio's default listen backlog of 100


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    """A server to measure: an ``echo_servers.py`` library, maybe the pure build."""

    name: str
    lib: str
    pure: bool = False

    @property
    def raw(self) -> bool:
        return self.lib == "tcp"


SERVERS = {
    s.name: s
    for s in (
        ServerSpec("rapidws callback", "rapidws-callback"),
        ServerSpec("rapidws frames", "rapidws-frames"),
        ServerSpec("rapidws attach", "rapidws-attach"),
        ServerSpec("rapidws stream", "rapidws-stream"),
        ServerSpec("rapidws async", "rapidws"),
        ServerSpec("rapidws split", "rapidws-split"),
        ServerSpec("rapidws pure", "rapidws", pure=True),
        ServerSpec("picows", "picows"),
        ServerSpec("picows.websockets", "picows.websockets"),
        ServerSpec("websockets", "websockets"),
        ServerSpec("aiohttp", "aiohttp"),
        ServerSpec("raw TCP echo", "tcp"),
    )
}


@dataclasses.dataclass(frozen=True)
class Row:
    """A server-side measurement: ``connections`` x ``window`` messages of ``size`` in flight."""

    name: str
    title: str
    size: int = 64
    window: int = 1
    connections: int = 1
    latency_bound: bool = True  # compare CPU per message, not rates


ROWS = {
    r.name: r
    for r in (
        Row("rtt-64", "echo round trips/s, 64 B"),
        Row("rtt-1k", "echo round trips/s, 1 KiB", size=1024),
        Row("rtt-64k", "echo round trips/s, 64 KiB", size=65536),
        Row("rtt-1m", "echo round trips/s, 1 MiB", size=2**20, latency_bound=False),
        Row(
            "pipelined-64", "pipelined msgs/s, 64 B, 256 in flight", window=256, latency_bound=False
        ),
        Row(
            "pipelined-64k",
            "pipelined msgs/s, 64 KiB, 16 in flight",
            size=65536,
            window=16,
            latency_bound=False,
        ),
        Row(
            "pipelined-1m",
            "pipelined msgs/s, 1 MiB, 4 in flight",
            size=2**20,
            window=4,
            latency_bound=False,
        ),
        Row("conns-100", "msgs/s over 100 connections, 64 B", connections=100, latency_bound=False),
        Row("handshakes", "handshakes/s (open, upgrade, close), 16 at a time", latency_bound=False),
    )
}

CLIENT_ROWS = {
    "client-rtt-64": Row("client-rtt-64", "client: round trips/s, 64 B"),
    "client-pipelined-64": Row(
        "client-pipelined-64", "client: pipelined msgs/s, 64 B, 256 in flight", window=256
    ),
}

CLIENT_LIBS = {
    "rapidws callback": ("rapidws-callback", False),
    "rapidws async": ("rapidws", False),
    "rapidws pure": ("rapidws", True),
    "picows": ("picows", False),
    "picows.websockets": ("picows.websockets", False),
    "websockets": ("websockets", False),
    "aiohttp": ("aiohttp", False),
}


@dataclasses.dataclass
class Sample:
    rate: float  # messages (or handshakes) per second
    server_us: float  # server CPU per message, microseconds
    client_utilisation: float  # the load generator's (or measured client's) CPU use


Key = tuple[str, str, str]  # (row, server, loop)


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def server_env(pure: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAPIDWS_NO_EXTENSIONS", None)
    if pure:
        env["RAPIDWS_NO_EXTENSIONS"] = "1"
    return env


def server_process(lib: str, loop: str, pure: bool, core: int = SERVER_CORE) -> ServerProcess:
    command = [
        sys.executable,
        os.path.join(BENCH_DIR, "echo_servers.py"),
        "--lib",
        lib,
        "--compression",
        "none",
        "--max-size",
        str(MAX_SIZE),
    ]
    if loop == "uvloop":
        command.append("--uvloop")
    return ServerProcess(command, core=core, env=server_env(pure))


class CpuWindow:
    """Reads a process's CPU time at a window's start and stop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_ns = self.stop_ns = 0

    def start(self) -> None:
        self.start_ns = process_cpu_ns(self.pid)

    def stop(self) -> None:
        self.stop_ns = process_cpu_ns(self.pid)

    @property
    def seconds(self) -> float:
        return (self.stop_ns - self.start_ns) / 1e9


async def measure_row(port: int, pid: int, spec: ServerSpec, row: Row, duration: float) -> Sample:
    cpu = CpuWindow(pid)
    if row.name == "handshakes":
        window = await loadgen.handshakes(port, spec.raw, duration, 16, cpu.start, cpu.stop)
    else:
        message = loadgen.Message.binary(row.size, spec.raw)
        clients = await bounded_gather(
            row.connections,
            lambda i: loadgen.open_client(port, message, spec.raw),
            CONNECT_CONCURRENCY,
        )
        try:
            window = await loadgen.measure(clients, row.window, duration, cpu.start, cpu.stop)
        finally:
            await asyncio.gather(*(c.close() for c in clients))
    if window.messages == 0:
        raise RuntimeError(f"{spec.name}: no message echoed in {row.name}")
    return Sample(window.rate, cpu.seconds / window.messages * 1e6, window.client_utilisation)


async def measure_memory(port: int, pid: int, spec: ServerSpec, connections: int) -> float:
    """Server RSS growth per idle connection, in KiB."""
    message = loadgen.Message.binary(64, spec.raw)
    # Warm up: the first connection imports and allocates what every later one shares.
    first = await loadgen.open_client(port, message, spec.raw)
    await first.close()
    await asyncio.sleep(0.3)
    before = process_rss_kib(pid)
    clients = await bounded_gather(
        connections, lambda i: loadgen.open_client(port, message, spec.raw), CONNECT_CONCURRENCY
    )
    await asyncio.sleep(0.5)
    after = process_rss_kib(pid)
    await bounded_gather(len(clients), lambda i: clients[i].close(), 512)
    return (after - before) / connections


def run_client(lib: str, pure: bool, loop: str, port: int, row: Row, duration: float) -> Sample:
    command = [
        "taskset",
        "-c",
        str(CLIENT_CORE),
        sys.executable,
        os.path.join(BENCH_DIR, "clients.py"),
        "--lib",
        lib,
        "--port",
        str(port),
        "--size",
        str(row.size),
        "--window",
        str(row.window),
        "--duration",
        str(duration),
    ]
    if loop == "uvloop":
        command.append("--uvloop")
    env = server_env(pure)
    env["PYTHONPATH"] = REPO_ROOT
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"client {lib} failed: {out.stderr.strip()[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    messages = result["messages"]
    if messages == 0:
        raise RuntimeError(f"client {lib}: no message echoed")
    return Sample(
        messages / result["seconds"],
        result["cpu"] / messages * 1e6,  # the client's CPU per message here
        result["cpu"] / result["seconds"],
    )


# -- reporting -----------------------------------------------------------------------


def summaries(samples: dict[Key, list[Sample]]) -> dict[Key, tuple[Summary, Summary, float]]:
    out = {}
    for key, values in samples.items():
        out[key] = (
            Summary.of([s.rate for s in values]),
            Summary.of([s.server_us for s in values]),
            max(s.client_utilisation for s in values),
        )
    return out


def row_table(
    row: Row,
    stats: dict[Key, tuple[Summary, Summary, float]],
    names: Sequence[str],
    loops: Sequence[str],
    cpu_label: str = "server CPU µs/msg",
    util_label: str = "load gen. CPU",
) -> str:
    rows = []
    for name in names:
        for loop in loops:
            key = (row.name, name, loop)
            if key not in stats:
                continue
            rate, cpu, util = stats[key]
            flag = " ⚠" if util > CLIENT_BUSY else ""
            rows.append([name, loop, rate.format(",.0f"), cpu.format(",.1f"), f"{util:.0%}{flag}"])
    return markdown_table(["", "loop", "msgs/s", cpu_label, util_label], rows)


def target_ratio(
    row: Row, ours: tuple[Summary, Summary, float], peer: tuple[Summary, Summary, float]
) -> tuple[float, str]:
    """How many times better than the peer, and on what basis.

    Server CPU per message on latency-bound rows, and wherever the load
    generator was near saturation for either side (its rate then measures
    the load generator, not the server); otherwise the rate.
    """
    if row.latency_bound or max(ours[2], peer[2]) > CLIENT_BUSY:
        return peer[1].median / ours[1].median, "CPU/msg"
    return ours[0].median / peer[0].median, "rate"


TARGETS: list[tuple[str, str, float, dict[str, float], tuple[str, ...]]] = [
    # (ours, peer, minimum ratio, other minimums on some rows, only these rows (all if empty))
    ("rapidws callback", "picows", 1.0, {"pipelined-64": 2.0}, ()),
    ("rapidws frames", "picows", 1.0, {}, ("pipelined-64", "rtt-1m")),
    ("rapidws async", "picows.websockets", 1.0, {}, ()),
    ("rapidws async", "websockets", 2.0, {}, ()),
    ("rapidws pure", "websockets", 1.0, {}, ()),
    # The halves (a receiving task, a sending task, a queue) against the one-task echo.
    ("rapidws split", "rapidws async", 0.9, {}, ("pipelined-64",)),
    # Byte streams (reader.read into writer.write) against the message API.
    (
        "rapidws stream",
        "rapidws async",
        0.9,
        {},
        ("rtt-64k", "rtt-1m", "pipelined-64k", "pipelined-1m"),
    ),
]


def targets_table(
    rows: Sequence[Row],
    stats: dict[Key, tuple[Summary, Summary, float]],
    loops: Sequence[str],
) -> tuple[str, int]:
    lines = []
    misses = 0
    for ours, peer, minimum, per_row, only in TARGETS:
        for row in rows:
            if only and row.name not in only:
                continue
            for loop in loops:
                a, b = stats.get((row.name, ours, loop)), stats.get((row.name, peer, loop))
                if a is None or b is None:
                    continue
                need = per_row.get(row.name, minimum)
                ratio, basis = target_ratio(row, a, b)
                ok = ratio >= need
                misses += not ok
                lines.append(
                    [
                        f"{ours} vs {peer}",
                        row.name,
                        loop,
                        basis,
                        f"{ratio:.2f}x",
                        f"≥{need:g}x",
                        "met" if ok else "**missed**",
                    ]
                )
    headers = ["comparison", "row", "loop", "basis", "ratio", "target", ""]
    return markdown_table(headers, lines), misses


def chart(
    path: str,
    rows: Sequence[Row],
    stats: dict[Key, tuple[Summary, Summary, float]],
    names: Sequence[str],
    loops: Sequence[str],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if any((r.name, n, lp) in stats for n in names for lp in loops)]
    cols = 2
    nrows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(13, 3.2 * nrows), squeeze=False)
    colors = {"asyncio": "#4C72B0", "uvloop": "#DD8452"}
    for ax, row in zip(axes.flat, shown, strict=False):
        present = [n for n in names if any((row.name, n, lp) in stats for lp in loops)]
        height = 0.8 / max(1, len(loops))
        for j, loop in enumerate(loops):
            ys, xs, lo, hi = [], [], [], []
            for i, name in enumerate(present):
                key = (row.name, name, loop)
                if key in stats:
                    rate = stats[key][0]
                    ys.append(i + j * height)
                    xs.append(rate.median)
                    lo.append(rate.median - rate.min)
                    hi.append(rate.max - rate.median)
            ax.barh(ys, xs, height=height, xerr=[lo, hi], color=colors.get(loop), label=loop)
        ax.set_yticks([i + height * (len(loops) - 1) / 2 for i in range(len(present))])
        ax.set_yticklabels(present, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(row.title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("rapidws benchmark suite: higher is better (median, bars min to max)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per window")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--memory-connections", type=int, default=10_000)
    parser.add_argument("--memory-rounds", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-clients", action="store_true")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--name", default="suite", help="results go to benchmarks/results/NAME.{md,json,png}"
    )
    parser.add_argument(
        "--report",
        metavar="JSON",
        help="measure nothing: print the report (and draw the chart) of a saved run",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round, 0.3 s windows, 1,000 connections"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.memory_connections = 1, 0.3, 1000
    args.servers = [s for s in args.servers.split(",") if s]
    args.loops = [s for s in args.loops.split(",") if s]
    args.rows = [s for s in args.rows.split(",") if s]
    for value, known, flag in (
        (args.servers, SERVERS, "--servers"),
        (args.loops, ("asyncio", "uvloop"), "--loops"),
        (args.rows, ROWS, "--rows"),
    ):
        unknown = [v for v in value if v not in known]
        if unknown:
            parser.error(f"{flag}: unknown {unknown}; choose among {', '.join(known)}")
    return args


def transports_note() -> str:
    try:
        import aiofastnet  # noqa: F401
    except ImportError:
        return "aiofastnet is not installed: every library runs on the event loop's transports."
    fastnet = os.environ.get("RAPIDWS_FASTNET", "")
    ours = (
        "rapidws too (RAPIDWS_FASTNET is set)"
        if fastnet in ("1", "auto")
        else "rapidws, websockets and aiohttp on the loop's own (rapidws's default)"
    )
    return (
        "aiofastnet is installed: picows runs on its compiled transports with either loop "
        f"(its default when installed); {ours}."
    )


def run_servers(args: argparse.Namespace, samples: dict[Key, list[Sample]]) -> None:
    rows = [ROWS[r] for r in args.rows]
    names = [(n, lp) for n in args.servers for lp in args.loops]
    for round_, (name, loop) in interleaved(args.rounds, names):
        spec = SERVERS[name]
        progress(f"round {round_ + 1}/{args.rounds}: {name} on {loop}")
        with server_process(spec.lib, loop, spec.pure) as server:
            for row in rows:
                sample = run_loop_interruptible(
                    measure_row(server.port, server.pid, spec, row, args.duration), True
                )
                samples.setdefault((row.name, name, loop), []).append(sample)


def run_memory(args: argparse.Namespace, memory: dict[tuple[str, str], list[float]]) -> None:
    names = [(n, lp) for n in args.servers for lp in args.loops]
    for round_, (name, loop) in interleaved(args.memory_rounds, names):
        spec = SERVERS[name]
        progress(f"memory {round_ + 1}/{args.memory_rounds}: {name} on {loop}")
        with server_process(spec.lib, loop, spec.pure) as server:
            kib = run_loop_interruptible(
                measure_memory(server.port, server.pid, spec, args.memory_connections), True
            )
        memory.setdefault((name, loop), []).append(kib)


def run_clients(args: argparse.Namespace, samples: dict[Key, list[Sample]]) -> None:
    names = [(n, lp) for n in CLIENT_LIBS if n in args.servers for lp in args.loops]
    with server_process("picows", "uvloop", False) as server:
        for round_, (name, loop) in interleaved(args.rounds, names):
            lib, pure = CLIENT_LIBS[name]
            progress(f"client {round_ + 1}/{args.rounds}: {name} on {loop}")
            for row in CLIENT_ROWS.values():
                sample = run_client(lib, pure, loop, server.port, row, args.duration)
                samples.setdefault((row.name, name, loop), []).append(sample)


def render(
    args: argparse.Namespace,
    samples: dict[Key, list[Sample]],
    memory: dict[tuple[str, str], list[float]],
    client_samples: dict[Key, list[Sample]],
) -> tuple[
    str,
    int,
    dict[Key, tuple[Summary, Summary, float]],
    dict[Key, tuple[Summary, Summary, float]],
    list[str],
]:
    """The markdown report; also the misses and what the chart needs."""
    rows = [ROWS[r] for r in args.rows]
    stats = summaries(samples)
    out: list[str] = []
    out.append(
        f"Servers pinned to core {SERVER_CORE}, load generator to core {CLIENT_CORE}; "
        f"{args.rounds} interleaved round(s) of {args.duration:g} s windows; "
        "median (min to max)."
    )
    out.append(transports_note())
    for row in rows:
        out.append(f"\n### {row.title}\n")
        out.append(row_table(row, stats, args.servers, args.loops))
    if memory:
        out.append(f"\n### memory per idle connection, {args.memory_connections:,} connections\n")
        mem_rows = []
        for name in args.servers:
            for loop in args.loops:
                if (name, loop) in memory:
                    mem_rows.append([name, loop, Summary.of(memory[name, loop]).format(",.1f")])
        out.append(markdown_table(["", "loop", "KiB per connection"], mem_rows))
    client_stats = summaries(client_samples)
    client_names = [n for n in CLIENT_LIBS if any(k[1] == n for k in client_stats)]
    for row in CLIENT_ROWS.values():
        if any(k[0] == row.name for k in client_stats):
            out.append(f"\n### {row.title} (server: picows on uvloop)\n")
            out.append(
                row_table(
                    row, client_stats, client_names, args.loops, "client CPU µs/msg", "client CPU"
                )
            )
    table, misses = targets_table(rows, stats, args.loops)
    out.append("\n### targets\n")
    out.append(table)
    peers = [
        (Summary.of(v).median, n, lp)
        for (n, lp), v in memory.items()
        if not n.startswith("rapidws") and n != "raw TCP echo"
    ]
    if peers:
        leanest = min(peers)
        for (name, loop), values in memory.items():
            if name.startswith("rapidws"):
                med = Summary.of(values).median
                verdict = "met" if med <= leanest[0] else "**missed**"
                out.append(
                    f"\nmemory: {name} on {loop}: {med:.1f} KiB vs leanest peer "
                    f"{leanest[1]} on {leanest[2]}: {leanest[0]:.1f} KiB: {verdict}"
                )
    busy = [k for k, v in stats.items() if v[2] > CLIENT_BUSY]
    out.append(
        "\nload generator CPU above 90 % in: "
        + (", ".join("/".join(k) for k in busy) or "no window")
    )
    out.insert(2, summary_tables(rows, stats, args.servers, args.loops))
    return "\n".join(out), misses, stats, client_stats, client_names


def summary_tables(
    rows: Sequence[Row],
    stats: dict[Key, tuple[Summary, Summary, float]],
    names: Sequence[str],
    loops: Sequence[str],
) -> str:
    """Rows by servers: medians of msgs/s, then of server CPU µs per message."""
    out = []
    for loop in loops:
        for metric, label, spec in ((0, "msgs/s", ",.0f"), (1, "server CPU µs/msg", ",.1f")):
            present = [n for n in names if any((r.name, n, loop) in stats for r in rows)]
            table_rows = [
                [r.name]
                + [
                    format(stats[r.name, n, loop][metric].median, spec)
                    if (r.name, n, loop) in stats
                    else ""
                    for n in present
                ]
                for r in rows
            ]
            out.append(f"\n### summary, {label}, {loop}\n")
            out.append(markdown_table(["row", *present], table_rows))
    return "\n".join(out)


def _keyed(data: dict[str, list[dict[str, float]]]) -> dict[Key, list[Sample]]:
    out: dict[Key, list[Sample]] = {}
    for key, values in data.items():
        row, server, loop = key.split("/")
        out[row, server, loop] = [Sample(**v) for v in values]
    return out


def report_saved(args: argparse.Namespace) -> None:
    """Render a saved run (``--report``): tables to stdout, the chart unless ``--no-chart``."""
    with open(args.report) as f:
        saved = json.load(f)
    for field in ("rounds", "duration", "servers", "loops", "rows", "memory_connections"):
        setattr(args, field, saved["args"][field])
    memory: dict[tuple[str, str], list[float]] = {}
    for key, values in saved["memory_kib_per_connection"].items():
        server, loop = key.split("/")
        memory[server, loop] = values
    samples, client_samples = _keyed(saved["samples"]), _keyed(saved["clients"])
    text, _, stats, client_stats, client_names = render(args, samples, memory, client_samples)
    print(text)
    if not args.no_chart:
        path = os.path.join(RESULTS_DIR, f"{args.name}.png")
        chart(
            path,
            [*[ROWS[r] for r in args.rows], *CLIENT_ROWS.values()],
            {**stats, **client_stats},
            [*args.servers, *[n for n in client_names if n not in args.servers]],
            args.loops,
        )
        progress(f"chart: {path}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        report_saved(args)
        return
    exit_on_sigterm()
    raise_nofile_limit()
    pin_current_process(CLIENT_CORE)
    stale = stale_extensions(os.path.join(REPO_ROOT, "rapidws"))
    if stale:
        progress(f"WARNING: compiled modules older than their sources: {stale}")
    digest = tree_digest(os.path.join(REPO_ROOT, "rapidws"))
    started = time.time()

    samples: dict[Key, list[Sample]] = {}
    memory: dict[tuple[str, str], list[float]] = {}
    client_samples: dict[Key, list[Sample]] = {}
    run_servers(args, samples)
    if not args.no_memory:
        run_memory(args, memory)
    if not args.no_clients:
        run_clients(args, client_samples)

    text, misses, stats, client_stats, client_names = render(args, samples, memory, client_samples)
    rows = [ROWS[r] for r in args.rows]
    print(text)

    if tree_digest(os.path.join(REPO_ROOT, "rapidws")) != digest:
        progress("WARNING: rapidws changed during the run")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, f"{args.name}.md"), "w") as f:
        f.write(text + "\n")
    if not args.no_chart:
        path = os.path.join(RESULTS_DIR, f"{args.name}.png")
        chart(
            path,
            [*rows, *CLIENT_ROWS.values()],
            {**stats, **client_stats},
            [*args.servers, *[n for n in client_names if n not in args.servers]],
            args.loops,
        )
        progress(f"chart: {path}")
    path = write_json(
        args.name,
        {
            "environment": environment(["websockets", "picows", "aiohttp", "uvloop", "Cython"]),
            "args": {k: v for k, v in vars(args).items()},
            "seconds": time.time() - started,
            "samples": {
                "/".join(k): [dataclasses.asdict(s) for s in v] for k, v in samples.items()
            },
            "clients": {
                "/".join(k): [dataclasses.asdict(s) for s in v] for k, v in client_samples.items()
            },
            "memory_kib_per_connection": {"/".join(k): v for k, v in memory.items()},
            "targets_missed": misses,
        },
    )
    progress(f"results: {path} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()

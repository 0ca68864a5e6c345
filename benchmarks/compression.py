"""permessage-deflate benchmark: rapidws's server against websockets' and picows'.

    python benchmarks/compression.py [--rounds 5] [--duration 2.0] [--connections 1000]
        [--quick] [--uvloop] [--libs rapidws,websockets] [--same-message]
        [--wait-quiet SECONDS] [--retries 3] [--profile] [--no-json]

Each server (``benchmarks/echo_servers.py``, each library with its own default
permessage-deflate settings) runs in a fresh subprocess pinned to core 0; the
load generator is this process, pinned to core 1, and always the rapidws
client with ``compression="deflate"`` (the run aborts unless every server
negotiates permessage-deflate).  Measured, in interleaved rounds:

1. echo round trips per second over one connection, 4 KiB JSON text;
2. the same with 1 MiB of log-like text;
3. server RSS per connection with ``--connections`` idle connections, right
   after the handshake, after each connection echoed one 4 KiB message, and
   after it echoed 16 (64 KiB, more than any deflate window: zlib's buffers
   become resident only as data goes through them).

The messages are deterministic (seeded) and distinct: 64 different 4 KiB
JSON documents and 2 different 1 MiB logs, sent in turn (``--same-message``
repeats one, which lets a 32 KiB deflate window shrink every copy to a
back-reference).

For 1 and 2 the server's CPU time (utime + stime from /proc) per message and
the client's CPU utilisation over the same window are reported too (a client
near 100 % of its core would make the rates meaningless), as is the CPU that
other processes (or the hypervisor, as steal time) used meanwhile: a run
during which they took more than a tenth (steal: a twentieth) of a core is
measured again (``--retries``), the least disturbed try counts, and it is
flagged if even that one was disturbed (``--wait-quiet`` waits for a quiet
machine before each run).  Tables go to
stdout, progress to stderr, everything to
``benchmarks/results/compression.json``.  ``--profile`` runs the servers
under cProfile instead and prints their hotspots.

rapidws runs from this working tree, in whichever build is there (compiled
hot path if built in place; ``RAPIDWS_NO_EXTENSIONS=1`` in the environment
selects the pure-Python one); the report says which, warns if a compiled
module is older than its source, and if the code changed during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import importlib
import json
import os
import pstats
import random
import string
import sys
import time
import zlib
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from _harness import (
    BENCH_DIR,
    REPO_ROOT,
    RESULTS_DIR,
    ServerProcess,
    Summary,
    bounded_gather,
    ensure_repo_on_path,
    environment,
    exit_on_sigterm,
    interleaved,
    markdown_table,
    pin_current_process,
    raise_nofile_limit,
    run_loop,
    stale_extensions,
    system_busy_seconds,
    system_steal_seconds,
    tree_digest,
    wait_for_quiet,
    write_json,
)

if TYPE_CHECKING:
    from rapidws import ClientConnection

LIBS = ("rapidws", "rapidws+zlib-ng", "websockets", "picows.websockets")
BASELINE = "rapidws"
SERVER_CORE = 0
CLIENT_CORE = 1
EXTENSION = "permessage-deflate"
MAX_SIZE = 2**24  # on both sides: the 1 MiB message must fit, compressed or not
SMALL_SIZE = 4096
LARGE_SIZE = 2**20
SETTLE = 0.5  # seconds to wait before reading RSS
OPEN_TIMEOUT = 10.0  # seconds for a connection's TCP connect and handshake
CONNECT_CONCURRENCY = 64  # under asyncio's default listen backlog of 100
CLIENT_BUSY = 0.9  # client CPU utilisation from which rates are suspect
OTHER_LOAD = 0.1  # cores' worth of foreign CPU use from which rates are suspect
STEAL = 0.05  # cores' worth of hypervisor steal from which rates are suspect
SMALL_VARIANTS = 64  # 64 x 4 KiB: more than any deflate window holds
LARGE_VARIANTS = 2
STEADY_MESSAGES = 16  # 64 KiB through each connection: more than any deflate window

T = TypeVar("T")


# -- messages ---------------------------------------------------------------------

_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen"]
_CITIES = ["Paris", "Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima", "Oslo", "Perth"]
_STATUS = ["active", "pending", "suspended", "trial", "closed"]
_TAGS = ["admin", "beta", "billing", "eu", "us", "mobile", "api", "legacy", "vip", "sso"]
_PATHS = ["/v1/users", "/v1/orders", "/v1/items", "/v2/search", "/v1/carts", "/healthz"]
_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Gecko/20100101 Firefox/125.0",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
]


def _record(rng: random.Random, index: int) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "id": 100_000 + index * 7 + rng.randrange(7),
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{rng.randrange(1000)}@example.com",
        "status": rng.choice(_STATUS),
        "score": round(rng.uniform(0, 100), 2),
        "balance": round(rng.lognormvariate(5, 1.5), 2),
        "tags": rng.sample(_TAGS, rng.randrange(4)),
        "city": rng.choice(_CITIES),
        "location": {
            "lat": round(rng.uniform(-60, 70), 5),
            "lon": round(rng.uniform(-180, 180), 5),
        },
        "created": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
        "verified": rng.random() < 0.7,
    }


def make_json_message(seed: int, size: int = SMALL_SIZE) -> str:
    """A JSON array of user records, exactly ``size`` ASCII characters."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    while len(json.dumps(records)) < size:
        records.append(_record(rng, len(records)))
    while records and len(json.dumps([*records, {"note": ""}])) > size:
        records.pop()
    padding = size - len(json.dumps([*records, {"note": ""}]))
    words = " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randrange(2, 9)))
        for _ in range(padding // 2 + 1)
    )
    message = json.dumps([*records, {"note": words[:padding]}])
    assert len(message) == size and len(message.encode()) == size
    return message


def make_text_message(seed: int, size: int = LARGE_SIZE) -> str:
    """Access-log lines (with a JSON context each), cut to ``size`` ASCII characters."""
    rng = random.Random(seed)
    lines: list[str] = []
    length = 0
    start = 1_714_550_400.0 + seed * 86_400  # 2024-05-01T08:00:00Z
    while length < size:
        start += rng.expovariate(50)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        status = rng.choices([200, 201, 204, 304, 400, 404, 500], [70, 5, 5, 8, 5, 5, 2])[0]
        context = json.dumps(
            {"user": rng.randrange(1, 50_000), "region": rng.choice(_CITIES).lower(), "retry": 0}
        )
        line = (
            f"{stamp}.{int(start * 1000) % 1000:03d}Z {'ERROR' if status >= 500 else 'INFO'} "
            f"api-{rng.randrange(1, 9)} req={rng.getrandbits(64):016x} "
            f"{rng.choice(_METHODS)} {rng.choice(_PATHS)}/{rng.randrange(1, 100_000)} "
            f"status={status} bytes={rng.randrange(0, 20_000)} "
            f"ms={rng.lognormvariate(2.5, 0.8):.1f} ua={json.dumps(rng.choice(_AGENTS))} "
            f"ctx={context}"
        )
        lines.append(line)
        length += len(line) + 1
    message = "\n".join(lines)[:size]
    assert len(message.encode()) == size
    return message


def make_messages(factory: Callable[[int], str], variants: int, same: bool) -> list[str]:
    """``variants`` messages from seeds 0, 1, ... (``same``: one message, repeated).

    Echoing one message over and over flatters large deflate windows: with
    context takeover and a 32 KiB window, each copy compresses to a
    back-reference to the previous one (tens of bytes), which real traffic
    never does.  Distinct messages from the same generator cycle through
    more than a window's worth of data instead.
    """
    if same:
        return [factory(0)] * variants
    return [factory(seed) for seed in range(variants)]


def deflated_size(message: str) -> int:
    """Compressed size with zlib's defaults (level 6, 32 KiB window), for reference."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return len(compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4


# -- client -----------------------------------------------------------------------


def run_bounded(coro: Coroutine[Any, Any, T], args: argparse.Namespace, timeout: float) -> T:
    """Run one measurement on a fresh event loop, cancelled after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return run_loop(bounded(), args.uvloop)


async def open_client(port: int) -> ClientConnection:
    """The load generator's connection: rapidws's client, deflate required."""
    ensure_repo_on_path()
    import rapidws

    try:
        ws = await rapidws.connect(
            f"ws://127.0.0.1:{port}/",
            compression="deflate",
            max_size=MAX_SIZE,
            ping_interval=None,
            close_timeout=5,
            open_timeout=OPEN_TIMEOUT,
        )
    except (OSError, asyncio.TimeoutError, rapidws.InvalidHandshake) as exc:
        raise SystemExit(
            f"abort: no WebSocket connection to the server on port {port}: {exc!r} "
            "(see any error logged above)"
        ) from exc
    if not any(extension.name == EXTENSION for extension in ws.extensions):
        await ws.close()
        raise SystemExit(f"abort: the server on port {port} did not negotiate {EXTENSION}")
    return ws


def rapidws_version() -> str:
    ensure_repo_on_path()
    import rapidws

    return rapidws.__version__


def rapidws_build() -> str:
    """Which build of rapidws's hot path runs here (and so in the servers, same env)."""
    ensure_repo_on_path()
    try:
        accel = importlib.import_module("rapidws._accel")
    except ImportError:
        return "pure Python"
    modules: dict[str, bool] = accel.compiled_modules()
    compiled = sorted(name for name, is_compiled in modules.items() if is_compiled)
    if not compiled:
        return "pure Python" + (" (RAPIDWS_NO_EXTENSIONS)" if accel.NO_EXTENSIONS else "")
    return "compiled: " + ", ".join(compiled)


def negotiated_header(ws: ClientConnection) -> str:
    response = ws.response
    header = response.headers.get("Sec-WebSocket-Extensions") if response is not None else None
    return header or "?"


@dataclasses.dataclass
class EchoSample:
    messages: int
    seconds: float
    server_cpu: float
    client_cpu: float
    #: CPU time (seconds) the rest of the machine used over the window.
    other_cpu: float
    #: CPU time (seconds) the hypervisor took from this VM over the window.
    steal_cpu: float
    #: Which try this was: earlier ones (or later ones, more disturbed) were discarded.
    attempt: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def server_us_per_message(self) -> float:
        return self.server_cpu / self.messages * 1e6

    @property
    def client_utilisation(self) -> float:
        return self.client_cpu / self.seconds

    @property
    def other_load(self) -> float:
        """Cores' worth of CPU used by other processes during the window."""
        return self.other_cpu / self.seconds

    @property
    def steal(self) -> float:
        """Cores' worth of CPU stolen by the hypervisor during the window."""
        return self.steal_cpu / self.seconds

    @property
    def disturbed(self) -> bool:
        return self.other_load >= OTHER_LOAD or self.steal >= STEAL


async def echo_run(
    server: ServerProcess,
    messages: Sequence[str],
    *,
    duration: float,
    warmup: int,
    max_messages: int,
) -> tuple[EchoSample, str]:
    """Ping-pong ``messages`` in turn for ``duration`` seconds (at most ``max_messages``)."""
    ws = await open_client(server.port)
    variants = len(messages)
    try:
        for i in range(warmup):
            message = messages[i % variants]
            await ws.send(message)
            if await ws.recv() != message:
                raise RuntimeError("echo mismatch during warm-up")
        count = 0
        server_cpu0 = server.cpu_seconds()
        client_cpu0 = time.process_time()
        busy0 = system_busy_seconds()
        steal0 = system_steal_seconds()
        start = time.perf_counter()
        deadline = start + duration
        now = start
        while now < deadline and count < max_messages:
            message = messages[count % variants]
            await ws.send(message)
            if await ws.recv() != message:
                raise RuntimeError(f"echo mismatch after {count} messages")
            count += 1
            now = time.perf_counter()
        server_cpu = server.cpu_seconds() - server_cpu0
        client_cpu = time.process_time() - client_cpu0
        other_cpu = system_busy_seconds() - busy0 - server_cpu - client_cpu
        steal_cpu = system_steal_seconds() - steal0
        sample = EchoSample(
            count, now - start, server_cpu, client_cpu, max(other_cpu, 0.0), steal_cpu
        )
        return sample, negotiated_header(ws)
    finally:
        await ws.close()


@dataclasses.dataclass
class MemorySample:
    connections: int
    baseline_kib: int
    idle_kib: int  # after the handshakes
    active_kib: int  # after one message per connection
    steady_kib: int  # after STEADY_MESSAGES messages per connection

    def _per_connection(self, kib: int) -> float:
        return (kib - self.baseline_kib) / self.connections

    @property
    def idle_per_connection(self) -> float:
        return self._per_connection(self.idle_kib)

    @property
    def active_per_connection(self) -> float:
        return self._per_connection(self.active_kib)

    @property
    def steady_per_connection(self) -> float:
        return self._per_connection(self.steady_kib)


async def memory_run(
    server: ServerProcess, messages: Sequence[str], connections: int
) -> MemorySample:
    """Server RSS growth for ``connections`` idle connections.

    Measured right after the handshakes, after each connection echoed one
    message, and after it echoed ``STEADY_MESSAGES`` in all: zlib touches
    its buffers, hence makes them resident, only as data goes through them.
    """
    warm = await open_client(server.port)  # loads the code paths, allocates nothing lasting
    await warm.send(messages[0])
    if await warm.recv() != messages[0]:
        raise RuntimeError("echo mismatch during warm-up")
    await warm.close()
    await asyncio.sleep(SETTLE)
    baseline = server.rss_kib()

    async def connect(_: int) -> ClientConnection:
        return await open_client(server.port)

    clients = await bounded_gather(connections, connect, CONNECT_CONCURRENCY)
    try:
        await asyncio.sleep(SETTLE)
        idle = server.rss_kib()

        async def exchange(step: int, i: int) -> None:
            # Each connection goes through the messages in its own order.
            message = messages[(i + step * 7) % len(messages)]
            await clients[i].send(message)
            if await clients[i].recv() != message:
                raise RuntimeError("echo mismatch")

        await bounded_gather(connections, functools.partial(exchange, 0), CONNECT_CONCURRENCY)
        await asyncio.sleep(SETTLE)
        active = server.rss_kib()
        for step in range(1, STEADY_MESSAGES):
            await bounded_gather(
                connections, functools.partial(exchange, step), CONNECT_CONCURRENCY
            )
        await asyncio.sleep(SETTLE)
        steady = server.rss_kib()
    finally:

        async def close(i: int) -> None:
            await clients[i].close()

        await bounded_gather(len(clients), close, CONNECT_CONCURRENCY)
    return MemorySample(connections, baseline, idle, active, steady)


# -- orchestration ----------------------------------------------------------------


def server_command(lib: str, args: argparse.Namespace, profile: str | None = None) -> list[str]:
    command = [sys.executable, os.path.join(BENCH_DIR, "echo_servers.py"), "--lib", lib]
    command += ["--port", "0", "--compression", "deflate", "--max-size", str(MAX_SIZE)]
    if args.uvloop:
        command.append("--uvloop")
    if profile is not None:
        command += ["--profile", profile]
    return command


def profile_path(args: argparse.Namespace, lib: str, row: str) -> str | None:
    """Where the server of ``lib`` dumps its cProfile stats for ``row`` (if profiling)."""
    if not args.profile:
        return None
    os.makedirs(RESULTS_DIR, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in f"{lib}-{row}").lower()
    return os.path.join(RESULTS_DIR, f"compression-{slug}.prof")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclasses.dataclass
class EchoRow:
    title: str
    message_bytes: int
    samples: dict[str, list[EchoSample]]
    #: Runs measured more than once because something else took CPU.
    retried: int = 0


def run_echo_row(
    title: str,
    messages: Sequence[str],
    args: argparse.Namespace,
    *,
    warmup: int,
    max_messages: int,
    negotiated: dict[str, str],
) -> EchoRow:
    samples: dict[str, list[EchoSample]] = {lib: [] for lib in args.libs}
    retried = 0
    for round_, lib in interleaved(args.rounds, args.libs):
        attempts: list[EchoSample] = []
        for attempt in range(1 + args.retries):
            if args.wait_quiet > 0:
                wait_for_quiet(args.wait_quiet, OTHER_LOAD, sample=0.5)
            command = server_command(lib, args, profile_path(args, lib, title))
            with ServerProcess(command, core=SERVER_CORE) as server:
                run = echo_run(
                    server,
                    messages,
                    duration=args.duration,
                    warmup=warmup,
                    max_messages=max_messages,
                )
                sample, header = run_bounded(run, args, args.duration + 120)
            sample.attempt = attempt
            attempts.append(sample)
            progress(
                f"  {title} round {round_ + 1}/{args.rounds} {lib}: {sample.rate:,.1f} msgs/s, "
                f"server {sample.server_us_per_message:,.1f} µs/msg, client CPU "
                f"{sample.client_utilisation:.0%}, other load {sample.other_load:.2f} cores, "
                f"steal {sample.steal:.2f} cores"
            )
            if not sample.disturbed:
                break
            if attempt < args.retries:
                progress("  (other processes or the hypervisor took CPU: measuring again)")
        # Keep the least disturbed attempt.
        sample = min(attempts, key=lambda s: s.other_load + s.steal)
        retried += len(attempts) > 1
        negotiated.setdefault(lib, header)
        samples[lib].append(sample)
    return EchoRow(title, len(messages[0].encode()), samples, retried)


def run_memory_row(
    messages: Sequence[str], args: argparse.Namespace
) -> dict[str, list[MemorySample]]:
    samples: dict[str, list[MemorySample]] = {lib: [] for lib in args.libs}
    for round_, lib in interleaved(args.rounds, args.libs):
        with ServerProcess(server_command(lib, args), core=SERVER_CORE) as server:
            sample = run_bounded(memory_run(server, messages, args.connections), args, 300)
        samples[lib].append(sample)
        progress(
            f"  memory round {round_ + 1}/{args.rounds} {lib}: "
            f"idle {sample.idle_per_connection:.1f} KiB/conn, "
            f"after a message {sample.active_per_connection:.1f} KiB/conn, "
            f"after {STEADY_MESSAGES} {sample.steady_per_connection:.1f} KiB/conn"
        )
    return samples


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "?"


def echo_table(row: EchoRow) -> str:
    base = Summary.of([s.rate for s in row.samples[BASELINE]]) if BASELINE in row.samples else None
    lines = []
    for lib, samples in row.samples.items():
        rate = Summary.of([s.rate for s in samples])
        cpu = Summary.of([s.server_us_per_message for s in samples])
        client = Summary.of([s.client_utilisation * 100 for s in samples])
        lines.append(
            [
                lib,
                rate.format(",.0f" if rate.median >= 100 else ",.1f"),
                _ratio(rate.median, base.median) if base else "",
                cpu.format(",.1f" if cpu.median < 1000 else ",.0f"),
                client.format(".0f"),
            ]
        )
    headers = [
        "server",
        "round trips/s",
        f"vs {BASELINE}",
        "server CPU µs/msg",
        "client CPU % of a core",
    ]
    return markdown_table(headers, lines)


def memory_table(samples: dict[str, list[MemorySample]]) -> str:
    lines = []
    for lib, runs in samples.items():
        idle = Summary.of([s.idle_per_connection for s in runs])
        active = Summary.of([s.active_per_connection for s in runs])
        steady = Summary.of([s.steady_per_connection for s in runs])
        baseline = Summary.of([s.baseline_kib / 1024 for s in runs])
        lines.append([lib, *(x.format(".1f") for x in (idle, active, steady, baseline))])
    headers = [
        "server",
        "KiB/conn, idle after handshake",
        "KiB/conn, after one 4 KiB message",
        f"KiB/conn, after {STEADY_MESSAGES} messages",
        "RSS before, MiB",
    ]
    return markdown_table(headers, lines)


def comparisons(rows: Sequence[EchoRow], memory: dict[str, list[MemorySample]]) -> list[str]:
    """Where rapidws loses to a peer, by how much (medians)."""
    notes = []
    for row in rows:
        if BASELINE not in row.samples:
            continue
        ours = row.samples[BASELINE]
        rate = Summary.of([s.rate for s in ours]).median
        cpu = Summary.of([s.server_us_per_message for s in ours]).median
        for lib, samples in row.samples.items():
            if lib == BASELINE:
                continue
            peer_rate = Summary.of([s.rate for s in samples]).median
            peer_cpu = Summary.of([s.server_us_per_message for s in samples]).median
            if peer_rate > rate:
                notes.append(
                    f"{row.title}: {BASELINE} does {rate / peer_rate - 1:+.1%} round trips/s "
                    f"vs {lib} ({rate:,.1f} vs {peer_rate:,.1f})"
                )
            if peer_cpu < cpu:
                notes.append(
                    f"{row.title}: {BASELINE}'s server spends {cpu / peer_cpu - 1:+.1%} CPU per "
                    f"message vs {lib} ({cpu:,.1f} vs {peer_cpu:,.1f} µs)"
                )
    if BASELINE in memory:
        columns = (
            ("idle", "idle_per_connection"),
            ("after one message", "active_per_connection"),
            (f"after {STEADY_MESSAGES} messages", "steady_per_connection"),
        )
        for column, attr in columns:
            ours_kib = Summary.of([getattr(s, attr) for s in memory[BASELINE]]).median
            for lib, runs in memory.items():
                peer_kib = Summary.of([getattr(s, attr) for s in runs]).median
                if lib != BASELINE and peer_kib < ours_kib:
                    notes.append(
                        f"memory ({column}): {BASELINE} uses {ours_kib:.1f} KiB/conn "
                        f"vs {lib} {peer_kib:.1f}"
                    )
    return notes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds per throughput run (default 2.0)"
    )
    parser.add_argument(
        "--connections", type=int, default=1000, help="idle connections (default 1000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 2 rounds, 0.5 s, 200 connections"
    )
    parser.add_argument("--uvloop", action="store_true", help="servers and client on uvloop")
    parser.add_argument(
        "--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}"
    )
    parser.add_argument(
        "--same-message",
        action="store_true",
        help="echo one message over and over instead of cycling through distinct ones",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the servers under cProfile (1 round, no memory row, no JSON); "
        "print their hotspots and keep the stats in benchmarks/results/",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="before each throughput run, wait up to SECONDS for other processes to leave "
        "the CPUs idle (default 30; 0: don't check)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="measure a throughput run again, up to this many times, when other processes "
        "or the hypervisor took CPU meanwhile; the least disturbed try counts (default 3)",
    )
    parser.add_argument("--no-json", action="store_true", help="don't write results/*.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.connections = 2, 0.5, 200
    if args.profile:
        args.rounds, args.no_json = 1, True
    args.libs = [lib for lib in args.libs.split(",") if lib]
    unknown = set(args.libs) - set(LIBS)
    if unknown or not args.libs:
        parser.error(f"--libs: choose among {', '.join(LIBS)}")
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.retries < 0:
        parser.error("--rounds, --duration and --connections must be positive")
    return args


def print_profiles(args: argparse.Namespace, rows: Sequence[EchoRow], top: int = 20) -> None:
    for row in rows:
        for lib in args.libs:
            path = profile_path(args, lib, row.title)
            assert path is not None
            print(f"\n## cProfile of the {lib} server, {row.title} (top {top} by own time)\n")
            print(f"`{path}`\n\n```")
            stats = pstats.Stats(path, stream=sys.stdout)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)
            print("```")


def report(
    args: argparse.Namespace,
    rows: Sequence[EchoRow],
    memory: dict[str, list[MemorySample]],
    negotiated: dict[str, str],
    sizes: dict[str, tuple[int, int]],
    versions: str,
    warnings: Sequence[str],
) -> list[str]:
    """Print the markdown report; return the notes."""
    loop_name = "uvloop" if args.uvloop else "asyncio"
    variants = "one message repeated" if args.same_message else "distinct messages in turn"
    out = [
        "# permessage-deflate: echo servers compared",
        "",
        versions,
        f"Servers on core {SERVER_CORE}, one at a time, each in a fresh process; load from the "
        f"rapidws client on core {CLIENT_CORE}; {loop_name} loop on both sides; "
        f"{args.rounds} interleaved rounds; median (min to max).",
        "Messages ("
        + variants
        + "): "
        + ", ".join(
            f"{name} = {raw:,} B (zlib level 6, 32 KiB window: {packed:,} B)"
            for name, (raw, packed) in sizes.items()
        )
        + ".",
        "",
        "Negotiated (server response):",
        "",
        *(f"- {lib}: `{negotiated.get(lib, '?')}`" for lib in args.libs),
    ]
    for row in rows:
        out += [
            "",
            f"## Echo round trips, one connection, {row.title} ({args.duration:g} s per run)",
            "",
            echo_table(row),
        ]
    if memory:
        out += [
            "",
            f"## Server memory per connection, {args.connections} connections (VmRSS delta)",
            "",
            memory_table(memory),
        ]
    notes = list(warnings)
    for row in rows:
        if row.retried:
            runs = args.rounds * len(args.libs)
            notes.append(
                f"{row.title}: {row.retried} of {runs} runs were measured again because other "
                "processes or the hypervisor took CPU."
            )
        for lib, samples in row.samples.items():
            busiest = max(s.client_utilisation for s in samples)
            if busiest >= CLIENT_BUSY:
                notes.append(
                    f"{row.title}, {lib}: the client used up to {busiest:.0%} of its core: "
                    "the load generator may be the bottleneck."
                )
            other = max(s.other_load for s in samples)
            if other >= OTHER_LOAD:
                notes.append(
                    f"{row.title}, {lib}: other processes used up to {other:.2f} cores during "
                    "a run: the machine was not quiet, rates are suspect."
                )
            steal = max(s.steal for s in samples)
            if steal >= STEAL:
                notes.append(
                    f"{row.title}, {lib}: the hypervisor stole up to {steal:.2f} cores during "
                    "a run: rates are suspect."
                )
    notes += comparisons(rows, memory)
    out += ["", "## Notes", ""]
    out += [f"- {note}" for note in notes] or ["- nothing to flag"]
    print("\n".join(out))
    return notes


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    wall_start = time.monotonic()
    exit_on_sigterm()
    pin_current_process(CLIENT_CORE)
    nofile = raise_nofile_limit()
    if args.connections + 64 > nofile:
        raise SystemExit(f"--connections {args.connections} needs more open files than {nofile}")

    rapidws_dir = os.path.join(REPO_ROOT, "rapidws")
    digest = tree_digest(rapidws_dir)
    env = environment(["websockets", "picows", "uvloop"])
    env["rapidws"] = f"{rapidws_version()} at {env['git']} ({rapidws_build()})"
    versions = ", ".join(
        [f"rapidws {env['rapidws']}"]
        + [f"{name} {version}" for name, version in env["packages"].items()]
        + [f"Python {env['python']}", env["cpu"]]
    )
    warnings = [
        f"{source} is newer than its compiled module, which shadows it: the servers ran "
        "stale code (rebuild, or set RAPIDWS_NO_EXTENSIONS=1)"
        for source in stale_extensions(rapidws_dir)
    ]
    small = make_messages(make_json_message, SMALL_VARIANTS, args.same_message)
    large = make_messages(make_text_message, LARGE_VARIANTS, args.same_message)
    sizes = {
        "4 KiB JSON": (len(small[0]), deflated_size(small[0])),
        "1 MiB text": (len(large[0]), deflated_size(large[0])),
    }
    negotiated: dict[str, str] = {}
    progress(f"4 KiB JSON round trips ({args.rounds} rounds x {len(args.libs)} servers)")
    rows = [
        run_echo_row(
            "4 KiB JSON",
            small,
            args,
            warmup=200,
            max_messages=5_000_000,
            negotiated=negotiated,
        )
    ]
    progress("1 MiB text round trips")
    rows.append(
        run_echo_row(
            "1 MiB text", large, args, warmup=3, max_messages=100_000, negotiated=negotiated
        )
    )
    memory: dict[str, list[MemorySample]] = {}
    if not args.profile:
        progress(f"memory with {args.connections} connections")
        memory = run_memory_row(small, args)
    wall = time.monotonic() - wall_start
    if tree_digest(rapidws_dir) != digest:
        warnings.append("rapidws's code changed during the run: the results mix versions")

    notes = report(args, rows, memory, negotiated, sizes, versions, warnings)
    if args.profile:
        print_profiles(args, rows)
    print(f"\nWall time: {wall:.0f} s.")

    if not args.no_json:
        path = write_json(
            "compression",
            {
                "benchmark": "compression",
                "settings": {
                    "rounds": args.rounds,
                    "duration": args.duration,
                    "connections": args.connections,
                    "loop": "uvloop" if args.uvloop else "asyncio",
                    "same_message": args.same_message,
                    "variants": {"4 KiB JSON": len(small), "1 MiB text": len(large)},
                    "server_core": SERVER_CORE,
                    "client_core": CLIENT_CORE,
                    "max_size": MAX_SIZE,
                },
                "environment": env,
                "messages": {
                    name: {"bytes": raw, "zlib_bytes": packed}
                    for name, (raw, packed) in sizes.items()
                },
                "negotiated": negotiated,
                "retried": {row.title: row.retried for row in rows},
                "echo": {
                    row.title: {
                        lib: [
                            {
                                **dataclasses.asdict(s),
                                "rate": s.rate,
                                "server_us_per_message": s.server_us_per_message,
                                "client_utilisation": s.client_utilisation,
                                "other_load": s.other_load,
                                "steal": s.steal,
                            }
                            for s in samples
                        ]
                        for lib, samples in row.samples.items()
                    }
                    for row in rows
                },
                "memory": {
                    lib: [
                        {
                            **dataclasses.asdict(s),
                            "idle_kib_per_connection": s.idle_per_connection,
                            "active_kib_per_connection": s.active_per_connection,
                            "steady_kib_per_connection": s.steady_per_connection,
                        }
                        for s in samples
                    ]
                    for lib, samples in memory.items()
                },
                "notes": notes,
                "wall_seconds": wall,
            },
        )
        progress(f"results written to {path}")


if __name__ == "__main__":
    main()

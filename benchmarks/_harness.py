"""Shared machinery for the benchmarks.

- :class:`ServerProcess`: start a server script in a subprocess pinned to a
  core (``taskset -c``), wait for its ``READY <port> <pid>`` line, stop it;
- :func:`pin_current_process`, :func:`raise_nofile_limit`;
- :func:`process_cpu_seconds` (utime + stime from ``/proc/PID/stat``) and
  :func:`process_rss_kib` (VmRSS from ``/proc/PID/status``);
- :func:`system_busy_seconds`, :func:`system_steal_seconds` and
  :func:`wait_for_quiet`, to tell whether something else used the CPUs;
- :func:`bounded_gather`: run coroutines with bounded concurrency;
- :func:`run_loop`: run a coroutine on a fresh asyncio or uvloop loop
  (:func:`run_loop_interruptible`: one that SIGTERM and SIGINT cancel);
- :func:`interleaved` rounds, :class:`Summary` (median, min, max) and
  :func:`markdown_table`.

Linux only (``/proc``, ``taskset``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def ensure_repo_on_path() -> None:
    """Make the working tree's ``rapidws`` importable without installing it."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)


def run_loop(coro: Coroutine[Any, Any, T], use_uvloop: bool = False) -> T:
    """Run ``coro`` to completion on a fresh event loop: asyncio's, or uvloop's."""
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_loop_interruptible(coro: Coroutine[Any, Any, T], use_uvloop: bool = False) -> T:
    """:func:`run_loop`, but SIGTERM and SIGINT cancel ``coro`` and raise SystemExit.

    A Python-level signal handler may not run while uvloop waits for I/O;
    the loop's own signal handling does, so ``with ServerProcess(...)``
    blocks still get to stop their servers.
    """
    stopped: list[int] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(coro)

        def stop(signum: int) -> None:
            stopped.append(signum)
            task.cancel()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await task
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    try:
        return run_loop(main(), use_uvloop)
    except asyncio.CancelledError:
        if stopped:
            raise SystemExit(128 + stopped[0]) from None
        raise


async def bounded_gather(
    count: int, factory: Callable[[int], Awaitable[T]], concurrency: int
) -> list[T]:
    """``factory(i)`` for ``i`` in ``range(count)``, at most ``concurrency`` at a time."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with semaphore:
            return await factory(i)

    return await asyncio.gather(*(one(i) for i in range(count)))


# -- processes -----------------------------------------------------------------


def pin_current_process(core: int) -> None:
    """Pin this process (and the threads and children it starts later) to ``core``."""
    os.sched_setaffinity(0, {core})


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit: ``with ServerProcess(...)`` blocks then stop their servers."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def raise_nofile_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces: split after its ")".
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15
    return (utime + stime) / _CLK_TCK


def process_rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _system_cpu_fields() -> list[int]:
    with open("/proc/stat") as f:
        fields = f.readline().split()
    assert fields[0] == "cpu"
    return [int(x) for x in fields[1:9]]


def system_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (user, nice, system, irq, softirq), in seconds.

    Over a window, this minus the benchmark's own processes' CPU time is the
    load that something else put on the machine.
    """
    user, nice, system, _idle, _iowait, irq, softirq, _steal = _system_cpu_fields()
    return (user + nice + system + irq + softirq) / _CLK_TCK


def system_steal_seconds() -> float:
    """CPU time the hypervisor gave to others while this VM wanted it, since boot."""
    return _system_cpu_fields()[7] / _CLK_TCK


def wait_for_quiet(
    max_wait: float, threshold: float = 0.1, sample: float = 2.0
) -> tuple[bool, float]:
    """Wait until the machine is busy for under ``threshold`` cores over ``sample`` s.

    Give up after ``max_wait`` seconds.  Return (quiet, last load in cores).
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy = system_busy_seconds()
        own = time.process_time()
        time.sleep(sample)
        load = (system_busy_seconds() - busy - (time.process_time() - own)) / sample
        if load < threshold:
            return True, load
        if time.monotonic() + sample > deadline:
            return False, load


class ServerProcess:
    """A server script in a subprocess, pinned to one core.

    The script must print ``READY <port> <pid>`` on stdout once listening and
    exit on SIGTERM.  Use as a context manager::

        with ServerProcess([sys.executable, "echo_servers.py", ...], core=0) as server:
            connect(f"ws://127.0.0.1:{server.port}/") ...
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        core: int | None = 0,
        ready_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.core = core
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.pid = 0

    def start(self) -> ServerProcess:
        command = self.command
        if self.core is not None:
            taskset = shutil.which("taskset")
            if taskset is None:
                raise RuntimeError("taskset is needed to pin the server (util-linux)")
            # taskset execs the command: the child's pid is the server's.
            command = [taskset, "-c", str(self.core), *command]
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
        try:
            line = self._read_ready_line()
            words = line.split()
            if len(words) != 3 or words[0] != "READY":
                raise RuntimeError(f"unexpected first line from the server: {line!r}")
            self.port, self.pid = int(words[1]), int(words[2])
            if self.pid != self.process.pid:
                raise RuntimeError("the server is not the direct child: CPU/RSS would be wrong")
        except BaseException:
            self.stop()
            raise
        return self

    def _read_ready_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + self.ready_timeout
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"server not ready after {self.ready_timeout} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = self.process.wait(self.stop_timeout)
                raise RuntimeError(f"server exited with code {code} before it was ready")
            data += chunk
        return data.split(b"\n", 1)[0].decode()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return process_rss_kib(self.pid)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; return the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.stop_timeout)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- statistics and output -------------------------------------------------------


def interleaved(rounds: int, names: Sequence[str]) -> Iterator[tuple[int, str]]:
    """``(round, name)`` for each round, each name: drift hits every name alike."""
    for round_ in range(rounds):
        for name in names:
            yield round_, name


@dataclasses.dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def format(self, spec: str = ",.0f", spread: bool = True) -> str:
        """``median (min to max)``, each value formatted with ``spec``."""
        text = format(self.median, spec)
        if spread and self.n > 1:
            text += f" ({format(self.min, spec)} to {format(self.max, spec)})"
        return text


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded to line up."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), separator, *(line(row) for row in rows)])


def package_version(name: str) -> str:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return "not installed"


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(packages: Sequence[str]) -> dict[str, Any]:
    """What a result depends on besides the code: for the JSON output."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "git": git_revision(),
        "packages": {name: package_version(name) for name in packages},
    }


def tree_digest(root: str, suffixes: Sequence[str] = (".py", ".pxd", ".pyx", ".so")) -> str:
    """A digest of the source (and compiled) files under ``root``.

    Compare it before and after a run to catch code that changed meanwhile:
    every server process imports the working tree afresh.
    """
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(tuple(suffixes)):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def stale_extensions(root: str) -> list[str]:
    """Compiled modules under ``root`` older than the ``.py``/``.pxd`` they were built from."""
    stale = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in files:
            if not name.endswith(".so"):
                continue
            module = name.split(".", 1)[0]
            built = os.path.getmtime(os.path.join(directory, name))
            for suffix in (".py", ".pxd", ".pyx"):
                source = os.path.join(directory, module + suffix)
                if os.path.exists(source) and os.path.getmtime(source) > built:
                    stale.append(os.path.relpath(source, root))
    return sorted(stale)


def write_json(name: str, data: Any) -> str:
    """Write ``benchmarks/results/<name>.json``; return its path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return path


def process_cpu_ns(pid: int) -> int:
    """CPU time of all a process's threads in nanoseconds, from ``schedstat``.

    Finer than :func:`process_cpu_seconds` (clock ticks of 10 ms): what a
    one-second window needs.  Falls back to ``/proc/PID/stat`` without schedstats.
    """
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError):
        return int(process_cpu_seconds(pid) * 1e9)
    return total

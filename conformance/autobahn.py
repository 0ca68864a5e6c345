"""Run the Autobahn|Testsuite (wstest) against rapidws and fail unless every case passes.

Usage: python conformance/autobahn.py --role server|client [--cases '1.*,2.*']
       [--exclude-cases '9.*'] [--testee-cmd CMD] [--agent NAME] [--port N]
       [--report-dir DIR] [--timeout SECONDS] [--wstest PATH]

role server: starts the testee server, then `wstest -m fuzzingclient` tests it.
role client: starts `wstest -m fuzzingserver`, then runs the testee client against it.

The testee command is split like a shell would (no shell runs it) and may use the
placeholders {python}, {port} and {agent}. wstest comes from conformance/.wstest/,
which conformance/setup_wstest.sh creates when it is missing.
Only the standard library is used; wstest itself runs on Python 2.7.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"

DEFAULT_TESTEE = {
    "server": "{python} -m rapidws echo --host 127.0.0.1 --port {port}",
    "client": "{python} conformance/client_testee.py --url ws://127.0.0.1:{port} --agent {agent}",
}
DEFAULT_CASES = "*"
DEFAULT_EXCLUDE_CASES = ""
ACCEPTED = frozenset({"OK", "INFORMATIONAL"})

PORT_WAIT = 30.0  # seconds for a server to start listening
REPORT_WAIT = 60.0  # seconds for the fuzzingserver to write index.json
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

# wstest binds to every interface; this runs it with its listening socket on loopback.
WSTEST_LOOPBACK_SHIM = """
import sys
import autobahntestsuite.fuzzing as fuzzing
listen_ws = fuzzing.listenWS
def listen_loopback(factory, contextFactory=None, backlog=50, interface=''):
    return listen_ws(factory, contextFactory, backlog, '127.0.0.1')
fuzzing.listenWS = listen_loopback
from autobahntestsuite.wstest import run
sys.argv[0] = 'wstest'
sys.exit(run())
"""


class HarnessError(Exception):
    """The run could not complete: a process did not start, crashed or timed out."""


@dataclass(frozen=True)
class Deadline:
    """A point in time that every wait of the run is bounded by."""

    end: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self, cap: float | None = None) -> float:
        left = max(0.0, self.end - time.monotonic())
        return left if cap is None else min(left, cap)


# --- command line -------------------------------------------------------------------


def split_patterns(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--role", choices=("server", "client"), required=True)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated case patterns")
    parser.add_argument(
        "--exclude-cases", default=DEFAULT_EXCLUDE_CASES, help="comma-separated case patterns"
    )
    parser.add_argument("--testee-cmd", help="command of the testee (see placeholders above)")
    parser.add_argument("--agent", default="rapidws", help="testee name in the reports")
    parser.add_argument("--port", type=int, default=0, help="WebSocket port (default: a free one)")
    parser.add_argument("--report-dir", type=Path, help="default: conformance/reports/<role>/")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS")
    parser.add_argument("--wstest", help="wstest executable (default: run setup_wstest.sh)")
    return parser.parse_args(argv)


# --- processes ----------------------------------------------------------------------


def find_wstest() -> str:
    """Return the wstest executable, installing it first if needed."""
    result = subprocess.run(
        ["bash", str(HERE / "setup_wstest.sh")], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():
        sys.exit("FAIL: conformance/setup_wstest.sh could not install wstest")
    return result.stdout.strip().splitlines()[-1]


def wstest_command(wstest: str) -> list[str]:
    """Run wstest through its own interpreter with the loopback shim, if it is a script."""
    with contextlib.suppress(OSError, UnicodeDecodeError), open(wstest) as f:
        first = f.readline()
        if first.startswith("#!"):
            return [*shlex.split(first[2:]), "-c", WSTEST_LOOPBACK_SHIM]
    return [wstest]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """Environment of the children: unbuffered output, the work tree importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start(name: str, cmd: list[str], log: IO[str], cwd: Path) -> subprocess.Popen[str]:
    shown = ["<loopback shim>" if arg == WSTEST_LOOPBACK_SHIM else arg for arg in cmd]
    print(f"starting {name}: {shlex.join(shown)}", flush=True)
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, whose id is its pid
    )


def signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a child started by start(): SIGTERM to its group, then SIGKILL."""
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(name: str, cmd: list[str], log: IO[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start(name, cmd, log, cwd)
    try:
        yield proc
    finally:
        stop(proc)


def wait_exit(name: str, proc: subprocess.Popen[str], deadline: Deadline) -> int:
    try:
        return proc.wait(deadline.remaining())
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{name} did not finish within --timeout") from None


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(name: str, proc: subprocess.Popen[str], port: int, deadline: Deadline) -> None:
    limit = Deadline.after(deadline.remaining(PORT_WAIT))
    while not port_open(port):
        if proc.poll() is not None:
            raise HarnessError(f"{name} exited with {proc.returncode} before listening")
        if limit.remaining() == 0:
            raise HarnessError(f"{name} is not listening on {HOST}:{port}")
        time.sleep(0.1)


# --- spec and report ----------------------------------------------------------------


def make_spec(args: argparse.Namespace, port: int, report_dir: Path) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "options": {},
        "outdir": str(report_dir),
        "cases": split_patterns(args.cases),
        "exclude-cases": split_patterns(args.exclude_cases),
        "exclude-agent-cases": {},
    }
    url = f"ws://{HOST}:{port}"
    if args.role == "server":
        spec["servers"] = [{"agent": args.agent, "url": url, "options": {}}]
    else:
        spec["url"] = url
    return spec


def write_spec(spec: dict[str, Any], report_dir: Path) -> Path:
    path = report_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def load_index(report_dir: Path) -> dict[str, dict[str, dict[str, Any]]] | None:
    try:
        data: dict[str, dict[str, dict[str, Any]]] = json.loads(
            (report_dir / "index.json").read_text()
        )
    except (OSError, ValueError):
        return None
    return data


def wait_for_index(proc: subprocess.Popen[str], report_dir: Path, deadline: Deadline) -> None:
    limit = Deadline.after(deadline.remaining(REPORT_WAIT))
    while load_index(report_dir) is None and proc.poll() is None and limit.remaining() > 0:
        time.sleep(0.2)


def planned_cases(wstest_log: Path) -> int | None:
    """The number of cases wstest said it would run, from its log."""
    try:
        text = wstest_log.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"will run (\d+) test cases", text)
    return int(match.group(1)) if match else None


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split(".") if part.isdigit())


def is_ok(result: dict[str, Any]) -> bool:
    return result.get("behavior") in ACCEPTED and result.get("behaviorClose") in ACCEPTED


def counts_table(cases: dict[str, dict[str, Any]]) -> str:
    behavior = Counter(str(r.get("behavior")) for r in cases.values())
    close = Counter(str(r.get("behaviorClose")) for r in cases.values())
    rows = ["| result | behavior | behaviorClose |", "| --- | ---: | ---: |"]
    for name in sorted(behavior.keys() | close.keys()):
        rows.append(f"| {name} | {behavior[name]} | {close[name]} |")
    rows.append(f"| **total** | {sum(behavior.values())} | {sum(close.values())} |")
    return "\n".join(rows)


def failure_lines(cases: dict[str, dict[str, Any]], report_dir: Path) -> list[str]:
    lines = []
    for case_id in sorted(cases, key=case_key):
        result = cases[case_id]
        if not is_ok(result):
            lines.append(
                f"- {case_id}: behavior={result.get('behavior')} "
                f"behaviorClose={result.get('behaviorClose')} "
                f"remoteCloseCode={result.get('remoteCloseCode')} "
                f"({report_dir / str(result.get('reportfile'))})"
            )
    return lines


def evaluate(report_dir: Path, agent: str, planned: int | None) -> bool:
    """Print the results of `agent` and tell whether every planned case passed."""
    index = load_index(report_dir)
    if not index:
        print(f"FAIL: no report in {report_dir / 'index.json'}")
        return False
    if agent not in index:
        print(f"FAIL: agent {agent!r} not in the report (agents: {', '.join(sorted(index))})")
        return False
    cases = index[agent]
    print(f"\n## Autobahn|Testsuite results for {agent}\n\n{counts_table(cases)}\n")
    failures = failure_lines(cases, report_dir)
    if failures:
        print(f"{len(failures)} case(s) not OK:\n" + "\n".join(failures) + "\n")
    if not cases:
        print("FAIL: no case was run")
        return False
    if planned is not None and len(cases) < planned:
        print(f"FAIL: only {len(cases)} of {planned} planned cases were run")
        return False
    return not failures


# --- the two roles ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Everything one run of the harness needs."""

    role: str
    wstest: list[str]
    testee: list[str]
    port: int
    report_dir: Path
    deadline: Deadline

    def log(self, name: str) -> IO[str]:
        return open(self.report_dir / f"{name}.log", "w")


def test_server(run: Run, spec_path: Path) -> None:
    """Role server: the testee serves, wstest's fuzzingclient connects."""
    with (
        run.log("testee") as testee_log,
        run.log("wstest") as wstest_log,
        running("testee server", run.testee, testee_log, REPO) as testee,
    ):
        wait_for_port("testee server", testee, run.port, run.deadline)
        cmd = [*run.wstest, "-m", "fuzzingclient", "-s", str(spec_path)]
        with running("wstest fuzzingclient", cmd, wstest_log, run.report_dir) as wstest:
            code = wait_exit("wstest fuzzingclient", wstest, run.deadline)
        if code != 0:
            raise HarnessError(f"wstest fuzzingclient exited with {code}")
        if testee.poll() is not None:
            raise HarnessError(f"testee server exited early with {testee.returncode}")


def test_client(run: Run, spec_path: Path) -> None:
    """Role client: wstest's fuzzingserver serves, the testee client connects."""
    with run.log("wstest") as wstest_log, run.log("testee") as testee_log:
        cmd = [*run.wstest, "-m", "fuzzingserver", "-s", str(spec_path), "-u", "0"]
        with running("wstest fuzzingserver", cmd, wstest_log, run.report_dir) as wstest:
            wait_for_port("wstest fuzzingserver", wstest, run.port, run.deadline)
            with running("testee client", run.testee, testee_log, REPO) as testee:
                code = wait_exit("testee client", testee, run.deadline)
            if code != 0:
                raise HarnessError(f"testee client exited with {code}")
            wait_for_index(wstest, run.report_dir, run.deadline)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def show_logs(report_dir: Path) -> None:
    for name in ("testee", "wstest"):
        path = report_dir / f"{name}.log"
        if text := tail(path):
            print(f"\n--- last lines of {path} ---\n{text}")


def prepare(args: argparse.Namespace) -> Run:
    report_dir = (args.report_dir or HERE / "reports" / args.role).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "index.json").unlink(missing_ok=True)
    port = args.port or free_port()
    template = args.testee_cmd or DEFAULT_TESTEE[args.role]
    testee = template.format(python=shlex.quote(sys.executable), port=port, agent=args.agent)
    return Run(
        role=args.role,
        wstest=wstest_command(args.wstest or find_wstest()),
        testee=shlex.split(testee),
        port=port,
        report_dir=report_dir,
        deadline=Deadline.after(args.timeout),
    )


def exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the finally blocks that stop the children


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    started = time.monotonic()
    run = prepare(args)
    spec_path = write_spec(make_spec(args, run.port, run.report_dir), run.report_dir)
    ok = True
    try:
        (test_server if run.role == "server" else test_client)(run, spec_path)
    except HarnessError as exc:
        print(f"FAIL: {exc}")
        show_logs(run.report_dir)
        ok = False
    planned = planned_cases(run.report_dir / "wstest.log")
    ok = evaluate(run.report_dir, args.agent, planned) and ok
    elapsed = time.monotonic() - started
    verdict = "PASS" if ok else "FAIL"
    print(f"role {run.role}: {verdict} in {elapsed:.0f} s; report in {run.report_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Autobahn|Testsuite client testee: echo every message of every fuzzingserver case.

Usage: python conformance/client_testee.py --url ws://127.0.0.1:9001 --agent rapidws
       [--library rapidws|websockets] [--case-timeout SECONDS]

Runs against `wstest -m fuzzingserver`: asks for the number of cases, runs each case
by echoing every message back, then asks the server to write its reports.
`--library websockets` runs the same client on the `websockets` library, which
checks the harness independently of rapidws.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, cast

MAX_SIZE = 2**25

log = logging.getLogger("client_testee")


class Connection(Protocol):
    """The part of a client connection that the testee uses."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


Connect = Callable[[str], AbstractAsyncContextManager[Connection]]


@dataclass(frozen=True)
class Library:
    """A WebSocket client library under test."""

    connect: Connect
    connection_closed: type[Exception]
    websocket_error: type[Exception]


#: rapidws's max_fragment_size in the testee (--max-fragment-size; 0: none).
MAX_FRAGMENT_SIZE = 0


def load_rapidws() -> Library:
    import rapidws

    def connect(url: str) -> AbstractAsyncContextManager[Connection]:
        return rapidws.connect(url, max_size=MAX_SIZE, max_fragment_size=MAX_FRAGMENT_SIZE or None)

    return Library(connect, rapidws.ConnectionClosed, rapidws.WebSocketException)


def load_websockets() -> Library:
    import websockets
    from websockets.asyncio.client import connect as ws_connect

    def connect(url: str) -> AbstractAsyncContextManager[Connection]:
        conn = ws_connect(url, max_size=MAX_SIZE, compression=None, proxy=None)
        return cast(AbstractAsyncContextManager[Connection], conn)

    return Library(connect, websockets.ConnectionClosed, websockets.WebSocketException)


LIBRARIES: dict[str, Callable[[], Library]] = {
    "rapidws": load_rapidws,
    "websockets": load_websockets,
}


async def get_case_count(lib: Library, url: str) -> int:
    async with lib.connect(f"{url}/getCaseCount") as ws:
        return int(await ws.recv())


async def echo_case(lib: Library, url: str, case: int, agent: str) -> None:
    async with lib.connect(f"{url}/runCase?case={case}&agent={agent}") as ws:
        try:
            async for message in ws:
                await ws.send(message)
        except lib.connection_closed:
            pass


async def run_case(lib: Library, url: str, case: int, agent: str, timeout: float) -> bool:
    """Run one case; log and swallow its errors so that the next case still runs."""
    try:
        await asyncio.wait_for(echo_case(lib, url, case, agent), timeout)
    except (lib.websocket_error, OSError, asyncio.TimeoutError) as exc:
        log.warning("case %d: %s: %s", case, type(exc).__name__, exc)
        return False
    return True


async def update_reports(lib: Library, url: str, agent: str) -> None:
    async with lib.connect(f"{url}/updateReports?agent={agent}"):
        pass


async def run_all(lib: Library, url: str, agent: str, case_timeout: float) -> int:
    count = await get_case_count(lib, url)
    log.info("running %d cases as agent %r", count, agent)
    errors = 0
    for case in range(1, count + 1):
        if not await run_case(lib, url, case, agent, case_timeout):
            errors += 1
    await update_reports(lib, url, agent)
    log.info("ran %d cases, %d ended with a client-side error", count, errors)
    return count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9001", help="fuzzingserver URL")
    parser.add_argument("--agent", default=None, help="agent name in the reports")
    parser.add_argument("--library", choices=sorted(LIBRARIES), default="rapidws")
    parser.add_argument("--case-timeout", type=float, default=120.0, metavar="SECONDS")
    parser.add_argument(
        "--max-fragment-size", type=int, default=0, help="rapidws: largest frame payload sent"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="client_testee: %(message)s")
    global MAX_FRAGMENT_SIZE
    MAX_FRAGMENT_SIZE = args.max_fragment_size
    lib = LIBRARIES[args.library]()
    agent = args.agent or args.library
    count = asyncio.run(run_all(lib, args.url.rstrip("/"), agent, args.case_timeout))
    return 0 if count > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures for the I/O layer's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    pass


class LoopRunner:
    """Runs a coroutine to completion on a fresh loop of one kind.

    What reaches the loop's exception handler is kept in :attr:`errors`;
    unless the run says it expects some, there must be none.
    """

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.factory = factory
        self.errors: list[dict[str, Any]] = []

    def __call__(self, main: Coroutine[Any, Any, None], *, errors_expected: bool = False) -> None:
        loop = self.factory()
        loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        try:
            loop.run_until_complete(asyncio.wait_for(main, 10))
        finally:
            loop.close()
        if not errors_expected:
            assert not self.errors, self.errors


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> LoopRunner:
    """A :class:`LoopRunner` for each kind of loop: asyncio's and uvloop."""
    return LoopRunner(LOOPS[request.param])

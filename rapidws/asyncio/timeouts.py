"""Deadlines for the async API: the ``timeout=`` of ``recv``, ``send``, ``ping``, ``drain``, ...

As libdill's deadlines: every blocking operation takes a bound.  The limit
is a timer that cancels the waiting task when it expires; that cancellation
becomes :class:`TimeoutError`, whose message names the operation and the
limit.  Only the waiting is cut short: what the operation did before it
waited stays done (each operation's docstring says what that leaves).
An operation called without a timeout never comes here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["timed_out", "within"]

T = TypeVar("T")


def timed_out(operation: str, limit: float) -> TimeoutError:
    """The error of ``operation`` past its ``limit`` seconds: ``"recv() timed out after 0.5 s"``."""
    return TimeoutError(f"{operation}() timed out after {limit:g} s")


class _Expiry:
    """The timer of one deadline: it cancels the task, and remembers it did."""

    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.expired = False

    def __call__(self) -> None:
        self.expired = True
        self.task.cancel()


async def within(awaitable: Awaitable[T], limit: float, operation: str) -> T:
    """Await ``awaitable`` for at most ``limit`` seconds, else raise :func:`timed_out`.

    The calling task is cancelled at the deadline, as ``asyncio.timeout``
    does (on Python 3.10 too): a cancellation from elsewhere at the same time
    stays a cancellation.
    """
    task = asyncio.current_task()
    assert task is not None, "a deadline needs a task"
    loop = task.get_loop()
    expiry = _Expiry(task)
    cancelling = 0
    if sys.version_info >= (3, 11):
        cancelling = task.cancelling()
    handle = loop.call_later(limit, expiry)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if not expiry.expired:
            raise
        if sys.version_info >= (3, 11) and task.uncancel() > cancelling:
            raise  # cancelled from elsewhere too
        raise timed_out(operation, limit) from None
    finally:
        handle.cancel()

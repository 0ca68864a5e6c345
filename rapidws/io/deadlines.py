"""Many deadlines on few event-loop timers: what a busy server's connections share.

Each connection of a server arms the same few timeouts (the opening
handshake, the wait for TCP to close, keepalive), each with the same delay
for every connection.  Deadlines of one delay come due in the order they
were set, so a FIFO queue per delay, with one loop timer for its head, does
the work of a timer per connection: setting and cancelling one is an append
and an assignment, not a heap push and a cancelled handle left in the heap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """A callback due at ``when`` (loop time); :meth:`cancel` it like a TimerHandle."""

    __slots__ = ("_queue", "callback", "when")

    def __init__(self, queue: _Queue, when: float, callback: Callable[[], Any]) -> None:
        self._queue = queue
        self.when = when
        self.callback: Callable[[], Any] | None = callback

    def cancel(self) -> None:
        """Do not call the callback (and drop it, with what it holds)."""
        if self.callback is not None:
            self.callback = None
            self._queue._cancelled()

    def cancelled(self) -> bool:
        return self.callback is None


class _Queue:
    """Deadlines of one delay, due in order, behind one loop timer."""

    __slots__ = ("_entries", "_live", "_loop", "_timer", "delay")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._loop = loop
        self.delay = delay
        self._entries: deque[Deadline] = deque()
        self._live = 0  # entries neither cancelled nor called
        self._timer: asyncio.TimerHandle | None = None

    def _cancelled(self) -> None:
        """One of the deadlines was cancelled; with none left, stop the timer.

        An idle timer is not free: while one is set, every iteration of the
        loop reads the clock for it.
        """
        self._live -= 1
        if self._live == 0:
            self._entries.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def add(self, callback: Callable[[], Any]) -> Deadline:
        entries = self._entries
        # Drop what was cancelled at the head: the queue stays about as
        # long as the number of deadlines still pending.
        while entries and entries[0].callback is None:
            entries.popleft()
        deadline = Deadline(self, self._loop.time() + self.delay, callback)
        entries.append(deadline)
        self._live += 1
        if self._timer is None:
            self._timer = self._loop.call_at(deadline.when, self._fire)
        return deadline

    def _fire(self) -> None:
        self._timer = None
        entries = self._entries
        # The loop may run a timer a clock tick early; a millisecond early is on time here.
        now = self._loop.time() + 0.001
        due: list[Callable[[], Any]] = []
        while entries:
            head = entries[0]
            callback = head.callback
            if callback is None:
                entries.popleft()
            elif head.when <= now:
                entries.popleft()
                head.callback = None
                self._live -= 1
                due.append(callback)
            else:
                self._timer = self._loop.call_at(head.when, self._fire)
                break
        for callback in due:
            self._loop.call_soon(callback)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for entry in self._entries:
            entry.callback = None
        self._entries.clear()
        self._live = 0


class Deadlines:
    """``call_later`` for callbacks with few distinct delays, on one timer per delay."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._queues: dict[float, _Queue] = {}

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Deadline:
        """Call ``callback()`` in ``delay`` seconds unless the result is cancelled."""
        queue = self._queues.get(delay)
        if queue is None:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            queue = self._queues[delay] = _Queue(loop, delay)
        return queue.add(callback)

    def pending(self) -> int:
        """How many deadlines are set and neither cancelled nor called."""
        return sum(queue._live for queue in self._queues.values())

    def close(self) -> None:
        """Cancel everything (the loop timers included)."""
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()

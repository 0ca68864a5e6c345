"""Deadlines: many timeouts of a few delays on one loop timer per delay (fake clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from rapidws.io.deadlines import Deadlines


class FakeLoop:
    """The three loop methods Deadlines uses, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[list[Any]] = []  # [when, callback, cancelled]
        self.soon: list[Callable[[], Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], Any]) -> Any:
        timer = [when, callback, False]
        self.timers.append(timer)
        loop = self

        class Handle:
            def cancel(self) -> None:
                timer[2] = True
                loop.timers.remove(timer)

        return Handle()

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self.soon.append(callback)

    def advance(self, seconds: float) -> None:
        """Move the clock and run what came due, as the loop would."""
        self.now += seconds
        while True:
            due = [t for t in self.timers if t[0] <= self.now]
            if not due:
                break
            for timer in due:
                self.timers.remove(timer)
                timer[1]()
        soon, self.soon = self.soon, []
        for callback in soon:
            callback()


def make() -> tuple[FakeLoop, Deadlines]:
    loop = FakeLoop()
    return loop, Deadlines(cast(asyncio.AbstractEventLoop, loop))


def test_callbacks_run_once_when_due_in_order() -> None:
    loop, deadlines = make()
    fired: list[str] = []
    deadlines.call_later(10, lambda: fired.append("a"))
    loop.advance(1)
    deadlines.call_later(10, lambda: fired.append("b"))
    loop.advance(8.9)
    assert fired == []
    loop.advance(0.2)  # 10.1 s: a is due, b is not
    assert fired == ["a"]
    loop.advance(1)
    assert fired == ["a", "b"]
    loop.advance(100)
    assert fired == ["a", "b"]
    assert deadlines.pending() == 0


def test_one_loop_timer_per_delay() -> None:
    loop, deadlines = make()
    for _ in range(1000):
        deadlines.call_later(10, lambda: None)
    deadlines.call_later(5, lambda: None)
    assert len(loop.timers) == 2
    assert deadlines.pending() == 1001


def test_cancelled_deadlines_never_fire_and_drop_their_callback() -> None:
    loop, deadlines = make()
    fired: list[int] = []
    entries = [deadlines.call_later(10, lambda i=i: fired.append(i)) for i in range(5)]
    entries[0].cancel()
    entries[3].cancel()
    assert entries[0].cancelled() and entries[0].callback is None
    loop.advance(10)
    assert fired == [1, 2, 4]


def test_timer_moves_to_the_first_live_deadline() -> None:
    loop, deadlines = make()
    fired: list[str] = []
    first = deadlines.call_later(10, lambda: fired.append("first"))
    loop.advance(5)
    deadlines.call_later(10, lambda: fired.append("second"))
    first.cancel()
    loop.advance(5)  # the timer for "first" fires: nothing due, re-armed for "second"
    assert fired == [] and [t[0] for t in loop.timers] == [115.0]
    loop.advance(5)
    assert fired == ["second"] and loop.timers == []


def test_cancelled_heads_are_dropped_as_new_deadlines_come() -> None:
    _, deadlines = make()
    queue_sizes = []
    for _ in range(10_000):  # a handshake that completes before the next arrives
        deadlines.call_later(10, lambda: None).cancel()
        queue_sizes.append(sum(len(q._entries) for q in deadlines._queues.values()))
    assert max(queue_sizes) <= 2


def test_a_timer_run_a_tick_early_still_fires() -> None:
    loop, deadlines = make()
    fired: list[bool] = []
    deadlines.call_later(10, lambda: fired.append(True))
    loop.now += 10 - 1e-6  # the loop runs timers up to its clock resolution early
    loop.timers[0][1]()
    loop.advance(0)
    assert fired == [True]


def test_close_cancels_the_loop_timers() -> None:
    loop, deadlines = make()
    fired: list[bool] = []
    deadlines.call_later(10, lambda: fired.append(True))
    deadlines.close()
    assert loop.timers == []
    loop.advance(20)
    assert fired == [] and deadlines.pending() == 0


async def test_on_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    done = loop.create_future()
    deadlines.call_later(0.0, lambda: done.set_result(loop.time()))
    assert await done <= loop.time()
    deadlines.close()


def test_the_timer_stops_once_no_deadline_is_pending() -> None:
    """An idle timer costs every loop iteration a clock read: none is left set."""
    loop, deadlines = make()
    fired: list[str] = []
    first = deadlines.call_later(10, lambda: fired.append("first"))
    second = deadlines.call_later(10, lambda: fired.append("second"))
    assert len(loop.timers) == 1
    first.cancel()
    assert len(loop.timers) == 1  # one still pending
    second.cancel()
    second.cancel()  # twice is harmless
    assert loop.timers == [] and deadlines.pending() == 0
    third = deadlines.call_later(10, lambda: fired.append("third"))  # a new timer
    assert len(loop.timers) == 1 and deadlines.pending() == 1
    loop.advance(10)
    assert fired == ["third"] and loop.timers == [] and deadlines.pending() == 0
    third.cancel()  # after it ran: nothing to do
    assert deadlines.pending() == 0


def test_cancelling_after_close_does_nothing() -> None:
    loop, deadlines = make()
    deadline = deadlines.call_later(5, lambda: None)
    deadlines.close()
    deadline.cancel()
    assert loop.timers == [] and deadlines.pending() == 0

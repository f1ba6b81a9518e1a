"""Time as an injected dependency, so time-driven code is tested without sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall time: it goes into stored records)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for deadlines and rates)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    # the functions themselves, not methods that call them: ``now`` is read per handled
    # event (the audit trail), and a bound builtin is a third of a method's cost
    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when a test calls ``advance``; sleepers wake in time order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(seconds, 0.0), next(self._order), waiter))
        await waiter

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper due by then and letting it run."""
        for _ in range(3):  # let tasks that are about to sleep register first
            await asyncio.sleep(0)
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, waiter = heapq.heappop(self._sleepers)
            self._now += due - self._mono
            self._mono = due
            if not waiter.done():
                waiter.set_result(None)
            for _ in range(3):  # let the woken coroutine reach its next await
                await asyncio.sleep(0)
        self._now += target - self._mono
        self._mono = target
        await asyncio.sleep(0)

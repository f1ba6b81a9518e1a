"""Request timeouts without a timer per request.

A timer each (``loop.call_later``, cancelled when the reply comes) was a fifth of a request's
cost: a handle made, pushed on the loop's heap and cancelled, per call. Here the requests of
one timeout value wait in a deque, which is in deadline order because they arrive in time
order; one timer per timeout value watches its head. A request that was answered is just left
in the deque and dropped when it reaches the head (or when the deque is compacted), so an
answer costs nothing here at all.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from appliance.errors import RequestTimeout, RuntimeStopped

Waiting = tuple[float, "asyncio.Future[Any]", str]  # deadline, reply, who was asked

_COMPACT_AT = 1024  # entries; past it (and past twice the last live count) drop answered ones


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # the loop's clock, read per request: asyncio's own loops read time.monotonic through
        # a method of theirs; call it directly then (a loop with a clock of its own keeps it)
        self._time = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._waiting: dict[float, deque[Waiting]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}
        self._compact_at: dict[float, int] = {}

    def watch(self, reply: asyncio.Future[Any], timeout: float, name: str) -> None:
        """Fail ``reply`` with RequestTimeout if it is not done ``timeout`` seconds from now."""
        waiting = self._waiting.get(timeout)
        if waiting is None:
            waiting = self._waiting[timeout] = deque()
        while waiting and waiting[0][1].done():
            waiting.popleft()
        waiting.append((self._time() + timeout, reply, name))
        if len(waiting) > self._compact_at.get(timeout, _COMPACT_AT):
            self._compact(timeout, waiting)
        if timeout not in self._timers:
            self._timers[timeout] = self._loop.call_at(waiting[0][0], self._expire, timeout)

    def _compact(self, timeout: float, waiting: deque[Waiting]) -> None:
        """A slow request at the head holds answered ones behind it: drop those."""
        live = [entry for entry in waiting if not entry[1].done()]
        waiting.clear()
        waiting.extend(live)
        self._compact_at[timeout] = max(_COMPACT_AT, 2 * len(live))

    def _expire(self, timeout: float) -> None:
        del self._timers[timeout]
        waiting = self._waiting[timeout]
        now = self._time()
        while waiting and (waiting[0][1].done() or waiting[0][0] <= now):
            _deadline, reply, name = waiting.popleft()
            if not reply.done():
                reply.set_exception(RequestTimeout(f"{name} did not reply within {timeout}s"))
        if waiting:
            self._timers[timeout] = self._loop.call_at(waiting[0][0], self._expire, timeout)
        else:
            del self._waiting[timeout]
            self._compact_at.pop(timeout, None)

    def close(self) -> None:
        """The runtime stopped: whoever still waits hears it now, not at its deadline."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for waiting in self._waiting.values():
            for _deadline, reply, name in waiting:
                if not reply.done():
                    reply.set_exception(
                        RuntimeStopped(f"the runtime stopped before {name} replied")
                    )
        self._waiting.clear()

"""Watching the runtime from outside: the panel, the display and the CLI follow events here.

A watcher must never slow the runtime down, so each has a bounded buffer: when it falls
behind, the oldest events are dropped and counted (``dropped``), never the runtime blocked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from appliance.events import Envelope


class Watch:
    def __init__(
        self,
        accepts: Callable[[Envelope[Any]], bool],
        limit: int,
        on_close: Callable[[Watch], None],
    ) -> None:
        self._accepts = accepts
        self._buffer: deque[Envelope[Any]] = deque(maxlen=limit)
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self.dropped = 0
        self.closed = False

    def offer(self, env: Envelope[Any]) -> None:
        if self.closed or not self._accepts(env):
            return
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(env)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> Envelope[Any]:
        while not self._buffer:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Envelope[Any]]:
        return self

    async def __anext__(self) -> Envelope[Any]:
        return await self.next()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

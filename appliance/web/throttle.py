"""Slowing down password guessing: each client waits longer after each failed attempt.

After ``n`` failures in a row a client may try again only after ``base_s * 2**(n-1)`` seconds
(capped at ``max_s``); until then every attempt is refused without even checking the
password, so a guesser gets a handful of tries an hour while a person who mistyped waits a
second. Success clears the count. The table is bounded (least recently failed forgotten
first) so a flood of addresses cannot grow memory. Time is the injected clock's.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from appliance.runtime import Clock


class _Record:
    __slots__ = ("failures", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0


class LoginThrottle:
    def __init__(
        self, clock: Clock, *, base_s: float = 1.0, max_s: float = 300.0, clients: int = 4096
    ) -> None:
        self._clock = clock
        self.base_s = base_s
        self.max_s = max_s
        self._clients = clients
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        rec = self._records.get(client)
        if rec is None:
            return 0.0
        left = rec.until - self._clock.monotonic()
        if left <= 0 and left < -self.max_s:  # quiet for long enough: start afresh
            del self._records[client]
        return max(left, 0.0)

    def retry_after(self, client: str) -> int:
        """``wait_s`` in whole seconds, for a Retry-After header."""
        return math.ceil(self.wait_s(client))

    def failed(self, client: str) -> float:
        """Count a failure; returns how long the client must now wait."""
        rec = self._records.pop(client, None) or _Record()
        self._records[client] = rec
        while len(self._records) > self._clients:
            self._records.popitem(last=False)
        rec.failures += 1
        delay = min(self.base_s * 2.0 ** min(rec.failures - 1, 32), self.max_s)
        rec.until = self._clock.monotonic() + delay
        return delay

    def succeeded(self, client: str) -> None:
        self._records.pop(client, None)

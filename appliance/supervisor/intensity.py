"""Restart intensity, as in Erlang/OTP: at most N restarts in T seconds, then escalate.

Escalation goes one step per breach: restart the whole group of the type in that job, and if
the restarts keep coming, mark the type failed so it stops burning the board's time.
"""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    def __init__(self, max_restarts: int, window_s: float) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.level = 0  # 0: restart one; 1: restart the group; 2: fail the type

    def record(self, now: float) -> int:
        """Count a restart at ``now``; returns the escalation level to act at."""
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if not self._times:
            self.level = 0  # a quiet window forgives earlier breaches
        self._times.append(now)
        if len(self._times) > self.max_restarts:
            self.level = min(self.level + 1, 2)
            self._times.clear()
            self._times.append(now)
        return self.level

"""Slowing down password guessing without letting a guesser lock the owner out.

Every password (or setup token) check goes through ``LoginThrottle.attempt``, which reserves
the attempt *before* anything is verified: the attempt counts as a failure from the start
(success clears it afterwards), and a client may have one check in flight at a time. So a
burst of a hundred parallel guesses gets one check, not a hundred that all started before the
first one failed.

Attempts are kept apart in lanes, so that one lane's failures never block another's:

- ``anonymous``, keyed by the client's address (an IPv6 client by its /64, which one
  attacker holds whole): each address waits longer after each failure, and all of them
  together share a budget of checks per minute, so a thousand addresses get no more than one.
  A check that proves the password right gives its place in the budget back.
- ``device``, keyed by a device cookie (``devices.py``): a browser that once signed in with
  the right password is throttled on its own. Its owner never waits for what strangers did
  (OWASP's "device cookies"); a stolen device cookie still gets only its own slow lane.
- ``session``, keyed by a signed-in session: a password change checks the current password,
  slowed per session, never blocked by anyone else's failures.

After ``n`` failures in a row a key may try again only after ``base_s * 2**(n-1)`` seconds
(capped at ``max_s``). Each lane's table is bounded (least recently used forgotten first), so
a flood of addresses cannot grow memory. Time is the injected clock's. The console
(``qey passwd``) bypasses all of it and ``clear()`` starts afresh.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from appliance.runtime import Clock
from appliance.web.errors import TooManyAttempts

Lane = Literal["anonymous", "device", "session"]
WINDOW_S = 60.0
IN_FLIGHT_RETRY_S = 1


class _Record:
    __slots__ = ("failures", "in_flight", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0
        self.in_flight = False


class Attempt:
    """One reserved check: ``succeeded()`` once the password proved right; anything else
    leaves it counted as a failure. ``delay_s`` is the wait a failure earns."""

    __slots__ = ("delay_s", "ok")

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.ok = False

    def succeeded(self) -> None:
        self.ok = True


class LoginThrottle:
    def __init__(
        self,
        clock: Clock,
        *,
        base_s: float = 1.0,
        max_s: float = 300.0,
        clients: int = 4096,
        budget_per_min: int = 10,
    ) -> None:
        self._clock = clock
        self.base_s = base_s
        self.max_s = max_s
        self.budget_per_min = budget_per_min
        self._clients = clients
        self._lanes: dict[Lane, OrderedDict[str, _Record]] = {
            "anonymous": OrderedDict(),
            "device": OrderedDict(),
            "session": OrderedDict(),
        }
        self._checks: deque[float] = deque()  # when the anonymous checks of the window began

    @contextmanager
    def attempt(self, lane: Lane, key: str) -> Iterator[Attempt]:
        """Reserve a check for ``key`` in ``lane``, or raise TooManyAttempts saying how long
        to wait; the caller checks the password inside the block."""
        if lane == "anonymous":
            key = client_key(key)
        now = self._clock.monotonic()
        records = self._lanes[lane]
        rec = records.get(key)
        if rec is not None and rec.in_flight:
            raise TooManyAttempts(IN_FLIGHT_RETRY_S)
        if rec is not None and rec.until > now:
            raise TooManyAttempts(math.ceil(rec.until - now))
        budgeted = lane == "anonymous"
        if budgeted:
            self._spend_budget(now)
        rec = records.pop(key, None) or _Record()
        records[key] = rec
        while len(records) > self._clients:
            records.popitem(last=False)
        rec.failures += 1
        delay = min(self.base_s * 2.0 ** min(rec.failures - 1, 32), self.max_s)
        rec.until = now + delay
        rec.in_flight = True
        attempt = Attempt(delay)
        try:
            yield attempt
        finally:
            rec.in_flight = False
            if attempt.ok:
                records.pop(key, None)
                if budgeted and now in self._checks:
                    self._checks.remove(now)  # the right password: no guess to count

    def clear(self) -> None:
        """Forget every failure and the spent budget (the owner set a new password from the
        console: whatever the guessers earned is moot)."""
        for records in self._lanes.values():
            records.clear()
        self._checks.clear()

    def _spend_budget(self, now: float) -> None:
        checks = self._checks
        while checks and checks[0] <= now - WINDOW_S:
            checks.popleft()
        if len(checks) >= self.budget_per_min:
            raise TooManyAttempts(max(1, math.ceil(checks[0] + WINDOW_S - now)))
        checks.append(now)


def client_key(address: str) -> str:
    """The throttle's name for an address: itself for IPv4, its /64 for IPv6 (a host there
    has 2**64 addresses to rotate through)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)

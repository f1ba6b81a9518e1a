"""Many TCP connects in flight at once, from one epoll set: the engine under
``portscan.scan``.

Where every port answers at once (loopback, a LAN's closed ports) a probe is a few
microseconds of kernel work, and a coroutine per probe (a Task or a worker's turn, a timeout
context, the loop's writer callback for its socket) cost several times that: 11k probes/s
here against nmap's 60k. Here a probe is a bare non-blocking socket and no Python object beyond it
unless it has to wait. Asked a second time, connect says how the first attempt ended, and on
loopback it has already ended; only the probes still in flight join an epoll set of our own,
whose one descriptor is all the event loop watches, and their answers are read in batches.

Deadlines need no heap: every probe of one try waits the same current timeout, so the oldest
in flight is always the first due, and a queue per try in the order of sending is enough. A
probe that is answered stays in its queue, marked, until it reaches the front.

Linux only (epoll), as the appliance is.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import os
import select
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from appliance.agents.probe_timeout import ProbeTimeout
from appliance.errors import ResourceError

OUT_OF_SOCKETS = frozenset(
    (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL)
)
"""This machine ran short (of descriptors, buffers or local ports), not the port: a probe that
hit one of these learned nothing and is sent again."""

TRIES = 2
"""A probe that gets no answer is sent once more (with twice the wait), as nmap does at
least: a lost SYN, or a host slower than the rest, is not a closed port."""

BATCH = 512
"""Probes sent between two turns of the event loop: a few milliseconds here, so a scan never
holds up the rest of the appliance for long."""

_NONBLOCKING_STREAM = _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY)
Address = tuple[str, int]


@dataclass(slots=True)
class _Waiting:
    """A probe whose connect is still in flight: in the epoll set, and in its try's queue."""

    sock: _socket.socket | None  # None once answered or given up
    address: Address
    started: float  # time.monotonic() when sent
    tries: int  # sends before this one


class ConnectSweep:
    """Every (host, port) of the grid probed once (twice if silent), at most ``window`` in
    flight; ``found`` holds the open ports per host, in the order they answered.

    ``window`` shrinks when this machine runs short of descriptors or local ports (the probe
    is sent again later), and grows back by one per probe decided up to where it started;
    only a shortage with nothing in flight, where no waiting can help, is a ResourceError."""

    def __init__(
        self,
        hosts: Sequence[str],
        ports: Sequence[int],
        *,
        window: int,
        timeout: ProbeTimeout,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.found: dict[str, list[int]] = {}
        self.decided = 0  # probes answered or given up on
        self._work: Iterator[Address] = ((h, p) for h in hosts for p in ports)
        self._sent_all = False  # the grid is used up (retries may still be waiting)
        self._again: deque[tuple[Address, int]] = deque()  # (address, tries) to send first
        self._cap = max(1, window)
        self._window = self._cap
        self._timeout = timeout
        self._progress = progress
        self._waiting: dict[int, _Waiting] = {}  # by descriptor
        self._queues: list[deque[_Waiting]] = [deque() for _ in range(TRIES)]
        self._wakeup: asyncio.Future[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            poller = select.epoll()
        except OSError as err:
            if err.errno in OUT_OF_SOCKETS:
                raise ResourceError(f"starting a scan: {err.strerror}") from err
            raise
        loop.add_reader(poller.fileno(), self._wake)
        try:
            while True:
                decided = self.decided
                self._send(poller, BATCH)
                self._collect(poller)
                due = self._expire(time.monotonic())
                if self._window < self._cap:  # shrunk by a shortage: one more per decision
                    self._window = min(self._cap, self._window + self.decided - decided)
                if self._progress is not None:
                    self._progress(self.decided)
                unsent = bool(self._again) or not self._sent_all
                if not unsent and not self._waiting:
                    return
                if unsent and len(self._waiting) < self._window:
                    await asyncio.sleep(0)  # room to send more: only let others run first
                else:
                    await self._wait(due)
        finally:
            loop.remove_reader(poller.fileno())
            for entry in self._waiting.values():
                if entry.sock is not None:
                    entry.sock.close()
            poller.close()

    def _send(self, poller: select.epoll, budget: int) -> None:
        """Send up to ``budget`` probes while the window has room; decide at once those that
        the connect itself answers.

        A socket whose connect was refused is used for the next probe: Linux resets a socket
        to unconnected when connect reports a refusal (and frees its local port), and a new
        socket and a close are a third of a loopback probe's cost. The round trips answered
        here (the connect's own time) go to the timeout as one sample, their mean: they are
        alike, and the estimator's sums are a tenth of the loop's cost per probe."""
        waiting, again, found, work = self._waiting, self._again, self.found, self._work
        monotonic, new_socket = time.monotonic, _socket.socket
        room = min(budget, self._window - len(waiting))
        answered, answered_s = 0, 0.0
        spare: _socket.socket | None = None  # refused by its own connect: ready for another
        try:
            while room > 0:  # the hot loop: locals only
                if again:
                    address, tries = again.popleft()
                else:
                    fresh = next(work, None)
                    if fresh is None:
                        self._sent_all = True
                        return
                    address, tries = fresh, 0
                family = _socket.AF_INET6 if ":" in address[0] else _socket.AF_INET
                if spare is not None and spare.family == family:
                    sock, spare = spare, None
                else:
                    try:
                        sock = new_socket(family, _NONBLOCKING_STREAM)
                    except OSError as err:
                        self._short_of_sockets(address, tries, err)
                        return
                started = monotonic()
                try:
                    status = sock.connect_ex(address)
                    if status == errno.EINPROGRESS:
                        status = sock.connect_ex(address)  # how did it end, if it has?
                except BaseException:  # not an address (a name, a port past 65535): no leak
                    sock.close()
                    raise
                if status in _IN_PROGRESS:
                    entry = _Waiting(sock, address, started, tries)
                    fd = sock.fileno()
                    waiting[fd] = entry
                    poller.register(fd, select.EPOLLOUT)
                    self._queues[tries].append(entry)
                    room -= 1
                    continue
                if status == errno.ECONNREFUSED and spare is None:
                    spare = sock
                else:
                    sock.close()
                    if status in OUT_OF_SOCKETS:
                        short = OSError(status, os.strerror(status))
                        self._short_of_sockets(address, tries, short)
                        return
                answered_s += monotonic() - started
                answered += 1
                if status == 0:
                    found.setdefault(address[0], []).append(address[1])
                room -= 1
        finally:
            if spare is not None:
                spare.close()
            if answered:
                self.decided += answered
                self._timeout.observe(answered_s / answered)

    def _collect(self, poller: select.epoll) -> None:
        """Read every answer that has come in, without waiting."""
        waiting = self._waiting
        if not waiting:
            return
        events = poller.poll(0, len(waiting))
        now = time.monotonic()
        for fd, _mask in events:
            entry = waiting.pop(fd)
            sock = entry.sock
            assert sock is not None
            status = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            sock.close()
            entry.sock = None
            if status in OUT_OF_SOCKETS and entry.tries + 1 < TRIES:
                self._again.appendleft((entry.address, entry.tries + 1))  # a try, not an answer
                continue
            self._timeout.observe(now - entry.started)
            if status == 0:
                self.found.setdefault(entry.address[0], []).append(entry.address[1])
            self.decided += 1

    def _expire(self, now: float) -> float | None:
        """Give up on the probes whose wait is over (a first try is sent again); the time the
        next one is due, or None with nothing in flight."""
        due: float | None = None
        for tries, queue in enumerate(self._queues):
            wait = self._timeout.current if tries == 0 else self._timeout.retry()
            while queue:
                entry = queue[0]
                if entry.sock is None:
                    queue.popleft()
                elif now - entry.started >= wait:
                    queue.popleft()
                    del self._waiting[entry.sock.fileno()]
                    entry.sock.close()
                    entry.sock = None
                    if tries + 1 < TRIES:
                        self._again.append((entry.address, tries + 1))
                    else:
                        self.decided += 1
                else:
                    at = entry.started + wait
                    due = at if due is None else min(due, at)
                    break
        return due

    def _short_of_sockets(self, address: Address, tries: int, err: OSError) -> None:
        if err.errno not in OUT_OF_SOCKETS:
            raise err
        if not self._waiting:
            host, port = address
            raise ResourceError(f"probing {host}:{port}: {err.strerror}") from err
        self._again.appendleft((address, tries))
        self._window = max(1, len(self._waiting) * 3 // 4)

    async def _wait(self, due: float | None) -> None:
        """Until an answer comes in or the next probe is due (now, if a retry or a send that
        the window refused is waiting and the window has room again)."""
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup = loop.create_future()
        timer = None if due is None else loop.call_later(due - time.monotonic(), self._wake)
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

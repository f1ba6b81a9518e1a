"""A TCP connect scan: the least intrusive real probe, with bounded concurrency and timeouts
learnt from the answers (the engine is ``sweep.ConnectSweep``)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence

from appliance.agents.probe_timeout import ProbeTimeout
from appliance.agents.sweep import OUT_OF_SOCKETS, ConnectSweep
from appliance.errors import ResourceError

PROGRESS_EVERY_S = 0.25
"""A running scan's progress, four times a second: enough for a bar to move smoothly."""


async def probe(host: str, port: int, timeout: float) -> bool:
    """True if a TCP connection to host:port is accepted within ``timeout`` seconds; False if
    refused, unreachable or silent. ResourceError when this machine is out of sockets, which
    says nothing about the port (a scan must not report it closed).

    One port on its own, with a fixed wait; a scan of many keeps them in flight together
    (``scan``), where a coroutine per probe would cost more than the probe."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        _raise_if_out_of_sockets(host, port, err)
        raise
    try:
        sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
    except TimeoutError:
        return False
    except OSError as err:
        _raise_if_out_of_sockets(host, port, err)
        return False
    finally:
        sock.close()
    return True


def _raise_if_out_of_sockets(host: str, port: int, err: OSError) -> None:
    if err.errno in OUT_OF_SOCKETS:
        raise ResourceError(f"probing {host}:{port}: {err.strerror}") from err


def probe_window(most: int, sharers: int = 1) -> int:
    """How many probes one scan may keep in flight: ``most``, unless this process's limit of
    open files is lower. A quarter of the limit stays for the rest of the appliance (its
    store, its panel's connections), and the rest is shared by the ``sharers`` scans that may
    run at once (a collector pool's instances), so a scan's sockets never starve the others
    of descriptors."""
    import resource  # here, not at the top: a start does not need it

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max(1, most)
    return max(1, min(most, soft * 3 // 4 // max(1, sharers)))


class ProgressGate:
    """Passes a scan's progress on at most once per ``every_s`` seconds, and always its end:
    each report becomes an event that every live view redraws, and a scan decides thousands
    of probes a second."""

    def __init__(
        self,
        report: Callable[[int, int], None],
        total: int,
        *,
        every_s: float = PROGRESS_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._total = total
        self._every_s = every_s
        self._monotonic = monotonic
        self._next = monotonic() + every_s
        self._last = -1

    def __call__(self, done: int) -> None:
        if done == self._last:
            return
        if done >= self._total or self._monotonic() >= self._next:
            self._last = done
            self._next = self._monotonic() + self._every_s
            self._report(done, self._total)


async def scan(
    hosts: Sequence[str],
    ports: Sequence[int],
    *,
    concurrency: int,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[int]]:
    """Open ports per host (IP addresses: nothing here resolves a name). At most
    ``concurrency`` probes in flight; each waits for as long as the answers so far say an
    answer takes (ProbeTimeout), never more than ``timeout`` seconds; a silent port is tried
    twice. ``progress(probed, total)`` at most every PROGRESS_EVERY_S, and at the end."""
    total = len(hosts) * len(ports)
    gate = None if progress is None else ProgressGate(progress, total)
    sweep = ConnectSweep(
        hosts,
        ports,
        window=min(concurrency, total),
        timeout=ProbeTimeout.up_to(timeout),
        progress=gate,
    )
    await sweep.run()
    return {h: sorted(p) for h, p in sweep.found.items()}

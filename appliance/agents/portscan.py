"""A TCP connect scan: the least intrusive real probe, with bounded concurrency and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence


async def probe(host: str, port: int, timeout: float) -> bool:
    """True if a TCP connection to host:port is accepted within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def scan(
    hosts: Sequence[str],
    ports: Sequence[int],
    *,
    concurrency: int,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[int]]:
    """Open ports per host. At most ``concurrency`` probes are in flight at once: a fixed set
    of workers pulls from one iterator, so a /20 costs as many tasks as a single host."""
    work = iter([(h, p) for h in hosts for p in ports])
    total = len(hosts) * len(ports)
    found: dict[str, list[int]] = {}
    probed = 0

    async def worker() -> None:
        nonlocal probed
        for host, port in work:
            if await probe(host, port, timeout):
                found.setdefault(host, []).append(port)
            probed += 1
            if progress is not None and (probed % 64 == 0 or probed == total):
                progress(probed, total)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, total)):
            tg.create_task(worker())
    return {h: sorted(p) for h, p in found.items()}

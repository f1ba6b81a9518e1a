"""4. The seed's point: N scan targets with simulated I/O latency, sequential vs fan-out.

A scanner agent type's handler waits ``LATENCY`` seconds (simulated I/O) per target. Sequential:
a coordinator spawns one scanner per target and awaits ``ctx.request`` to each, one after the
other. Concurrent: a coordinator awaits ``ctx.fan_out("scanner", [...])``, one child per target.
Both coordinators are started with ``runtime.submit`` and awaited with ``runtime.wait_task``.
Baseline: the same N sleeps in plain asyncio, one after another and in a TaskGroup.
"""

from __future__ import annotations

import asyncio
import time

from _common import bench_runtime, figure, header, median, ratio

from appliance.events import Event
from appliance.runtime import Agent, Context, NoState, Runtime

N = 50
LATENCY = 0.020
REPS = 3


class ScanTarget(Event, frozen=True, tag="bench.scan_target"):
    i: int


class ScanAll(Event, frozen=True, tag="bench.scan_all"):
    n: int


class Scanner(Agent):
    name = "scanner"
    description = "scans one target (simulated I/O latency)"
    concurrency = 1024

    async def on_target(self, event: ScanTarget, ctx: Context[NoState]) -> int:
        await asyncio.sleep(LATENCY)
        return event.i


class SequentialCoordinator(Agent):
    name = "sequential"
    description = "scans its targets one after another"
    # Not eager: ctx.request opens asyncio.timeout, which needs a current task, and in an eager
    # handler there is none until the first real suspension (RuntimeError otherwise).
    eager = False

    async def on_scan_all(self, event: ScanAll, ctx: Context[NoState]) -> int:
        total = 0
        for i in range(event.n):
            ref = ctx.spawn("scanner", f"target {i}")
            total += await ctx.request(ref, ScanTarget(i=i), timeout=10.0)
        return total


class FanOutCoordinator(Agent):
    name = "fanout"
    description = "scans its targets concurrently, one child each"

    async def on_scan_all(self, event: ScanAll, ctx: Context[NoState]) -> int:
        work = [(f"target {i}", ScanTarget(i=i)) for i in range(event.n)]
        outcomes = await ctx.fan_out("scanner", work)
        assert all(o.ok for o in outcomes), [o.detail for o in outcomes if not o.ok]
        return sum(o.result_as(int) for o in outcomes)


async def ours(runtime: Runtime, coordinator: str, n: int) -> float:
    start = time.perf_counter()
    _job, ref = runtime.submit("bench fanout", coordinator, start=ScanAll(n=n))
    outcome = await runtime.wait_task(ref)
    elapsed = time.perf_counter() - start
    assert outcome.ok, outcome
    assert outcome.result_as(int) == n * (n - 1) // 2, outcome
    return elapsed


async def scan(i: int) -> int:
    await asyncio.sleep(LATENCY)
    return i


async def plain_sequential(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += await scan(i)
    assert total == n * (n - 1) // 2
    return time.perf_counter() - start


async def plain_concurrent(n: int) -> float:
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(scan(i)) for i in range(n)]
    assert sum(t.result() for t in tasks) == n * (n - 1) // 2
    return time.perf_counter() - start


async def main() -> None:
    header(f"fan-out: {N} targets, {LATENCY * 1000:.0f} ms simulated I/O each (median of {REPS})")
    seq: list[float] = []
    fan: list[float] = []
    plain_seq: list[float] = []
    plain_fan: list[float] = []
    async with bench_runtime(Scanner, SequentialCoordinator, FanOutCoordinator) as runtime:
        await ours(runtime, "fanout", 4)  # warm-up
        await ours(runtime, "sequential", 2)
        for _ in range(REPS):
            plain_seq.append(await plain_sequential(N))
            plain_fan.append(await plain_concurrent(N))
            seq.append(await ours(runtime, "sequential", N))
            fan.append(await ours(runtime, "fanout", N))

    ideal = f"(ideal {N * LATENCY * 1000:.0f})"
    figure("plain asyncio, sequential", median(plain_seq) * 1000, "ms", note=ideal)
    figure("plain asyncio, concurrent (TaskGroup)", median(plain_fan) * 1000, "ms")
    figure("ours, sequential (ctx.request each)", median(seq) * 1000, "ms")
    figure("ours, concurrent (ctx.fan_out)", median(fan) * 1000, "ms")
    ratio("ours / plain, sequential (time)", median(seq), median(plain_seq), higher_is_better=False)
    ratio("ours / plain, concurrent (time)", median(fan), median(plain_fan), higher_is_better=False)
    plain_speedup = median(plain_seq) / median(plain_fan)
    ours_speedup = median(seq) / median(fan)
    figure("plain asyncio speedup (seq. / concurrent)", plain_speedup, "x")
    figure("ours speedup (sequential / fan-out)", ours_speedup, "x", note=f"(ideal {N}x)")
    ratio("ours speedup / plain speedup", ours_speedup, plain_speedup, higher_is_better=True)


if __name__ == "__main__":
    asyncio.run(main())

"""2. A burst: N events published at once, without waiting, then handled: events/s and peak
memory, against plain asyncio.

Baseline: ``put_nowait`` of N events into an unbounded ``asyncio.Queue``, then one consumer
task awaiting the handler inline for each. Ours: ``runtime.publish_nowait`` of N events to
one warm instance whose inbox takes N + 1, then one ``request`` behind them (per-instance
FIFO: its reply means every event before it was handled). Everything published is alive at
once, so this is where what each event carries (envelope, delivery) and the garbage
collector's passes over it show. For reference, ours with the collector off, and ours
without each of the two duties plain asyncio does not have, then without both: the state's
snapshot after every event (the point a restart recovers to) and the audit trail.

Goals: >= 0.8x the baseline's events/s; peak memory <= 1.2x the baseline's.
"""

from __future__ import annotations

import asyncio
import gc

from _common import (
    JOB,
    Counter,
    Ping,
    PlainState,
    bench_runtime,
    figure,
    goal,
    header,
    interleaved,
    median,
    paired,
    plain_handler,
    ratio,
    traced_peak,
)

from appliance.events import TaskRef
from appliance.runtime import Runtime

N = 100_000
REPS = 11
MEMORY_REPS = 3


class BurstCounter(Counter):
    """``Counter`` with an inbox that takes the whole burst."""

    name = "burst-counter"
    inbox_size = N + 1


class UnsnappedBurstCounter(BurstCounter):
    """``BurstCounter`` with state snapshots off (a reference line)."""

    name = "burst-counter-unsnapped"
    snapshot = False


async def plain_burst(n: int) -> None:
    queue: asyncio.Queue[Ping] = asyncio.Queue()
    state = PlainState()
    for i in range(n):
        queue.put_nowait(Ping(n=i))

    async def consume() -> None:
        for _ in range(n):
            await plain_handler(await queue.get(), state)

    await consume()
    assert state.count == n


async def ours_burst(runtime: Runtime, ref: TaskRef, n: int) -> None:
    before = runtime.handled
    for i in range(n):
        runtime.publish_nowait(ref, Ping(n=i), job=JOB)
    await runtime.request(ref, Ping(n=n), job=JOB, timeout=60)
    assert runtime.handled - before == n + 1


async def without_gc(runtime: Runtime, ref: TaskRef) -> None:
    gc.disable()
    try:
        await ours_burst(runtime, ref, N)
    finally:
        gc.enable()


async def main() -> None:
    header(f"burst: {N:,} events published at once, then handled (median of {REPS})")
    agents = (BurstCounter, UnsnappedBurstCounter)
    async with bench_runtime(*agents) as runtime, bench_runtime(*agents, audit=False) as bare:
        ref = runtime.spawn(BurstCounter.name, JOB, "bench instance")
        unsnapped = runtime.spawn(UnsnappedBurstCounter.name, JOB, "bench instance")
        unaudited = bare.spawn(BurstCounter.name, JOB, "bench instance")
        neither = bare.spawn(UnsnappedBurstCounter.name, JOB, "bench instance")
        for rt, target in (
            (runtime, ref),
            (runtime, unsnapped),
            (bare, unaudited),
            (bare, neither),
        ):
            await ours_burst(rt, target, 10_000)  # warm-up
        await plain_burst(10_000)
        plain_s, ours_s, nogc_s, unsnapped_s, unaudited_s, neither_s = await interleaved(
            [
                lambda: plain_burst(N),
                lambda: ours_burst(runtime, ref, N),
                lambda: without_gc(runtime, ref),
                lambda: ours_burst(runtime, unsnapped, N),
                lambda: ours_burst(bare, unaudited, N),
                lambda: ours_burst(bare, neither, N),
            ],
            REPS,
        )
        plain_rate = N / median(plain_s)
        ours_rate = N / median(ours_s)
        figure("plain asyncio (put_nowait, then 1 consumer)", plain_rate, "events/s")
        figure("ours (publish_nowait to one instance)", ours_rate, "events/s")
        figure("ours, garbage collector off (reference)", N / median(nogc_s), "events/s")
        figure("ours, state snapshots off (reference)", N / median(unsnapped_s), "events/s")
        figure("ours, audit trail off (reference)", N / median(unaudited_s), "events/s")
        figure("ours, both off (reference)", N / median(neither_s), "events/s")
        print("  time an event, published and handled (median of the rounds):")
        figure("plain asyncio", median(plain_s) / N * 1e9, "ns")
        figure("ours", median(ours_s) / N * 1e9, "ns")
        for label, times in (("snapshots", unsnapped_s), ("audit trail", unaudited_s)):
            cost = median([o - t for o, t in zip(ours_s, times, strict=True)]) / N * 1e9
            figure(f"  of which the {label} (paired rounds)", cost, "ns")
        ratio("ours / plain (of the medians)", ours_rate, plain_rate, higher_is_better=True)
        # the goal is read from each round's own ratio (_common.paired)
        speed = paired("ours / plain", plain_s, ours_s, higher_is_better=True)
        goal("burst speed vs plain", speed, 0.8, "x", at_least=True)
        paired("ours, both off / plain (reference)", plain_s, neither_s, higher_is_better=True)

        plain_mem: list[int] = []
        ours_mem: list[int] = []
        for _ in range(MEMORY_REPS):
            plain_mem.append(await traced_peak(lambda: plain_burst(N), [runtime]))
            ours_mem.append(await traced_peak(lambda: ours_burst(runtime, ref, N), [runtime]))
    print(f"  peak memory above the start of the run (tracemalloc, median of {MEMORY_REPS}):")
    plain_peak = median(plain_mem)
    ours_peak = median(ours_mem)
    figure("plain asyncio", plain_peak / 2**20, "MiB")
    figure("ours", ours_peak / 2**20, "MiB")
    figure("  per event: plain", plain_peak / N, "bytes")
    figure("  per event: ours", ours_peak / N, "bytes")
    memory = ratio("ours / plain (peak memory)", ours_peak, plain_peak, higher_is_better=False)
    goal("burst peak memory vs plain", memory, 1.2, "x")


if __name__ == "__main__":
    asyncio.run(main())

"""1. One-way events to one warm instance: events/s and peak memory, against plain asyncio.

Baseline: an ``asyncio.Queue(maxsize=1024)`` with one consumer task awaiting the handler inline;
the producer ``await q.put(Ping(n=i))``. For reference, task-per-event (one Task per event,
at most 1024 in flight). Ours: ``await runtime.send(ref, Ping(n=i), job=job)`` to one warm
counter instance (typed dispatch, per-(job, task) state, per-event failure isolation), then one
``request`` to the same instance: start order per instance is FIFO and the handler completes
inline, so its reply means every event before it was handled.

Speed and memory are measured in separate runs (tracemalloc slows everything down); before
each memory run every runtime's store commits what it still holds, so that no run is charged
for what an earlier one left (the writer's commit of it would land in the next run's peak).
The audit trail (every handled event to the store) is on, as in the appliance; a runtime
without it is measured beside it for what it costs.
Goals (issue 15's): >= 0.9x the baseline's events/s, state snapshots and the audit trail on;
peak memory <= 1.2x the baseline's; the audit trail
costs <= 10% of the events/s.
"""

from __future__ import annotations

import asyncio

from _common import (
    JOB,
    Counter,
    Ping,
    PlainState,
    UnsnappedCounter,
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
INFLIGHT = 1024


async def plain_queue(n: int) -> None:
    queue: asyncio.Queue[Ping] = asyncio.Queue(maxsize=INFLIGHT)
    state = PlainState()

    async def consume() -> None:
        for _ in range(n):
            event = await queue.get()
            await plain_handler(event, state)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        for i in range(n):
            await queue.put(Ping(n=i))
    assert state.count == n


async def task_per_event(n: int) -> None:
    state = PlainState()
    slots = asyncio.Semaphore(INFLIGHT)

    async def one(event: Ping) -> None:
        try:
            await plain_handler(event, state)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            await slots.acquire()
            tg.create_task(one(Ping(n=i)))
    assert state.count == n


async def ours(runtime: Runtime, ref: TaskRef, n: int) -> None:
    before = runtime.handled
    for i in range(n):
        await runtime.send(ref, Ping(n=i), job=JOB)
    await runtime.request(ref, Ping(n=n), job=JOB)
    assert runtime.handled - before == n + 1


async def main() -> None:
    header(f"throughput: {N:,} one-way events to one warm instance (median of {REPS})")
    async with (
        bench_runtime(Counter) as runtime,
        bench_runtime(UnsnappedCounter) as unsnapped,
        bench_runtime(Counter, audit=False) as unaudited,
    ):
        ref = runtime.spawn("counter", JOB, "bench instance")
        unsnapped_ref = unsnapped.spawn("counter", JOB, "bench instance")
        unaudited_ref = unaudited.spawn("counter", JOB, "bench instance")
        await ours(runtime, ref, 10_000)  # warm-up
        await ours(unsnapped, unsnapped_ref, 10_000)
        await ours(unaudited, unaudited_ref, 10_000)
        await plain_queue(10_000)
        await task_per_event(10_000)

        plain_s, task_s, ours_s, unsnapped_s, unaudited_s = await interleaved(
            [
                lambda: plain_queue(N),
                lambda: task_per_event(N),
                lambda: ours(runtime, ref, N),
                lambda: ours(unsnapped, unsnapped_ref, N),
                lambda: ours(unaudited, unaudited_ref, N),
            ],
            REPS,
        )

        plain_rate = N / median(plain_s)
        task_rate = N / median(task_s)
        ours_rate = N / median(ours_s)
        figure("plain asyncio (Queue + 1 consumer task)", plain_rate, "events/s")
        figure("task-per-event (reference)", task_rate, "events/s")
        figure("ours (runtime.send to one instance)", ours_rate, "events/s")
        figure("ours, state snapshots off (reference)", N / median(unsnapped_s), "events/s")
        unaudited_rate = N / median(unaudited_s)
        figure("ours, audit trail off (reference)", unaudited_rate, "events/s")
        ratio("task-per-event / plain", task_rate, plain_rate, higher_is_better=True)
        ratio("ours / plain (of the medians)", ours_rate, plain_rate, higher_is_better=True)
        # the goals are read from each round's own ratios (_common.paired): events/s is the
        # inverse of seconds, so a speed ratio is the baseline's seconds over ours
        speed = paired("ours / plain", plain_s, ours_s, higher_is_better=True)
        goal("speed vs plain", speed, 0.9, "x", at_least=True)
        slowdown = paired(
            "ours / ours without the trail, seconds", ours_s, unaudited_s, higher_is_better=False
        )
        goal("the audit trail's cost", (slowdown - 1) * 100, 10, "%")

        plain_mem: list[int] = []
        task_mem: list[int] = []
        ours_mem: list[int] = []
        quiet = (runtime, unsnapped, unaudited)
        for _ in range(MEMORY_REPS):
            plain_mem.append(await traced_peak(lambda: plain_queue(N), quiet))
            task_mem.append(await traced_peak(lambda: task_per_event(N), quiet))
            ours_mem.append(await traced_peak(lambda: ours(runtime, ref, N), quiet))

    print(f"  peak memory above the start of the run (tracemalloc, median of {MEMORY_REPS}):")
    plain_peak = median(plain_mem)
    ours_peak = median(ours_mem)
    figure("plain asyncio", plain_peak / 1024, "KiB")
    figure("task-per-event (reference)", median(task_mem) / 1024, "KiB")
    figure("ours", ours_peak / 1024, "KiB")
    memory = ratio("ours / plain (peak memory)", ours_peak, plain_peak, higher_is_better=False)
    goal("peak memory vs plain", memory, 1.2, "x")


if __name__ == "__main__":
    asyncio.run(main())

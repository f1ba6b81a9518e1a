"""2. Many instances, each sent one event: µs per instance and RSS bytes per idle instance.

Each figure comes from a fresh child process (resident memory does not shrink after freeing):
the child warms up on a few instances, takes its RSS, spawns N instances and sends each one
event, waits until all are handled, then (after ``gc.collect()`` and ``await store.flush()``)
takes its RSS again. Baseline: per instance an ``asyncio.Queue`` and a consumer task parked on
it, the event put on the queue. For reference: a bare ``asyncio.Queue`` and a bare parked task.

Goals: <= 35 µs per instance, <= 1.5 KB per idle instance, 100,000 instances in <= 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from _common import (
    JOB,
    Counter,
    Ping,
    PlainState,
    UnsnappedCounter,
    bench_runtime,
    emit,
    figure,
    goal,
    header,
    median,
    plain_handler,
    ratio,
    run_child,
    settled_rss,
)

from appliance.events import TaskRef

N = 10_000
BIG_N = 100_000
REPS = 3
WARM = 200

# -- children: one mode, one N, one JSON line ----------------------------------------------


async def child_ours(n: int, *, snapshots: bool = True) -> dict[str, Any]:
    async with bench_runtime(Counter if snapshots else UnsnappedCounter) as runtime:

        async def spawn_and_ping(count: int) -> None:
            last: TaskRef | None = None
            for _ in range(count):
                last = runtime.spawn("counter", JOB, "bench instance")
                runtime.publish_nowait(last, Ping(), job=JOB)
            assert last is not None
            await runtime.request(last, Ping(), job=JOB)  # FIFO: every event before it ran

        await spawn_and_ping(WARM)
        await runtime.store.flush()
        handled = runtime.handled
        before = settled_rss()
        start = time.perf_counter()
        await spawn_and_ping(n)
        elapsed = time.perf_counter() - start
        assert runtime.handled - handled == n + 1
        await runtime.store.flush()
        after = settled_rss()
        live = len(runtime.instances("counter"))
        assert live == WARM + n, live
    return {"seconds": elapsed, "rss_before": before, "rss_after": after}


async def child_plain(n: int, *, with_queue: bool, with_task: bool) -> dict[str, Any]:
    """Per instance: a Queue and a consumer parked on it (the baseline), or only one of them."""
    handled = 0
    loop = asyncio.get_running_loop()
    all_done: asyncio.Future[None] = loop.create_future()
    target = WARM + n
    queues: list[asyncio.Queue[Ping | None]] = []
    parked: list[asyncio.Future[None]] = []

    async def consume(queue: asyncio.Queue[Ping | None], state: PlainState) -> None:
        nonlocal handled
        while (event := await queue.get()) is not None:
            await plain_handler(event, state)
            handled += 1
            if handled == target:
                all_done.set_result(None)

    async def park(wakeup: asyncio.Future[None]) -> None:
        await wakeup

    async with asyncio.TaskGroup() as tg:

        def spawn_and_ping(count: int) -> None:
            for _ in range(count):
                if with_queue and with_task:
                    queue: asyncio.Queue[Ping | None] = asyncio.Queue()
                    queues.append(queue)
                    tg.create_task(consume(queue, PlainState()))
                    queue.put_nowait(Ping())
                elif with_queue:
                    queues.append(asyncio.Queue())
                else:
                    parked.append(loop.create_future())
                    tg.create_task(park(parked[-1]))

        async def settle() -> None:
            if with_queue and with_task:
                await all_done
            else:
                await asyncio.sleep(0)  # let the parked tasks take their first step

        spawn_and_ping(WARM)
        await asyncio.sleep(0)
        before = settled_rss()
        start = time.perf_counter()
        spawn_and_ping(n)
        await settle()
        elapsed = time.perf_counter() - start
        after = settled_rss()
        for queue in queues:
            queue.put_nowait(None)
        for wakeup in parked:
            wakeup.set_result(None)
    return {"seconds": elapsed, "rss_before": before, "rss_after": after}


CHILDREN: dict[str, Callable[[int], Any]] = {
    "ours": child_ours,
    "ours-unsnapped": lambda n: child_ours(n, snapshots=False),
    "baseline": lambda n: child_plain(n, with_queue=True, with_task=True),
    "queue": lambda n: child_plain(n, with_queue=True, with_task=False),
    "task": lambda n: child_plain(n, with_queue=False, with_task=True),
}


def child(mode: str, n: int) -> None:
    gc.collect()
    result = asyncio.run(CHILDREN[mode](n))
    result["n"] = n
    emit(result)


# -- parent: run the children, print the figures --------------------------------------------


def measure(mode: str, n: int, reps: int) -> tuple[float, float, float]:
    """Median µs per instance, bytes per instance, and total RSS growth in bytes."""
    runs = [run_child([__file__, "--child", mode, "--n", str(n)]) for _ in range(reps)]
    us = median([r["seconds"] / n * 1e6 for r in runs])
    grown = median([r["rss_after"] - r["rss_before"] for r in runs])
    return us, grown / n, grown


def main() -> None:
    header(f"instances: {N:,} spawned, one event each (fresh process per run, median of {REPS})")
    base_us, base_bytes, _ = measure("baseline", N, REPS)
    _, queue_bytes, _ = measure("queue", N, REPS)
    task_us, task_bytes, _ = measure("task", N, REPS)
    ours_us, ours_bytes, _ = measure("ours", N, REPS)
    unsnapped_us, unsnapped_bytes, _ = measure("ours-unsnapped", N, REPS)
    figure("plain asyncio (Queue + parked consumer task)", base_us, "µs/instance")
    figure("ours (spawn + publish_nowait, until handled)", ours_us, "µs/instance")
    figure("ours, state snapshots off (reference)", unsnapped_us, "µs/instance")
    ratio("ours / plain (time)", ours_us, base_us, higher_is_better=False)
    goal("time per instance", ours_us, 35.0, "µs")
    print("  RSS per idle instance (after gc.collect() and store.flush()):")
    figure("asyncio.Queue alone (reference)", queue_bytes, "B/instance")
    figure("parked task alone (reference)", task_bytes, "B/instance", note=f"({task_us:.1f} µs)")
    figure("plain asyncio (Queue + parked consumer task)", base_bytes, "B/instance")
    figure("ours", ours_bytes, "B/instance")
    figure("ours, state snapshots off (reference)", unsnapped_bytes, "B/instance")
    ratio("ours / plain (memory)", ours_bytes, base_bytes, higher_is_better=False)
    goal("RSS per idle instance", ours_bytes, 1536.0, "B")

    header(f"instances: {BIG_N:,} spawned, one event each (median of {REPS})")
    big_us, big_bytes, big_total = measure("ours", BIG_N, REPS)
    figure("ours", big_us, "µs/instance")
    figure("ours", big_bytes, "B/instance")
    figure("ours, RSS growth in total", big_total / 2**20, "MiB")
    goal(f"{BIG_N:,} instances", big_total / 1e6, 200.0, "MB", note="(MB = 10^6 bytes)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--n", type=int, default=N)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n)
    else:
        main()

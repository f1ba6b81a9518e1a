"""Supervision costs: how fast a crashed instance is back at work, and what snapshots cost.

1. Crash to recovery: a handler raises a bug; the next event, already queued behind it, is
   handled by the restarted incarnation (fresh agent object, state decoded from the last
   snapshot, a 100-entry state). Timed from just before the raise to the start of the next
   handler. Baseline: the same two events with no crash (the gap between two handlers).
2. Snapshot cost: one-way events/s to one instance with per-event state snapshots on and off.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    JOB,
    Counter,
    Ping,
    UnsnappedCounter,
    bench_runtime,
    figure,
    header,
    median,
    percentile,
    ratio,
)

from appliance.events import Event
from appliance.runtime import Agent, Context
from appliance.supervisor import Supervisor

ROUNDS = 2000
MARKS: dict[str, int] = {}


class Bug(Event, frozen=True, tag="bench.bug"):
    crash: bool


class Next(Event, frozen=True, tag="bench.next"):
    pass


class Big(msgspec.Struct):
    seen: dict[str, int] = msgspec.field(default_factory=lambda: {f"k{i}": i for i in range(100)})


class Crashy(Agent):
    name = "crashy"
    description = "crashes on request"
    State = Big
    max_restarts = 10**9

    async def on_bug(self, event: Bug, ctx: Context[Big]) -> None:
        ctx.state.seen["k0"] += 1
        MARKS["before"] = time.perf_counter_ns()
        if event.crash:
            raise KeyError("a bug")

    async def on_next(self, event: Next, ctx: Context[Big]) -> None:
        MARKS["after"] = time.perf_counter_ns()
        ctx.state.seen["k1"] += 1


async def gaps(crash: bool) -> list[float]:
    """µs from the end of the first handler (or its crash) to the start of the next."""
    async with bench_runtime(Crashy) as runtime:
        Supervisor(runtime)
        ref = runtime.spawn("crashy", JOB, "crashy")
        await runtime.request(ref, Next(), job=JOB)
        out = []
        for _ in range(ROUNDS):
            runtime.publish_nowait(ref, Bug(crash=crash), job=JOB)
            await runtime.request(ref, Next(), job=JOB)  # queued behind: the first after it
            out.append((MARKS["after"] - MARKS["before"]) / 1000)
        generation = runtime.instances("crashy")[0].generation
        assert generation == (1 + ROUNDS if crash else 1), generation
        return out


async def throughput(agent: type[Agent], n: int = 100_000) -> float:
    async with bench_runtime(agent) as runtime:
        ref = runtime.spawn("counter", JOB, "counter")
        await runtime.request(ref, Ping(), job=JOB)
        start = time.perf_counter()
        for i in range(n):
            await runtime.send(ref, Ping(n=i), job=JOB)
        await runtime.request(ref, Ping(), job=JOB)
        return n / (time.perf_counter() - start)


async def main() -> None:
    # The crash warning each restart logs would time the terminal, not the runtime.
    logging.getLogger("appliance").setLevel(logging.ERROR)
    header(f"crash to recovery: {ROUNDS} crashes, the next event queued behind each")
    plain = await gaps(crash=False)
    crashed = await gaps(crash=True)
    figure("no crash: gap between handlers p50", percentile(plain, 50), "µs")
    figure("no crash: gap between handlers p99", percentile(plain, 99), "µs")
    figure("crash -> restarted instance handles p50", percentile(crashed, 50), "µs")
    figure("crash -> restarted instance handles p99", percentile(crashed, 99), "µs")
    ratio(
        "crash / no crash p50",
        percentile(crashed, 50),
        percentile(plain, 50),
        higher_is_better=False,
    )

    header("state snapshots: 100,000 one-way events to one instance (median of 5)")
    on, off = [], []
    for _ in range(5):
        on.append(await throughput(Counter))
        off.append(await throughput(UnsnappedCounter))
    figure("snapshots off", median(off), "events/s")
    figure("snapshots on (every handled event)", median(on), "events/s")
    ratio("on / off", median(on), median(off), higher_is_better=True)


if __name__ == "__main__":
    asyncio.run(main())

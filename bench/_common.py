"""What the benchmarks share: a tiny runtime on a throwaway SQLite store, a counter agent,
statistics, memory probes, child processes, and one way to print a figure against its goal.

Benchmarks are not tests: they print figures and their ratios to a baseline measured in the
same run, and exit 0 unless something crashed. Run them from the repo root:
``python bench/bench_x.py`` (``./build.sh bench`` runs them all).
"""

from __future__ import annotations

import gc
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

from appliance.events import Event, JobContext
from appliance.runtime import Agent, Context, Runtime, Store, running

JOB = JobContext("job-bench", "cmd-bench")


class Ping(Event, frozen=True, tag="bench.ping"):
    n: int = 0


class CounterState(msgspec.Struct):
    count: int = 0


class Counter(Agent):
    """The runtime side of every baseline: one typed handler updating per-(job, task) state."""

    name = "counter"
    description = "counts pings"
    State = CounterState

    async def on_ping(self, event: Ping, ctx: Context[CounterState]) -> int:
        ctx.state.count += 1
        return ctx.state.count


class UnsnappedCounter(Counter):
    """``Counter`` with state snapshots off: a reference line that shows what they cost."""

    snapshot = False


class PlainState:
    """The plain-asyncio baselines' state: an ordinary object, no runtime around it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


async def plain_handler(event: Ping, state: PlainState) -> int:
    """The same trivial state update as ``Counter.on_ping``, as a bare coroutine."""
    state.count += 1
    return state.count


@asynccontextmanager
async def bench_runtime(*agent_types: type[Agent], audit: bool = True) -> AsyncIterator[Runtime]:
    """A running Runtime with ``agent_types`` registered, on a SQLite store in a temp dir;
    ``audit=False``: without the audit trail (a reference line for what it costs)."""
    with tempfile.TemporaryDirectory(prefix="qey-bench-") as tmp:
        store = Store(Path(tmp) / "bench.db")
        try:
            runtime = Runtime(store) if audit else Runtime(store, audit_events=0)
            for cls in agent_types:
                runtime.register(cls)
            async with running(runtime):
                yield runtime
        finally:
            store.close()


# -- statistics ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# -- memory ----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now (VmRSS), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_bytes() -> int:
    """This process's highest resident set size so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss() -> int:
    """RSS after a full collection, so garbage waiting for the collector does not count."""
    gc.collect()
    return rss_bytes()


async def traced_peak(run: Callable[[], Awaitable[object]], quiet: Sequence[Runtime] = ()) -> int:
    """Bytes allocated at the peak of ``await run()`` above what was allocated before it;
    the ``quiet`` runtimes' stores commit first, so their writers' work is not in the run."""
    for runtime in quiet:
        await runtime.commit()
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


# -- timing ----------------------------------------------------------------------------------


async def timed(run: Callable[[], Awaitable[object]]) -> float:
    """Seconds taken by ``await run()``."""
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def interleaved(
    runs: Sequence[Callable[[], Awaitable[object]]], reps: int
) -> list[list[float]]:
    """Seconds of each of ``runs``, ``reps`` rounds of all of them, in ``runs``' order.

    Interleaved, so drift on a shared machine hits every variant; each round starts one
    further along, so no variant always runs right after the same one (the garbage and the
    cache state one leaves behind is paid by the next)."""
    times: list[list[float]] = [[] for _ in runs]
    order = list(range(len(runs)))
    for rep in range(reps):
        shift = rep % len(runs)
        for i in order[shift:] + order[:shift]:
            times[i].append(await timed(runs[i]))
    return times


# -- child processes -------------------------------------------------------------------------


def run_child(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> dict[str, Any]:
    """Run ``python *args`` in a fresh process and return the JSON object on its last line.

    Resident memory never shrinks much after objects are freed, so each memory figure is taken
    in a process of its own.
    """
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {list(args)} failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def emit(result: dict[str, Any]) -> None:
    """A child's answer to ``run_child``: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


# -- reporting -------------------------------------------------------------------------------


def header(title: str) -> None:
    print(f"== {title}", flush=True)


def figure(label: str, value: float, unit: str, *, note: str = "") -> None:
    print(f"  {label:<44} {value:>12,.2f} {unit}{'  ' + note if note else ''}", flush=True)


def ratio(label: str, ours: float, baseline: float, *, higher_is_better: bool) -> float:
    """Print ``ours / baseline`` and what that means; returns the ratio."""
    r = ours / baseline if baseline else float("inf")
    better = "higher" if higher_is_better else "lower"
    print(f"  {label:<44} {r:>12.2f}x  ({better} is better)", flush=True)
    return r


def paired(
    label: str, ours: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool
) -> float:
    """Print the median of each round's own ``ours[i] / baseline[i]``, with their range;
    returns it.

    Each round runs its variants back to back, so a shared machine that speeds up or slows
    down between rounds (this one's CPU moves by a third within seconds) moves both sides of
    a round's ratio alike; a ratio of medians taken across rounds pairs one variant's fast
    rounds with the other's slow ones.
    """
    ratios = [o / b if b else float("inf") for o, b in zip(ours, baseline, strict=True)]
    r = median(ratios)
    better = "higher" if higher_is_better else "lower"
    print(
        f"  {label:<44} {r:>12.2f}x  [{min(ratios):.2f}-{max(ratios):.2f} over"
        f" {len(ratios)} rounds] ({better} is better)",
        flush=True,
    )
    return r


def goal(
    label: str, value: float, limit: float, unit: str, *, at_least: bool = False, note: str = ""
) -> bool:
    """Print a figure next to its goal and whether it was met (never fails the run)."""
    met = value >= limit if at_least else value <= limit
    op = ">=" if at_least else "<="
    verdict = "MET" if met else "NOT MET"
    print(
        f"  goal {label:<39} {value:>12,.2f} {unit}  (goal {op} {limit:,.2f} {unit}): {verdict}"
        f"{'  ' + note if note else ''}",
        flush=True,
    )
    return met

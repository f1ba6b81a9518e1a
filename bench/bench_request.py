"""3. Sequential request/reply latency: p50 and p99, against plain asyncio.

After a warm-up, one caller awaits ``runtime.request(ref, Ping(), job=job)`` 10,000 times in a
row, timing each call with ``perf_counter_ns``. Baseline: a plain-queue agent (an
``asyncio.Queue`` and one consumer task awaiting the handler inline) answering through a reply
future per request. For reference, the same baseline with each wait under ``asyncio.timeout``,
as ``request`` does.

The instance has nothing queued when each request comes, so ``request`` starts its handler in
the caller's turn (as ``asyncio.eager_task_factory`` starts a Task) and the caller then gives
the loop one turn; the plain consumer task is woken through its queue. Both callers yield to
the loop once per request.

Goals: p50 <= 25 µs, p99 <= 100 µs; and issue 15's, p50 and p99 each <= 1.2x plain asyncio's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from _common import (
    JOB,
    Counter,
    Ping,
    PlainState,
    bench_runtime,
    figure,
    goal,
    header,
    median,
    paired,
    percentile,
    plain_handler,
)

WARMUP = 1_000
N = 10_000
REPS = 9

Request = Callable[[Ping], Awaitable[int]]


@asynccontextmanager
async def plain_agent(*, deadline: float | None) -> AsyncIterator[Request]:
    """A plain-asyncio agent: its queue, its consumer, and a ``request`` into it."""
    queue: asyncio.Queue[tuple[Ping, asyncio.Future[int]] | None] = asyncio.Queue()
    state = PlainState()
    loop = asyncio.get_running_loop()

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            event, reply = item
            reply.set_result(await plain_handler(event, state))

    async def request(event: Ping) -> int:
        reply: asyncio.Future[int] = loop.create_future()
        queue.put_nowait((event, reply))
        if deadline is None:
            return await reply
        async with asyncio.timeout(deadline):
            return await reply

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        try:
            yield request
        finally:
            queue.put_nowait(None)


async def latencies(request: Request) -> list[float]:
    """Microseconds per call for ``N`` sequential calls, after ``WARMUP`` untimed ones."""
    for _ in range(WARMUP):
        await request(Ping())
    clock = time.perf_counter_ns
    out: list[float] = []
    for i in range(N):
        start = clock()
        await request(Ping(n=i))
        out.append((clock() - start) / 1000)
    return out


def summary(samples: list[list[float]]) -> tuple[float, float]:
    """Median over repetitions of each repetition's p50 and p99."""
    return (
        median([percentile(s, 50) for s in samples]),
        median([percentile(s, 99) for s in samples]),
    )


def rounds(
    ours: list[list[float]], plain: list[list[float]], pct: float
) -> tuple[list[float], list[float]]:
    """Each round's ``pct`` percentile, ours and plain's, for their paired ratios."""
    return [percentile(s, pct) for s in ours], [percentile(s, pct) for s in plain]


async def main() -> None:
    header(f"request/reply: {N:,} sequential calls after {WARMUP:,} warm-up (median of {REPS})")
    plain: list[list[float]] = []
    plain_timeout: list[list[float]] = []
    ours: list[list[float]] = []
    async with bench_runtime(Counter) as runtime:
        ref = runtime.spawn("counter", JOB, "bench instance")

        def ours_request(event: Ping) -> Awaitable[int]:
            # runtime.request's own coroutine, as plain's is its request's: no wrapper around
            return runtime.request(ref, event, job=JOB)  # type: ignore[no-any-return]

        for _ in range(REPS):  # interleaved, so drift on a shared machine hits all three
            async with plain_agent(deadline=None) as request:
                plain.append(await latencies(request))
            async with plain_agent(deadline=5.0) as request:
                plain_timeout.append(await latencies(request))
            ours.append(await latencies(ours_request))

    plain_p50, plain_p99 = summary(plain)
    timeout_p50, timeout_p99 = summary(plain_timeout)
    ours_p50, ours_p99 = summary(ours)
    figure("plain asyncio p50", plain_p50, "µs")
    figure("plain asyncio p99", plain_p99, "µs")
    figure("plain asyncio + asyncio.timeout p50 (ref.)", timeout_p50, "µs")
    figure("plain asyncio + asyncio.timeout p99 (ref.)", timeout_p99, "µs")
    figure("ours (runtime.request) p50", ours_p50, "µs")
    figure("ours (runtime.request) p99", ours_p99, "µs")
    # the goals vs plain are read from each round's own ratio (_common.paired)
    p50 = paired("ours / plain p50", *rounds(ours, plain, 50), higher_is_better=False)
    p99 = paired("ours / plain p99", *rounds(ours, plain, 99), higher_is_better=False)
    goal("p50", ours_p50, 25.0, "µs")
    goal("p99", ours_p99, 100.0, "µs")
    goal("p50 vs plain", p50, 1.2, "x")
    goal("p99 vs plain", p99, 1.2, "x")


if __name__ == "__main__":
    asyncio.run(main())

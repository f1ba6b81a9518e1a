"""Delivery guarantees, checked on generated workloads through the public API."""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import InboxFull
from appliance.events import JobContext, TaskRef
from appliance.runtime import Runtime, Store, running
from tests.support import Add, Counter, CounterState, Echo, Get

pytestmark = pytest.mark.property

JOBS = [JobContext(f"job-{i}", f"cmd-{i}") for i in range(3)]

# One send: (instance index, job index, suspend after starting?, via publish_nowait?)
sends = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 2), st.booleans(), st.booleans()),
    min_size=40,  # enough to fill concurrency slots and backlogs, not only the fast path
    max_size=400,
)


async def _with_runtime(body):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "p.db")
        try:
            runtime = Runtime(store)
            runtime.register(Counter)
            runtime.register(Echo)
            async with asyncio.timeout(30), running(runtime):
                return await body(runtime)
        finally:
            store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sends)
def test_each_accepted_event_is_handled_once_in_order_and_only_in_its_job(
    plan: list[tuple[int, int, bool, bool]],
) -> None:
    async def body(runtime: Runtime) -> None:
        refs = [runtime.spawn("counter", JOBS[0], f"c{i}") for i in range(5)]
        accepted: dict[tuple[str, str], list[int]] = defaultdict(list)
        for seq, (i, j, suspend, nowait) in enumerate(plan):
            event = Add(by=1, seq=seq, suspend=suspend)
            if nowait:
                try:
                    runtime.publish_nowait(refs[i], event, job=JOBS[j])
                except InboxFull:
                    continue  # refused: must never be handled
            else:
                await runtime.send(refs[i], event, job=JOBS[j])
            accepted[(refs[i].task_id, JOBS[j].job_id)].append(seq)
        for ref in refs:  # a request queues behind everything sent before it
            for job in JOBS:
                await runtime.request(ref, Get(), job=job)
        await runtime.wait_idle()
        for ref in refs:
            for job in JOBS:
                state = runtime.state_of(ref, job.job_id)
                assert isinstance(state, CounterState)
                want = accepted.get((ref.task_id, job.job_id), [])
                assert state.seen == want  # exactly once, FIFO start order, no other job's
                assert state.count == len(want)

    asyncio.run(_with_runtime(body))


# A spawn plan: each new task's parent is an earlier task (or None: a new root) in some job.
spawn_plans = st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 40)), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(spawn_plans)
def test_the_graph_has_no_cycle_and_no_orphan(plan: list[tuple[int, int]]) -> None:
    async def body(runtime: Runtime) -> None:
        spawned: list[tuple[JobContext, TaskRef]] = []
        jobs = {}
        for j, parent in plan:
            if j not in jobs:
                jobs[j], root = runtime.submit(f"command {j}", "counter")
                spawned.append((jobs[j], root))
            job = jobs[j]
            in_job = [r for jc, r in spawned if jc == job]
            caller = in_job[parent % len(in_job)] if parent >= 0 else None
            spawned.append((job, runtime.spawn("counter", job, "child", caller=caller)))
        for job in jobs.values():
            tree = await runtime.graph.tree(job.job_id)
            ids = {n.task_id for n in tree.tasks}
            assert ids == {r.task_id for jc, r in spawned if jc == job}
            for node in tree.tasks:
                assert node.parent_task_id is None or node.parent_task_id in ids  # no orphan
                _, chain = await runtime.graph.chain(node.task_id)
                assert len({n.task_id for n in chain}) == len(chain)  # no cycle
                assert chain[-1].parent_task_id is None  # ends at a root

    asyncio.run(_with_runtime(body))

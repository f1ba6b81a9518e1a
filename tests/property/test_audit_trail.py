"""The audit trail reads back what it was given, whatever the mix of single events and runs,
chunk and block boundaries, and commits in between."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.events import Envelope, JobContext, TaskRef
from appliance.runtime import Store, audit
from appliance.runtime.audit import AuditTrail
from appliance.runtime.clock import FakeClock
from tests.support import Add

pytestmark = pytest.mark.property

JOBS = ["job-0", "job-1", "job-2"]
TASKS = [TaskRef("counter", f"t{i}") for i in range(3)]
OUTCOMES = ["done", "failed", "cancelled"]

# One step: a single event (job, task, outcome), a run of done events (job, task, length),
# or a commit of the store
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("one"),
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from(OUTCOMES),
        ),
        st.tuples(st.just("run"), st.integers(0, 2), st.integers(0, 2), st.integers(1, 40)),
        st.just(("commit", 0, 0, 0)),
    ),
    max_size=60,
)

Seen = tuple[str, str, str, int]  # job id, task id, outcome, the event's seq


def _replay(trail: AuditTrail, plan: list[tuple[str, int, int, Any]]) -> list[Seen | None]:
    """Feed ``plan`` to the trail; what it should read back, with None where to commit."""
    expected: list[Seen | None] = []
    seq = 0
    for kind, job, task, extra in plan:
        ref = TASKS[task]
        if kind == "one":
            env = Envelope(event=Add(seq=seq), job=JobContext(JOBS[job], "c"), target=ref)
            trail.record(env, ref, extra)
            expected.append((JOBS[job], ref.task_id, extra, seq))
            seq += 1
        elif kind == "run":
            events = [Add(seq=n) for n in range(seq, seq + extra)]
            trail.record_run(events, 1.0, JOBS[job], str(ref))
            trail.grew()  # as the runtime does after each batch it dispatched
            expected += [(JOBS[job], ref.task_id, "done", n) for n in range(seq, seq + extra)]
            seq += extra
        else:
            expected.append(None)
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sampled_from([64, 512, 8192]), st.sampled_from([8, 100, 2048]))
def test_the_trail_reads_back_every_event_in_order_by_job_and_by_task(
    plan: list[tuple[str, int, int, Any]], chunk: int, block: int
) -> None:
    async def body(store: Store) -> None:
        trail = AuditTrail(store, FakeClock())
        expected: list[Seen] = []
        for seen in _replay(trail, plan):
            if seen is None:
                await store.flush()
            else:
                expected.append(seen)
        await store.flush()

        def read(entries: list[audit.AuditEntry]) -> list[Seen]:
            return [(e.job_id, e.task_id, e.outcome, e.event["seq"]) for e in entries]

        assert read(await trail.entries(limit=10_000)) == expected
        for job_id in JOBS:
            mine = [seen for seen in expected if seen[0] == job_id]
            assert read(await trail.entries(job_id=job_id, limit=10_000)) == mine
        for ref in TASKS:
            mine = [seen for seen in expected if seen[1] == ref.task_id]
            assert read(await trail.entries(task_id=ref.task_id, limit=10_000)) == mine

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "a.db")
            try:
                await body(store)
            finally:
                store.close()

    with mock.patch.object(audit, "CHUNK", chunk), mock.patch.object(audit, "BLOCK", block):
        asyncio.run(main())

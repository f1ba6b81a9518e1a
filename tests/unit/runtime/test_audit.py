"""The audit trail: every event a handler took is on disk with how the handler ended,
readable by job and by task, and the table keeps only its newest rows."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import pytest

from appliance.events import Envelope, Event, JobContext, TaskRef
from appliance.runtime import Runtime, Store
from appliance.runtime.audit import BLOCK, CHUNK, FORMAT, KEYS, TABLE, AuditTrail
from appliance.runtime.clock import FakeClock
from tests.support import Add, Crash

pytestmark = pytest.mark.unit


def handed(job_id: str, event: Event) -> Envelope[Event]:
    return Envelope(event=event, job=JobContext(job_id, "c"), target=TaskRef("counter", "t"))


async def test_each_handled_event_is_kept_with_its_task_and_how_it_ended(
    runtime: Runtime, job: JobContext
) -> None:
    a = runtime.spawn("counter", job, "a")
    b = runtime.spawn("counter", job, "b")
    await runtime.request(a, Add(by=2), job=job)
    await runtime.request(b, Add(by=5, seq=1), job=job)
    runtime.publish_nowait(a, Crash(message="kaput"), job=job)
    await runtime.wait_idle(5)
    await runtime.commit()

    assert runtime.audit is not None
    mine = await runtime.audit.entries(job_id=job.job_id)
    handed = [(e.task_id, e.kind, e.outcome) for e in mine if e.kind != "task.start"]
    assert handed == [
        (a.task_id, "test.add", "done"),
        (b.task_id, "test.add", "done"),
        (a.task_id, "test.crash", "failed"),
    ]
    only_b = await runtime.audit.entries(task_id=b.task_id)
    assert [e.event for e in only_b if e.kind == "test.add"] == [
        {"kind": "test.add", "by": 5, "seq": 1, "suspend": False}
    ]
    assert all(e.job_id == job.job_id and e.agent_type == "counter" for e in mine)


async def test_handlers_that_wait_are_kept_too_across_chunks(
    runtime: Runtime, job: JobContext
) -> None:
    a = runtime.spawn("counter", job, "a")
    # each finishes in its own Task, outside the batch that started it; CHUNK is in bytes
    n = CHUNK // len(msgspec.msgpack.encode(Add(seq=0, suspend=True))) + 10
    for seq in range(n):
        await runtime.send(a, Add(seq=seq, suspend=True), job=job)
    await runtime.wait_idle(5)
    await runtime.commit()

    assert runtime.audit is not None
    kept = await runtime.audit.entries(task_id=a.task_id, limit=10_000)
    added = [e for e in kept if e.kind == "test.add"]
    assert sorted(e.event["seq"] for e in added) == list(range(n))
    assert {e.outcome for e in added} == {"done"}


def count(db: Any, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_the_trail_keeps_its_newest_blocks_and_their_index(store: Store) -> None:
    trail = AuditTrail(store, FakeClock(), limit=2 * BLOCK)
    for job in ("job-1", "job-2", "job-3"):  # a block's worth each
        for n in range(BLOCK):
            trail.record(handed(job, Add(seq=n)), TaskRef("counter", f"t-{job}"), "done")
        await store.flush()
    assert await trail.entries(job_id="job-1") == []  # the oldest block is gone
    kept = await trail.entries(job_id="job-3", limit=BLOCK)
    assert [(e.task_id, e.event["seq"]) for e in kept] == [("t-job-3", n) for n in range(BLOCK)]
    assert len(await trail.entries(limit=10 * BLOCK)) == 2 * BLOCK
    assert await store.read(lambda db: (count(db, TABLE), count(db, KEYS))) == (2, 2)


async def test_a_quiet_trail_fills_its_block_across_commits(store: Store) -> None:
    trail = AuditTrail(store, FakeClock(), limit=2 * BLOCK)
    for job in ("job-1", "job-2", "job-1"):  # a few events a commit, as an idle appliance
        for n in range(3):
            trail.record(handed(job, Add(seq=n)), TaskRef("counter", "t1"), "done")
        await store.flush()
    expected = ["job-1"] * 3 + ["job-2"] * 3 + ["job-1"] * 3
    assert [e.job_id for e in await trail.entries()] == expected
    # one block, written again at each commit; each of its pairs indexed once
    assert await store.read(lambda db: (count(db, TABLE), count(db, KEYS))) == (1, 2)


async def test_a_run_of_events_reads_back_as_if_each_was_recorded_alone(store: Store) -> None:
    clock = FakeClock()
    trail = AuditTrail(store, clock)
    ref = TaskRef("counter", "t1")
    # runs of 1, 15 and 16 events: array headers of one byte and (from 16) three
    runs = [
        [Add(seq=seq) for seq in range(start, start + size)]
        for start, size in ((0, 1), (1, 15), (16, 16))
    ]
    trail.record(handed("job-1", Add(seq=-1)), ref, "failed")
    for events in runs:
        trail.record_run(events, clock.now(), "job-1", str(ref))
    trail.record(handed("job-1", Add(seq=99)), ref, "done")
    await store.flush()

    entries = await trail.entries()
    assert [(e.event["seq"], e.outcome) for e in entries] == (
        [(-1, "failed")] + [(seq, "done") for seq in range(32)] + [(99, "done")]
    )
    assert {(e.job_id, e.task_id, e.agent_type) for e in entries} == {("job-1", "t1", "counter")}


async def test_a_full_block_is_sealed_at_once_and_a_job_spans_blocks(store: Store) -> None:
    trail = AuditTrail(store, FakeClock())
    for n in range(BLOCK + 10):
        task = TaskRef("counter", "t1" if n % 2 else "t2")
        trail.record(handed("job-1", Add(seq=n)), task, "done")
    await store.flush()
    every = await trail.entries(job_id="job-1", limit=10_000)
    assert [e.event["seq"] for e in every] == list(range(BLOCK + 10))
    newest = await trail.entries(task_id="t1", limit=3)
    assert [e.event["seq"] for e in newest] == [BLOCK + 5, BLOCK + 7, BLOCK + 9]


async def test_a_block_of_the_first_format_still_reads_beside_new_ones(store: Store) -> None:
    # as the trail wrote blocks before its format marker: a bare array of 7-item entries
    old = [
        (1.0, "job-1", "t-old", "counter", "test.add", "done", {"kind": "test.add", "seq": 0}),
        (2.0, "job-1", "t-old", "counter", "test.crash", "failed", {"kind": "test.crash"}),
    ]
    store.append(TABLE, (1, 1.0, msgspec.msgpack.encode(old)))
    store.append(KEYS, (1, "job-1", "t-old"))
    await store.flush()
    trail = AuditTrail(store, FakeClock())  # carries on after the stored block
    trail.record(handed("job-1", Add(seq=1)), TaskRef("counter", "t-new"), "done")
    await store.flush()

    every = await trail.entries(job_id="job-1")
    assert [(e.task_id, e.agent_type, e.kind, e.outcome) for e in every] == [
        ("t-old", "counter", "test.add", "done"),
        ("t-old", "counter", "test.crash", "failed"),
        ("t-new", "counter", "test.add", "done"),
    ]
    assert [e.event for e in await trail.entries(task_id="t-old")] == [
        {"kind": "test.add", "seq": 0},
        {"kind": "test.crash"},
    ]


async def test_a_block_of_uncompressed_chunks_still_reads_beside_new_ones(store: Store) -> None:
    # as the trail wrote blocks of format 2: the same chunks, by column, not compressed
    chunk = (
        [1.0, 2.0],
        "job-1",  # a column of one value, stored once
        "counter/t-old",
        ["done", "failed"],
        [{"kind": "test.add", "seq": 0}, {"kind": "test.crash"}],
    )
    store.append(TABLE, (1, 1.0, msgspec.msgpack.encode((2, [chunk]))))
    store.append(KEYS, (1, "job-1", "t-old"))
    await store.flush()
    trail = AuditTrail(store, FakeClock())
    trail.record(handed("job-1", Add(seq=1)), TaskRef("counter", "t-new"), "done")
    await store.flush()

    every = await trail.entries(job_id="job-1")
    assert [(e.at, e.task_id, e.kind, e.outcome) for e in every] == [
        (1.0, "t-old", "test.add", "done"),
        (2.0, "t-old", "test.crash", "failed"),
        (FakeClock().now(), "t-new", "test.add", "done"),
    ]


async def test_a_block_of_zlib_compressed_chunks_still_reads_beside_new_ones(
    store: Store,
) -> None:
    # as the trail wrote blocks of format 3: the same chunks, each compressed with zlib
    chunk = (
        [1.0, 2.0],
        "job-1",
        "counter/t-old",
        "done",
        [{"kind": "test.add", "seq": 0}, {"kind": "test.add", "seq": 1}],
    )
    squeezed = zlib.compress(msgspec.msgpack.encode(chunk), 1)
    store.append(TABLE, (1, 1.0, msgspec.msgpack.encode((3, [squeezed]))))
    store.append(KEYS, (1, "job-1", "t-old"))
    await store.flush()
    trail = AuditTrail(store, FakeClock())
    trail.record(handed("job-1", Add(seq=2)), TaskRef("counter", "t-new"), "done")
    await store.flush()

    every = await trail.entries(job_id="job-1")
    assert [(e.at, e.task_id, e.event["seq"]) for e in every] == [
        (1.0, "t-old", 0),
        (2.0, "t-old", 1),
        (FakeClock().now(), "t-new", 2),
    ]


async def test_a_block_of_an_unknown_format_is_a_clear_error(store: Store) -> None:
    store.append(TABLE, (1, 1.0, msgspec.msgpack.encode((99, []))))
    store.append(KEYS, (1, "job-1", "t"))
    await store.flush()
    trail = AuditTrail(store, FakeClock())
    with pytest.raises(ValueError, match="unknown format 99"):
        await trail.entries(job_id="job-1")


async def test_a_chunk_whose_counts_do_not_match_its_events_is_a_clear_error(
    store: Store,
) -> None:
    from backports.zstd import compress

    chunk = ([1.0], "job-1", "counter/t", "done", [3], [{"kind": "test.add"}])
    squeezed = compress(msgspec.msgpack.encode(chunk))
    store.append(TABLE, (1, 1.0, msgspec.msgpack.encode((FORMAT, [squeezed]))))
    store.append(KEYS, (1, "job-1", "t"))
    await store.flush()
    trail = AuditTrail(store, FakeClock())
    with pytest.raises(ValueError, match="chunk of 1 events counted as 3"):
        await trail.entries(job_id="job-1")


async def test_a_block_of_several_jobs_and_tasks_indexes_only_the_pairs_it_holds(
    store: Store,
) -> None:
    trail = AuditTrail(store, FakeClock())
    for job, task in (("job-1", "t1"), ("job-2", "t2"), ("job-1", "t3")):
        trail.record(handed(job, Add()), TaskRef("counter", task), "done")
    await store.flush()
    pairs = await store.read(
        lambda db: db.execute(f"SELECT job_id, task_id FROM {KEYS}").fetchall()
    )
    assert sorted(pairs) == [("job-1", "t1"), ("job-1", "t3"), ("job-2", "t2")]
    assert [e.task_id for e in await trail.entries(job_id="job-1")] == ["t1", "t3"]

"""Dispatch of one-way events: a run of events to one task, of one job and one sender, shares
one delivery in the runtime's queue (``Runtime._drain``). Whatever rides on another event's
delivery must still reach its handler in order, with an envelope of its own."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import msgspec
import pytest

from appliance.errors import AgentTypeFailed, UnknownTask
from appliance.events import Event, JobContext, TaskRef
from appliance.runtime import Agent, Context, Runtime, Store, running

pytestmark = pytest.mark.unit

Seen = tuple[int, str, str | None, str | None]  # seq, job id, sender, caller task id


class Note(Event, frozen=True, tag="test.dispatch.note"):
    seq: int
    wait: bool = False  # really wait once, so the next notes queue behind a busy instance
    fail: bool = False


class Relay(Event, frozen=True, tag="test.dispatch.relay"):
    to: str  # the task id to pass a note on to
    seq: int


class Recorder(Agent):
    name = "recorder"
    description = "Records the envelope of every note it handles; relays notes on."
    State = msgspec.Struct
    concurrency = 2
    inbox_size = 1024

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def on_note(self, event: Note, ctx: Context[msgspec.Struct]) -> None:
        env = ctx.envelope
        handed = env.event  # its own envelope's event, even if it rode on another's delivery
        seq = handed.seq if isinstance(handed, Note) else -1
        self.seen.append((seq, env.job.job_id, env.sender, env.caller_task_id))
        if event.wait:
            await asyncio.sleep(0)
        if event.fail:
            raise RuntimeError(f"note {event.seq} fails")

    async def on_relay(self, event: Relay, ctx: Context[msgspec.Struct]) -> None:
        ctx.publish_nowait(TaskRef("recorder", event.to), Note(seq=event.seq))


@pytest.fixture
async def runtime(store: Store) -> AsyncIterator[Runtime]:
    rt = Runtime(store)
    rt.register(Recorder)
    async with running(rt):
        yield rt


def seen_by(runtime: Runtime, ref: TaskRef) -> list[Seen]:
    inst = runtime.live(ref.task_id)
    assert inst is not None
    agent = inst.agent
    assert isinstance(agent, Recorder)
    return agent.seen


async def test_interleaved_runs_keep_each_tasks_order_and_each_events_envelope(
    runtime: Runtime, job: JobContext
) -> None:
    other_job = JobContext("job-other", "cmd-other")
    a = runtime.spawn("recorder", job, "a")
    b = runtime.spawn("recorder", job, "b")
    plan: list[tuple[TaskRef, JobContext, str | None]] = (
        [(a, job, None)] * 3
        + [(a, job, "panel")] * 2
        + [(b, job, None)] * 2
        + [(a, other_job, None)] * 2
        + [(a, job, None)] * 3
        + [(b, job, "panel")]
    )
    for seq, (ref, on_job, sender) in enumerate(plan):
        runtime.publish_nowait(ref, Note(seq=seq), job=on_job, sender=sender)
    assert await runtime.wait_idle(5)

    for ref in (a, b):
        expected = [
            (seq, on_job.job_id, sender, None)
            for seq, (to, on_job, sender) in enumerate(plan)
            if to == ref
        ]
        assert seen_by(runtime, ref) == expected


async def test_a_run_goes_on_after_its_queue_ran_dry(runtime: Runtime, job: JobContext) -> None:
    ref = runtime.spawn("recorder", job, "again")
    for seq in range(3):
        runtime.publish_nowait(ref, Note(seq=seq), job=job)
        assert await runtime.wait_idle(5)  # handled: the next is queued as nothing else is
    assert [s for s, *_ in seen_by(runtime, ref)] == [0, 1, 2]


async def test_events_published_by_handlers_mid_batch_carry_their_own_caller(
    runtime: Runtime, job: JobContext
) -> None:
    sink = runtime.spawn("recorder", job, "sink")
    relays = [runtime.spawn("recorder", job, f"relay {n}") for n in range(2)]
    for seq in range(6):  # the relays alternate: each one's note names it as the caller
        runtime.publish_nowait(relays[seq % 2], Relay(to=sink.task_id, seq=seq), job=job)
    for seq in range(6, 9):  # then the sink straight from outside, as a run of its own
        runtime.publish_nowait(sink, Note(seq=seq), job=job)
    assert await runtime.wait_idle(5)

    relayed = [(s, c) for s, _, _, c in seen_by(runtime, sink) if s < 6]
    assert relayed == [(seq, relays[seq % 2].task_id) for seq in range(6)]
    direct = [(s, sender, c) for s, _, sender, c in seen_by(runtime, sink) if s >= 6]
    assert direct == [(seq, None, None) for seq in range(6, 9)]


async def test_a_run_behind_a_busy_instance_waits_in_its_backlog_in_order(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "busy")
    for seq in range(40):  # every one waits once: at most two in flight, the rest held back
        runtime.publish_nowait(ref, Note(seq=seq, wait=True), job=job, sender="cli")
    assert await runtime.wait_idle(5)
    assert seen_by(runtime, ref) == [(seq, job.job_id, "cli", None) for seq in range(40)]


async def test_a_traffic_watch_started_mid_run_sees_every_later_event(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "watched")
    for seq in range(3):
        runtime.publish_nowait(ref, Note(seq=seq), job=job)
    with runtime.watch(traffic=True, limit=100) as watch:
        for seq in range(3, 6):
            runtime.publish_nowait(ref, Note(seq=seq), job=job)
        async with asyncio.timeout(5):
            got = [(await watch.next()).event for _ in range(3)]
    assert got == [Note(seq=seq) for seq in range(3, 6)]
    assert await runtime.wait_idle(5)
    assert [s for s, *_ in seen_by(runtime, ref)] == list(range(6))


async def test_the_audit_trail_keeps_a_runs_events_with_how_each_ended(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "audited")
    fails, waits = {2, 7}, {5}
    for seq in range(10):
        note = Note(seq=seq, fail=seq in fails, wait=seq in waits)
        runtime.publish_nowait(ref, note, job=job)
    assert await runtime.wait_idle(5)
    await runtime.commit()
    assert runtime.audit is not None
    entries = await runtime.audit.entries(task_id=ref.task_id)
    notes = [(e.event["seq"], e.outcome) for e in entries if e.kind == "test.dispatch.note"]
    assert sorted(notes) == [(s, "failed" if s in fails else "done") for s in range(10)]
    # in the order they ended: those that did not wait in the order they came, and the one
    # that waited after the one started next (it was still waiting when that one ended)
    ended = [s for s, _ in notes]
    assert [s for s in ended if s not in waits] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert ended.index(5) > ended.index(6)


async def test_an_event_of_another_caller_under_the_same_sender_gets_its_own_envelope(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "callers")
    first, second = TaskRef("recorder", "caller-1"), TaskRef("recorder", "caller-2")
    for seq, caller in enumerate((first, first, second)):
        runtime.publish_nowait(ref, Note(seq=seq), job=job, caller=caller, sender="panel")
    assert await runtime.wait_idle(5)
    assert seen_by(runtime, ref) == [
        (0, job.job_id, "panel", "caller-1"),
        (1, job.job_id, "panel", "caller-1"),
        (2, job.job_id, "panel", "caller-2"),
    ]


async def test_nothing_rides_on_a_delivery_to_a_stopped_instance(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "stopped")
    assert await runtime.wait_idle(5)
    runtime.publish_nowait(ref, Note(seq=0), job=job)  # queued: the next would ride on it
    runtime.stop_instance(ref)
    with pytest.raises(UnknownTask):
        runtime.publish_nowait(ref, Note(seq=1), job=job)


async def test_nothing_rides_on_a_delivery_to_a_type_marked_failed(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("recorder", job, "failed type")
    assert await runtime.wait_idle(5)
    runtime.publish_nowait(ref, Note(seq=0), job=job)
    runtime.failures.fail_type("recorder", "a test marks it failed")
    with pytest.raises(AgentTypeFailed):
        runtime.publish_nowait(ref, Note(seq=1), job=job)
    runtime.reset_type("recorder")


async def test_events_for_equal_refs_ride_as_for_the_same_ref(
    runtime: Runtime, job: JobContext
) -> None:
    """An edge decodes a new TaskRef and JobContext for each event it is sent: equal, not the
    same objects. Such a stream still rides on one delivery, each event taking a slot in the
    queue and no envelope of its own while it waits."""
    ref = runtime.spawn("recorder", job, "edge")
    assert await runtime.wait_idle(5)
    count = 500
    given = [
        (TaskRef(ref.agent_type, ref.task_id), JobContext(job.job_id, job.command_id), Note(seq=i))
        for i in range(count)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for target, job_again, note in given:
            runtime.publish_nowait(target, note, job=job_again, sender="edge")
        queued = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # a slot in the queue is a pointer; an envelope and a delivery each would be 200 bytes
    assert queued / count < 48
    assert await runtime.wait_idle(5)
    assert [seq for seq, *_ in seen_by(runtime, ref)] == list(range(count))

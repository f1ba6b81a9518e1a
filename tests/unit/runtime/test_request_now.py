"""A request to an instance with nothing queued and room to run starts its handler at once,
in the caller's turn (``Runtime.request``), rather than through the runtime's queue. It must
still keep each task's order, give the loop its turns, fail and time out as before, and be
seen by traffic watches and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from appliance.errors import HandlerFailed, RequestTimeout
from appliance.events import Event, JobContext, TaskRef
from appliance.runtime import Agent, Context, Runtime, Store, running

pytestmark = pytest.mark.unit


class Ask(Event, frozen=True, tag="test.now.ask"):
    seq: int
    fail: bool = False
    hang: bool = False


class Forward(Event, frozen=True, tag="test.now.forward"):
    to: str  # the task id to ask, from inside this handler's first step
    seq: int


class Answerer(Agent):
    name = "answerer"
    description = "Answers each ask with its number, in the order it was handed them."
    State = msgspec.Struct

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def on_ask(self, event: Ask, ctx: Context[msgspec.Struct]) -> int:
        self.seen.append(event.seq)
        if event.fail:
            raise ValueError(f"ask {event.seq} fails")
        if event.hang:
            await asyncio.sleep(0.5)
        return event.seq

    async def on_forward(self, event: Forward, ctx: Context[msgspec.Struct]) -> int:
        answer: int = await ctx.request(TaskRef("answerer", event.to), Ask(seq=event.seq))
        return answer + 1000


@pytest.fixture
async def runtime(store: Store) -> AsyncIterator[Runtime]:
    rt = Runtime(store)
    rt.register(Answerer)
    async with running(rt):
        yield rt


def seen_by(runtime: Runtime, ref: TaskRef) -> list[int]:
    inst = runtime.live(ref.task_id)
    assert inst is not None and isinstance(inst.agent, Answerer)
    return inst.agent.seen


async def test_a_request_is_handled_after_the_events_queued_before_it(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("answerer", job, "ordered")
    assert await runtime.wait_idle(5)  # its start event handled: nothing queued
    runtime.publish_nowait(ref, Ask(seq=1), job=job)
    assert await runtime.request(ref, Ask(seq=2), job=job) == 2
    assert await runtime.request(ref, Ask(seq=3), job=job) == 3
    assert seen_by(runtime, ref) == [1, 2, 3]


async def test_requests_answered_at_once_still_give_other_tasks_their_turns(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("answerer", job, "busy")
    assert await runtime.wait_idle(5)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other())
    await asyncio.sleep(0)
    try:
        for seq in range(100):
            await runtime.request(ref, Ask(seq=seq), job=job)
    finally:
        ticker.cancel()
    assert turns >= 100  # a turn of the loop per request, as if each had waited


async def test_a_handler_asking_another_from_its_first_step_gets_its_answer(
    runtime: Runtime, job: JobContext
) -> None:
    asker = runtime.spawn("answerer", job, "asker")
    asked = runtime.spawn("answerer", job, "asked")
    assert await runtime.wait_idle(5)
    forward = Forward(to=asked.task_id, seq=7)
    assert await runtime.request(asker, forward, job=job, timeout=5) == 1007
    assert seen_by(runtime, asked) == [7]


async def test_a_handler_that_raises_at_once_fails_the_request_and_serves_the_next(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("answerer", job, "fails once")
    assert await runtime.wait_idle(5)
    with pytest.raises(HandlerFailed, match="ask 1 fails"):
        await runtime.request(ref, Ask(seq=1, fail=True), job=job)
    assert await runtime.request(ref, Ask(seq=2), job=job) == 2


async def test_a_handler_that_waits_is_still_held_to_the_requests_timeout(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("answerer", job, "hangs")
    assert await runtime.wait_idle(5)
    with pytest.raises(RequestTimeout, match=r"did not reply within 0\.05s"):
        await runtime.request(ref, Ask(seq=1, hang=True), job=job, timeout=0.05)


async def test_a_request_started_at_once_is_watched_and_audited(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("answerer", job, "watched")
    assert await runtime.wait_idle(5)
    with runtime.watch(traffic=True, limit=10) as watch:
        assert await runtime.request(ref, Ask(seq=4), job=job) == 4
        async with asyncio.timeout(5):
            assert (await watch.next()).event == Ask(seq=4)
    assert await runtime.request(ref, Ask(seq=5), job=job) == 5  # no watch: at once
    await runtime.commit()
    assert runtime.audit is not None
    entries = await runtime.audit.entries(task_id=ref.task_id)
    asks = [(e.event["seq"], e.outcome) for e in entries if e.kind == "test.now.ask"]
    assert asks == [(4, "done"), (5, "done")]


async def test_the_store_is_told_of_the_audit_entry_of_a_request_answered_at_once(
    runtime: Runtime, job: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = runtime.spawn("answerer", job, "committed")
    assert await runtime.wait_idle(5)
    await runtime.commit()  # the trail handed over: its next entry tells the store again
    told: list[None] = []
    wake = runtime.store.wake
    monkeypatch.setattr(runtime.store, "wake", lambda: told.append(wake()))
    assert await runtime.request(ref, Ask(seq=1), job=job) == 1
    assert told  # so its writer commits it, as it would after a queued event

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from appliance.errors import AgentTypeFailed, HandlerFailed
from appliance.events import (
    EventRetried,
    EventShed,
    JobContext,
    PoolScaled,
    TypeRef,
)
from appliance.runtime import FakeClock, Runtime
from appliance.supervisor import Supervisor
from tests.unit.supervisor.conftest import (
    GATE,
    Bump,
    Corrupt,
    Flaky,
    Hold,
    Read,
    Reject,
    Starve,
    Stubborn,
)

pytestmark = pytest.mark.unit

Supervised = tuple[Runtime, Supervisor]


async def _records(runtime: Runtime, kind: str) -> list[dict[str, Any]]:
    return await runtime.store.read(
        lambda db: [r for r in db.query("SELECT * FROM journal WHERE kind = ?", [kind])]
    )


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_transient_error_is_retried_with_growing_jittered_backoff(
    supervised: Supervised, fake_clock: FakeClock, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    with runtime.watch(kinds=["event.retried"]) as watch:
        reply = asyncio.ensure_future(runtime.request(ref, Flaky(key="a", fails=2), job=job))
        first = (await watch.next()).event
        await fake_clock.advance(first.delay_s)  # type: ignore[attr-defined]
        second = (await watch.next()).event
        await fake_clock.advance(second.delay_s)  # type: ignore[attr-defined]
        assert await reply == "ok"
    assert isinstance(first, EventRetried) and isinstance(second, EventRetried)
    assert (first.attempt, second.attempt) == (1, 2)
    assert 0.5 <= first.delay_s <= 1.0 and 1.0 <= second.delay_s <= 2.0


async def test_a_transient_error_gives_up_after_its_attempts(
    supervised: Supervised, fake_clock: FakeClock, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    reply = asyncio.ensure_future(
        runtime.request(ref, Flaky(key="b", fails=99), job=job, timeout=60)
    )
    for _ in range(3):
        await _settle()
        await fake_clock.advance(10)
    with pytest.raises(HandlerFailed, match="try 3 failed"):
        await reply
    assert len(await _records(runtime, "event.retried")) == 2


async def test_a_fatal_error_restarts_the_instance_with_its_last_committed_state(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    assert await runtime.request(ref, Bump(by=2), job=job) == 2
    with pytest.raises(HandlerFailed, match="a bug"):
        await runtime.request(ref, Corrupt(), job=job)
    assert await runtime.request(ref, Read(), job=job) == 2  # the +1000 died with the bug
    [info] = runtime.instances("worker")
    assert info.generation == 2
    [restart] = await _records(runtime, "instance.restarted")
    assert restart["task_id"] == ref.task_id and "KeyError" in restart["body"]
    [status] = await _records(runtime, "task.status")
    assert (status["task_id"], '"status":"restarted"' in status["body"]) == (ref.task_id, True)


async def test_events_in_flight_at_a_restart_take_effect_once_in_the_new_incarnation(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    for _ in range(3):
        runtime.publish_nowait(ref, Hold(), job=job)
    await _settle()
    with pytest.raises(HandlerFailed):
        await runtime.request(ref, Corrupt(), job=job)
    [restart] = await _records(runtime, "instance.restarted")
    assert '"requeued":3' in restart["body"]
    GATE.set()
    await _settle()
    assert await runtime.request(ref, Read(), job=job) == 3


async def test_a_rejected_event_fails_alone_and_restarts_nothing(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    with pytest.raises(HandlerFailed, match="bad input"):
        await runtime.request(ref, Reject(), job=job)
    assert runtime.instances("worker")[0].generation == 1


async def test_a_rejected_event_is_recorded_as_refused_not_as_a_crash(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    with pytest.raises(HandlerFailed, match="bad input"):
        await runtime.request(ref, Reject(), job=job)
    await runtime.commit()
    [refused] = await _records(runtime, "event.refused")
    assert '"error_type":"ValueError"' in refused["body"] and "bad input" in refused["body"]
    assert await _records(runtime, "handler.crashed") == [] and runtime.crashed == 0
    [info] = runtime.instances("worker")
    assert info.fault is None  # the instance is fine


async def test_a_hung_handler_is_cut_off_and_its_instance_restarted(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    ref = runtime.spawn("worker", job, "w")
    with pytest.raises(HandlerFailed, match="HandlerHung"):
        await runtime.request(ref, Hold(), job=job, timeout=5)
    assert runtime.instances("worker")[0].generation == 2


async def test_restart_intensity_escalates_to_the_group_then_fails_the_type(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    a = runtime.spawn("worker", job, "a")
    b = runtime.spawn("worker", job, "b")
    for _ in range(3):  # within max_restarts=3: one-for-one
        with pytest.raises(HandlerFailed):
            await runtime.request(a, Corrupt(), job=job)
    gens = {i.ref.task_id: i.generation for i in runtime.instances("worker")}
    assert gens == {a.task_id: 4, b.task_id: 1}
    with pytest.raises(HandlerFailed):  # the 4th breaks the intensity: the group restarts
        await runtime.request(a, Corrupt(), job=job)
    gens = {i.ref.task_id: i.generation for i in runtime.instances("worker")}
    assert gens == {a.task_id: 5, b.task_id: 2}
    for _ in range(3):  # and breaking it again marks the type failed
        with pytest.raises(HandlerFailed):
            await runtime.request(a, Corrupt(), job=job)
    assert "restarted more than 3 times" in runtime.failed_types()["worker"]
    with pytest.raises(AgentTypeFailed):
        runtime.publish_nowait(b, Bump(), job=job)
    with pytest.raises(AgentTypeFailed):
        runtime.spawn("worker", job, "c")
    runtime.reset_type("worker")
    assert await runtime.request(b, Bump(), job=job) == 1
    assert len(await _records(runtime, "agent_type.failed")) == 1


async def test_one_for_all_restarts_every_instance_of_the_type_in_the_job(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    other_job = JobContext("job-other", "cmd-other")
    a = runtime.spawn("team", job, "a")
    runtime.spawn("team", job, "b")
    runtime.spawn("team", other_job, "elsewhere")
    with pytest.raises(HandlerFailed):
        await runtime.request(a, Corrupt(), job=job)
    gens = sorted((i.objective, i.generation) for i in runtime.instances("team"))
    assert gens == [("a", 2), ("b", 2), ("elsewhere", 1)]


async def test_an_instance_that_makes_no_progress_is_restarted(
    supervised: Supervised, fake_clock: FakeClock, job: JobContext
) -> None:
    runtime, supervisor = supervised
    ref = runtime.spawn("worker", job, "w")
    runtime.publish_nowait(ref, Stubborn(), job=job)
    runtime.publish_nowait(ref, Bump(), job=job)
    await _settle()
    supervisor.tick()
    await fake_clock.advance(0.5)  # less than twice the 0.3 s deadline: still patient
    supervisor.tick()
    assert runtime.instances("worker")[0].generation == 1
    await fake_clock.advance(0.5)
    supervisor.tick()
    assert runtime.instances("worker")[0].generation == 2
    [restart] = await _records(runtime, "instance.restarted")
    assert "no progress" in restart["body"]


async def test_a_resource_error_sheds_the_event_and_grows_the_pool(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    with runtime.watch(kinds=["pool.scaled", "event.shed"]) as watch:
        with pytest.raises(HandlerFailed, match="no connections"):
            await runtime.request(TypeRef("worker"), Starve(), job=job)
        seen = {type(e.event) for e in [await watch.next(), await watch.next()]}
    assert seen == {PoolScaled, EventShed}
    assert len(runtime.pool_loads("worker")) == 2


async def test_pools_grow_under_load_and_shrink_when_idle(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, supervisor = supervised
    runtime.add_to_pool("worker", job)
    ref = runtime.instances("worker")[0].ref
    runtime.publish_nowait(ref, Hold(), job=job)  # utilisation 1.0
    await _settle()
    for _ in range(4):
        supervisor.tick()
    assert len(runtime.pool_loads("worker")) == 2
    GATE.set()
    await _settle()
    for _ in range(20):
        supervisor.tick()
    assert len(runtime.pool_loads("worker")) == 1  # back to pool_min, not below
    scaled = [r["body"] for r in await _records(runtime, "pool.scaled")]
    assert ['"direction":"up"' in b for b in scaled] == [True, False]


async def test_a_pool_size_an_admin_pinned_is_left_alone(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, supervisor = supervised
    for _ in range(3):
        runtime.add_to_pool("worker", job)
    runtime.pin_pool("worker", 3)
    for _ in range(20):  # idle: without the pin it would shrink to pool_min
        supervisor.tick()
    assert len(runtime.pool_loads("worker")) == 3
    runtime.pin_pool("worker", None)
    for _ in range(20):
        supervisor.tick()
    assert len(runtime.pool_loads("worker")) < 3

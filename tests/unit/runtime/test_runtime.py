from __future__ import annotations

import asyncio

import pytest

from appliance.errors import (
    BadCommand,
    EventNotAccepted,
    HandlerFailed,
    InboxFull,
    RequestTimeout,
    RuntimeStopped,
    UnknownAgentType,
    UnknownTask,
)
from appliance.events import (
    HandlerCrashed,
    JobContext,
    Started,
    TaskRef,
    TaskStatusChanged,
    TopicRef,
    TypeRef,
)
from appliance.runtime import Agent, Context, NoState, Runtime, Store
from tests.support import (
    Add,
    Counter,
    CounterState,
    Crash,
    Get,
    Hang,
    Noticed,
    Pause,
    Unhandled,
    until,
)

pytestmark = pytest.mark.unit


async def test_events_reach_the_instance_and_its_state(runtime: Runtime, job: JobContext) -> None:
    ref = runtime.spawn("counter", job, "count")
    runtime.publish_nowait(ref, Add(by=2), job=job)
    await runtime.send(ref, Add(by=3), job=job)
    assert await runtime.request(ref, Get(), job=job) == 5


async def test_instances_of_one_type_keep_separate_state(runtime: Runtime, job: JobContext) -> None:
    a = runtime.spawn("counter", job, "a")
    b = runtime.spawn("counter", job, "b")
    await runtime.send(a, Add(by=1), job=job)
    await runtime.send(b, Add(by=10), job=job)
    assert await runtime.request(a, Get(), job=job) == 1
    assert await runtime.request(b, Get(), job=job) == 10


async def test_state_is_scoped_per_job(runtime: Runtime, job: JobContext) -> None:
    other = JobContext("job-other", "cmd-other")
    ref = runtime.spawn("counter", job, "shared instance")
    await runtime.send(ref, Add(by=7), job=job)
    await runtime.send(ref, Add(by=1), job=other)
    assert await runtime.request(ref, Get(), job=job) == 7
    assert await runtime.request(ref, Get(), job=other) == 1
    state = runtime.state_of(ref, job.job_id)
    assert isinstance(state, CounterState)
    assert state.count == 7


class Replacer(Counter):
    """Tries to replace its state rather than change it."""

    name = "replacer"

    async def on_get(self, event: Get, ctx: Context[CounterState]) -> int:
        ctx.state = CounterState(count=99)  # type: ignore[misc]  # frozen: what is tested
        return 0


class Plain(Agent):
    """A type that keeps no state."""

    name = "plain"
    description = "Answers; keeps nothing."

    async def on_get(self, event: Get, ctx: Context[NoState]) -> int:
        return id(ctx.state)


async def test_a_handler_cannot_replace_its_state_only_change_it(
    runtime: Runtime, job: JobContext
) -> None:
    runtime.register(Replacer)
    ref = runtime.spawn("replacer", job, "replace")
    await runtime.send(ref, Add(by=2), job=job)
    with pytest.raises(HandlerFailed):
        await runtime.request(ref, Get(), job=job)
    state = runtime.state_of(ref, job.job_id)
    assert isinstance(state, CounterState) and state.count == 2


async def test_every_handled_event_snapshots_its_jobs_state_even_untouched(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    inst = runtime.live(ref.task_id)
    assert inst is not None and inst.home_snap is None
    runtime.publish_nowait(TopicRef("news"), Noticed(what="x"), job=job)  # reads no state
    await until(lambda: inst.home_snap is not None)
    assert inst.home_snap == b'{"count":0,"seen":[]}'


async def test_a_stateless_type_shares_one_empty_state_and_snapshots_nothing(
    runtime: Runtime, job: JobContext
) -> None:
    runtime.register(Plain)
    a = runtime.spawn("plain", job, "a")
    b = runtime.spawn("plain", job, "b")
    other = JobContext("job-other", "cmd-other")
    seen = {await runtime.request(ref, Get(), job=j) for ref in (a, b) for j in (job, other)}
    assert len(seen) == 1  # one shared NoState
    for ref in (a, b):
        inst = runtime.live(ref.task_id)
        assert inst is not None
        assert inst.home_snap is None and inst.snapshots is None and inst.states is None


async def test_a_failing_handler_is_recorded_and_the_instance_lives_on(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    with runtime.watch(kinds=["handler.crashed"]) as watch:
        runtime.publish_nowait(ref, Crash(message="kaput"), job=job)
        async with asyncio.timeout(2):
            crash = (await watch.next()).event
    assert isinstance(crash, HandlerCrashed)
    assert (crash.task_id, crash.error_type, crash.message) == (
        ref.task_id,
        "RuntimeError",
        "kaput",
    )
    await runtime.send(ref, Add(by=1), job=job)
    assert await runtime.request(ref, Get(), job=job) == 1
    assert [f.message for f in await runtime.graph.failures(job.job_id)] == ["kaput"]


async def test_a_request_to_a_failing_handler_raises_handler_failed(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    with pytest.raises(HandlerFailed, match="kaput"):
        await runtime.request(ref, Crash(message="kaput"), job=job)


async def test_a_hanging_handler_is_cut_off_at_its_deadline(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    with runtime.watch(kinds=["handler.crashed"]) as watch:
        runtime.publish_nowait(ref, Hang(), job=job)
        async with asyncio.timeout(5):
            crash = (await watch.next()).event
    assert isinstance(crash, HandlerCrashed)
    assert crash.error_type == "HandlerHung"
    assert await runtime.request(ref, Get(), job=job) == 0


async def test_an_event_of_a_type_not_accepted_is_refused_and_nothing_is_queued(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    with pytest.raises(EventNotAccepted, match=r"does not accept 'test.unhandled'.*test.add"):
        runtime.publish_nowait(ref, Unhandled(), job=job)
    assert runtime.instances("counter")[0].queued == 0
    assert runtime.crashed == 0


async def test_unknown_task_and_agent_type_are_refused(runtime: Runtime, job: JobContext) -> None:
    with pytest.raises(UnknownTask):
        runtime.publish_nowait(TaskRef("counter", "task-nope"), Add(), job=job)
    with pytest.raises(UnknownAgentType, match="known: counter, echo, parent"):
        runtime.spawn("nope", job, "x")
    with pytest.raises(UnknownAgentType):
        runtime.publish_nowait(TypeRef("nope"), Add(), job=job)


async def test_a_full_inbox_refuses_publish_and_send_waits_for_room(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    for i in range(Counter.inbox_size):
        runtime.publish_nowait(ref, Add(seq=i), job=job)
    with pytest.raises(InboxFull):
        runtime.publish_nowait(ref, Add(seq=-1), job=job)
    await runtime.send(ref, Add(seq=Counter.inbox_size), job=job)  # waits, then goes in
    assert await runtime.request(ref, Get(), job=job) == Counter.inbox_size + 1
    state = runtime.state_of(ref, job.job_id)
    assert isinstance(state, CounterState)
    assert state.seen == list(range(Counter.inbox_size + 1))


async def test_concurrency_limit_holds_later_events_in_order(
    runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    for _ in range(Counter.concurrency):
        runtime.publish_nowait(ref, Pause(), job=job)
    runtime.publish_nowait(ref, Add(seq=1), job=job)
    runtime.publish_nowait(ref, Add(seq=2), job=job)

    def held() -> bool:
        info = runtime.instances("counter")[0]
        return (info.inflight, info.queued) == (Counter.concurrency, 2)

    await until(held)  # the pauses in flight, the adds held back behind them
    runtime._instances[ref.task_id].agent.gate.set()  # type: ignore[attr-defined]
    assert await runtime.request(ref, Get(), job=job) == 2
    state = runtime.state_of(ref, job.job_id)
    assert isinstance(state, CounterState)
    assert state.seen == [1, 2]


async def test_handlers_of_one_instance_run_concurrently(runtime: Runtime, job: JobContext) -> None:
    ref = runtime.spawn("counter", job, "count")
    runtime.publish_nowait(ref, Pause(), job=job)
    # A paused handler does not hold up the next event.
    assert await runtime.request(ref, Add(by=1), job=job, timeout=1) == 1


async def test_request_times_out_with_a_clear_error(runtime: Runtime, job: JobContext) -> None:
    ref = runtime.spawn("counter", job, "count")
    with pytest.raises(RequestTimeout, match=str(ref)):
        await runtime.request(ref, Pause(), job=job, timeout=0.05)


async def test_type_addressing_spawns_a_pool_instance_then_picks_the_least_loaded(
    runtime: Runtime, job: JobContext
) -> None:
    assert await runtime.request(TypeRef("counter"), Add(by=1), job=job) == 1
    first = runtime.instances("counter")
    assert len(first) == 1 and first[0].pooled
    second = runtime.add_to_pool("counter", job)
    runtime.publish_nowait(first[0].ref, Pause(), job=job)  # busy
    assert await runtime.request(TypeRef("counter"), Add(by=5), job=job) == 5
    assert await runtime.request(second, Get(), job=job) == 5


async def test_topic_events_reach_every_subscribed_instance(
    runtime: Runtime, job: JobContext
) -> None:
    refs = [runtime.spawn("counter", job, f"c{i}") for i in range(3)]
    runtime.spawn("echo", job, "not subscribed")
    with runtime.watch(kinds=["test.noticed"]) as watch:
        runtime.publish_nowait(TopicRef("news"), Noticed(what="link up"), job=job)
        async with asyncio.timeout(1):
            assert (await watch.next()).event == Noticed(what="link up")
    for ref in refs:
        await runtime.request(ref, Get(), job=job)  # FIFO: the topic event was handled first
        assert runtime._instances[ref.task_id].agent.noticed == ["link up"]  # type: ignore[attr-defined]


async def test_a_tasks_start_handler_gives_its_outcome(runtime: Runtime, job: JobContext) -> None:
    ok = runtime.spawn("echo", job, "hello")
    bad = runtime.spawn("echo", job, "please fail")
    assert (await runtime.wait_task(ok)).result == "HELLO"
    failed = await runtime.wait_task(bad)
    assert failed.status == "failed"
    assert "asked to fail" in failed.detail


async def test_fan_out_gathers_results_and_keeps_partial_ones(
    runtime: Runtime, job: JobContext
) -> None:
    _, root = runtime.submit("a fail c", "parent")
    outcome = await runtime.wait_task(root)
    assert outcome.status == "done"
    assert outcome.result == ["A", "!failed", "C"]


async def test_envelopes_carry_the_caller_and_the_graph_links_children(
    runtime: Runtime,
) -> None:
    job, root = runtime.submit("x y", "parent")
    with runtime.watch(job_id=job.job_id, traffic=True) as watch:
        await runtime.wait_task(root)
        starts = []
        while len(starts) < 2:
            env = await watch.next()
            if isinstance(env.event, Started):
                starts.append(env)
    assert {(e.caller_task_id, e.caller_agent) for e in starts} == {(root.task_id, "parent")}
    tree = await runtime.graph.tree(job.job_id)
    children = tree.children()[root.task_id]
    assert [c.objective for c in children] == ["x", "y"]
    assert all(c.parent_agent == "parent" for c in children)


async def test_spawn_with_an_unaccepted_start_event_records_nothing(
    runtime: Runtime, job: JobContext
) -> None:
    with pytest.raises(EventNotAccepted):
        runtime.submit("nope", "echo", start=Add())
    assert await runtime.graph.jobs() == []


async def test_stop_cancels_running_handlers_and_records_it(store: Store, job: JobContext) -> None:
    runtime = Runtime(store)
    runtime.register(Counter)
    async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
        tg.create_task(runtime.run())
        await runtime.wait_running()
        _, root = runtime.submit("long", "counter")
        runtime.publish_nowait(root, Hang(), job=job)
        await runtime.stop(grace_s=0.05)
    with pytest.raises(RuntimeStopped):
        runtime.publish_nowait(root, Add(), job=job)
    assert runtime.busy is False


async def test_records_are_published_to_watchers(runtime: Runtime) -> None:
    with runtime.watch(kinds=["task.status"]) as watch:
        _, root = runtime.submit("hi", "echo")
        async with asyncio.timeout(2):
            rec = (await watch.next()).event
    assert isinstance(rec, TaskStatusChanged)
    assert (rec.task_id, rec.status) == (root.task_id, "done")


async def test_a_slow_watcher_drops_oldest_and_counts_it(runtime: Runtime, job: JobContext) -> None:
    ref = runtime.spawn("counter", job, "count")
    with runtime.watch(traffic=True, limit=4) as watch:
        for i in range(10):
            runtime.publish_nowait(ref, Add(seq=i), job=job)
        assert watch.dropped == 6
        assert (await watch.next()).event == Add(seq=6)


async def test_a_finished_jobs_instances_retire_and_its_record_stays(runtime: Runtime) -> None:
    job, root = runtime.submit("a b", "parent")
    assert (await runtime.wait_task(root)).result == ["A", "B"]
    assert runtime.instances("parent") == []
    assert runtime.instances("echo") == []
    assert (await runtime.wait_task(root)).status == "done"  # now read from the graph
    assert len((await runtime.graph.tree(job.job_id)).tasks) == 3


async def test_cancelling_a_job_stops_its_running_handlers_and_records_every_task(
    runtime: Runtime,
) -> None:
    job, root = runtime.submit("hold", "counter")  # no start handler: lives until cancelled
    child = runtime.spawn("counter", job, "busy", caller=root)
    for _ in range(Counter.concurrency):
        runtime.publish_nowait(child, Pause(), job=job)  # running handlers
    queued = asyncio.ensure_future(runtime.request(child, Get(), job=job))  # waits its turn
    running = asyncio.ensure_future(runtime.request(root, Pause(), job=job))  # in a handler
    await until(lambda: [i.inflight for i in runtime.instances("counter")] == [1, 4])
    assert runtime.instances("counter")[1].queued == 1  # the Get, behind the four
    assert runtime.cancel_job(job.job_id, "operator said so") == [child, root]
    for waiting in (queued, running):
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert runtime.instances("counter") == []
    assert await runtime.wait_idle(1)  # the cancelled handlers are gone
    tree = await runtime.graph.tree(job.job_id)
    assert [(n.status, n.detail) for n in tree.tasks] == [("cancelled", "operator said so")] * 2


async def test_an_error_in_a_running_block_comes_out_as_itself(store: Store) -> None:
    """Not inside the block's TaskGroup's ExceptionGroup: ``qey submit`` with no appliance
    running catches BadCommand to say it in words, not with a traceback."""
    from appliance.runtime import running

    runtime = Runtime(store)
    with pytest.raises(BadCommand, match="a sandwich"):
        async with running(runtime):
            raise BadCommand("make me a sandwich")
    assert not runtime.busy

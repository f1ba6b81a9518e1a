"""The scheduler under a fake clock: firings become autonomous jobs linked to their schedule,
missed firings run once after a restart, and nothing fires twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from appliance.errors import OutOfScope
from appliance.events import JobContext, TaskRef
from appliance.runtime import FakeClock, Runtime, Store, running
from appliance.schedules.cadence import Daily, Every
from appliance.schedules.scheduler import Scheduler
from appliance.schedules.store import Schedules, wall_time
from tests.support import Echo

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 10, 17).timestamp()  # a firing of "every hour" at 11:00


class Fired(NamedTuple):
    job: JobContext
    root: TaskRef


class Rig(NamedTuple):
    runtime: Runtime
    schedules: Schedules
    scheduler: Scheduler
    clock: FakeClock


@contextlib.asynccontextmanager
async def appliance(db: Path, start: float = START) -> AsyncIterator[Rig]:
    """A runtime, the schedule table and the scheduler on ``db``, running until the block
    ends; each firing is submitted to the echo agent as an autonomous job."""
    clock = FakeClock(start=start)
    store = Store(db)
    try:
        runtime = Runtime(store, clock=clock)
        runtime.register(Echo)
        schedules = Schedules(store, clock)

        async def submit(command: str) -> Fired:
            if "outside" in command:
                raise OutOfScope("10.9.9.9 is not in the scan scope")
            return Fired(*runtime.submit(command, "echo", autonomous=True))

        scheduler = Scheduler(schedules, submit, runtime.record, clock)
        async with running(runtime), asyncio.TaskGroup() as tg:
            task = tg.create_task(scheduler.run())
            yield Rig(runtime, schedules, scheduler, clock)
            task.cancel()
    finally:
        store.close()


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 - the condition is a database query
            await asyncio.sleep(0.005)


async def scheduled_jobs(runtime: Runtime) -> list[dict[str, Any]]:
    return [j for j in await runtime.graph.jobs() if j["command"].startswith("say ")]


async def test_a_firing_is_an_autonomous_job_linked_to_its_schedule(tmp_path: Path) -> None:
    async with appliance(tmp_path / "qey.db") as rig:
        made = rig.schedules.add("say hello", Every(count=1, unit="hour"), job_id="job-maker")
        await rig.clock.advance(40 * 60)  # 10:57: not yet
        await asyncio.sleep(0.05)
        assert await scheduled_jobs(rig.runtime) == []

        await rig.clock.advance(5 * 60)  # 11:02

        async def one_job() -> bool:
            return len(await scheduled_jobs(rig.runtime)) == 1

        await until(one_job)
        [job] = await scheduled_jobs(rig.runtime)
        assert (job["command"], job["autonomous"]) == ("say hello", 1)
        tree = await rig.runtime.graph.tree(job["job_id"])
        assert tree.autonomous and tree.roots[0].agent_type == "echo"
        cause = await rig.schedules.cause(job["job_id"])
        assert cause is not None
        assert (cause.schedule_id, cause.created_by, cause.command) == (
            made.id,
            "job-maker",
            "say hello",
        )
        assert wall_time(cause.due_at) == datetime(2026, 11, 29, 11, 0)
        assert [f.job_id for f in await rig.schedules.firings(made.id)] == [job["job_id"]]

        async def recorded() -> bool:
            return rig.schedules.get(made.id).last_job == job["job_id"]

        await until(recorded)
        assert wall_time(rig.schedules.get(made.id).next_fire or 0) == datetime(2026, 11, 29, 12, 0)


async def test_missed_firings_run_once_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "qey.db"
    async with appliance(db) as rig:
        made = rig.schedules.add("say hourly", Every(count=1, unit="hour"), job_id="job-maker")
        rig.schedules.add("say nightly", Daily(hour=2), job_id="job-maker")
    # off for ten hours: ten hourly firings and one nightly missed
    later = datetime(2026, 11, 29, 20, 30).timestamp()
    async with appliance(db, start=later) as rig:

        async def both_fired() -> bool:
            return len(await scheduled_jobs(rig.runtime)) >= 1 and rig.scheduler.fired >= 1

        await until(both_fired)
        await asyncio.sleep(0.1)  # room for a wrong second firing to show
        jobs = await scheduled_jobs(rig.runtime)
        assert [j["command"] for j in jobs] == ["say hourly"]  # nightly is due at 02:00
        assert wall_time(rig.schedules.get(made.id).next_fire or 0) == datetime(2026, 11, 29, 21, 0)


async def test_a_schedule_survives_restart_and_fires_after_it(tmp_path: Path) -> None:
    db = tmp_path / "qey.db"
    async with appliance(db) as rig:
        made = rig.schedules.add("say later", Daily(hour=11), job_id="job-maker")
    async with appliance(db) as rig:
        assert [s.id for s in rig.schedules.list()] == [made.id]
        await rig.clock.advance(3600)

        async def fired() -> bool:
            return len(await scheduled_jobs(rig.runtime)) == 1

        await until(fired)


async def test_a_crash_after_the_claim_does_not_fire_again(tmp_path: Path) -> None:
    db = tmp_path / "qey.db"
    clock = FakeClock(start=START)
    store = Store(db)
    try:
        schedules = Schedules(store, clock)
        schedules.add("say once", Every(count=1, unit="hour"), job_id="job-maker")
        submitted = asyncio.Event()

        async def dies(command: str) -> Fired:
            submitted.set()
            await asyncio.Event().wait()  # the process dies here, mid-submit
            raise AssertionError("unreachable")

        scheduler = Scheduler(schedules, dies, lambda rec: None, clock)
        await clock.advance(3600)  # 11:17: due (no run() here: fire_due by hand)
        async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
            firing = tg.create_task(scheduler.fire_due())
            await submitted.wait()
            firing.cancel()
    finally:
        store.close()
    async with appliance(db, start=clock.now()) as rig:
        await asyncio.sleep(0.1)
        await rig.scheduler.fire_due()
        assert await scheduled_jobs(rig.runtime) == []
        assert rig.scheduler.fired == 0


async def test_a_firing_that_cannot_run_is_kept_as_an_error_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    async with appliance(tmp_path / "qey.db") as rig:
        bad = rig.schedules.add("say outside", Every(count=1, unit="hour"), job_id="job-maker")
        rig.schedules.add("say inside", Every(count=1, unit="hour"), job_id="job-maker")
        await rig.clock.advance(3600)

        async def error_kept() -> bool:
            jobs = await scheduled_jobs(rig.runtime)
            return "OutOfScope" in rig.schedules.get(bad.id).last_error and len(jobs) == 1

        await until(error_kept)
        assert [j["command"] for j in await scheduled_jobs(rig.runtime)] == ["say inside"]
        assert rig.schedules.get(bad.id).last_job is None


async def test_a_paused_schedule_does_not_fire_and_a_new_one_wakes_the_scheduler(
    tmp_path: Path,
) -> None:
    async with appliance(tmp_path / "qey.db") as rig:
        paused = rig.schedules.add("say paused", Every(count=1, unit="hour"), job_id="job-1")
        rig.schedules.pause(paused.id)
        await rig.clock.advance(50 * 60)  # 11:07, the scheduler asleep with nothing due
        rig.schedules.add("say quarterly", Every(count=15, unit="minute"), job_id="job-2")
        await asyncio.sleep(0.05)  # it notices the change and sleeps until 11:15
        await rig.clock.advance(10 * 60)

        async def fired() -> bool:
            return len(await scheduled_jobs(rig.runtime)) == 1

        await until(fired)
        assert [j["command"] for j in await scheduled_jobs(rig.runtime)] == ["say quarterly"]

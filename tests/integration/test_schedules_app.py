"""A schedule end to end through the real appliance (planner, router, agents): a command with
a schedule phrase makes it, a fake clock fires it as an autonomous job that runs the plan and
is linked to its schedule, and after a restart the firings missed meanwhile run once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
import pytest

from appliance.agents.messages import ScanReport
from appliance.app import Appliance, Submitted, in_process
from appliance.events import TaskRef
from appliance.runtime import FakeClock
from appliance.schedules.scheduler import Scheduler
from appliance.schedules.store import wall_time
from appliance.settings import Settings

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def firing(appliance: Appliance, clock: FakeClock) -> AsyncIterator[Scheduler]:
    """The appliance's schedules fired on ``clock`` through its own submit."""

    async def fire(command: str) -> Submitted:
        return await appliance.submit(command, autonomous=True)

    scheduler = Scheduler(appliance.schedules, fire, appliance.runtime.record, clock)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(scheduler.run())
        yield scheduler
        task.cancel()


async def _fired_jobs(appliance: Appliance, schedule_id: str) -> list[str]:
    return [f.job_id for f in await appliance.schedules.firings(schedule_id)]


async def test_a_scheduled_scan_fires_under_a_fake_clock_and_once_after_a_restart(
    settings: Settings, open_ports: list[int]
) -> None:
    command = f"scan 127.0.0.1 ports {open_ports[0]} every hour"
    async with asyncio.timeout(60), in_process(settings) as appliance:
        made = await appliance.submit(command)
        assert made.schedule is not None
        [schedule] = appliance.schedules.list()
        assert schedule.command == f"scan 127.0.0.1 ports {open_ports[0]}"
        assert made.plan is not None and made.plan.scheduled  # made now, run later
        first = schedule.next_fire
        assert first is not None and wall_time(first).minute == 0

        clock = FakeClock(start=time.time())
        async with firing(appliance, clock) as scheduler:
            await clock.advance(max(first - clock.now() + 1, 0.0))
            while scheduler.fired < 1:  # noqa: ASYNC110 - a counter, under the timeout
                await asyncio.sleep(0.01)
            [job_id] = await _fired_jobs(appliance, schedule.id)
        tree = await appliance.runtime.graph.tree(job_id)
        assert tree.autonomous and tree.command == schedule.command
        root = tree.roots[0]
        await appliance.runtime.wait_task(TaskRef(root.agent_type, root.task_id))
        done = (await appliance.runtime.graph.tree(job_id)).roots[0]
        assert done.status == "done", done.detail
        cause = await appliance.schedules.cause(job_id)
        assert cause is not None and cause.created_by == made.job.job_id
        assert root.agent_type == "data_collector"  # the plan ran: a scan of the port
        scan = msgspec.convert(done.result, ScanReport)
        assert [(h.host, h.open_ports) for h in scan.open] == [("127.0.0.1", [open_ports[0]])]

    # off for three hours: three firings missed; the next start runs one
    async with asyncio.timeout(60), in_process(settings) as appliance:
        [schedule] = appliance.schedules.list()
        assert schedule.next_fire is not None
        clock = FakeClock(start=schedule.next_fire + 3 * 3600 + 60)
        async with firing(appliance, clock) as scheduler:
            while scheduler.fired < 1:  # noqa: ASYNC110 - a counter, under the timeout
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # room for a wrong second firing to show
            assert scheduler.fired == 1
        assert len(await _fired_jobs(appliance, schedule.id)) == 2  # the first start's, and one
        after = appliance.schedules.get(schedule.id).next_fire
        assert after is not None and after > clock.now()
        assert datetime.fromtimestamp(after).minute == 0

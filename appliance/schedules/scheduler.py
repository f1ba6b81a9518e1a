"""The service that fires schedules: it sleeps on the runtime's Clock until the next firing,
then runs the schedule's command as an autonomous job.

Each firing goes through the ``submit`` it is given (the appliance's own, so the command is
planned and routed like any other) and is recorded in the graph as a ``schedule.fired``
record on the firing's job, naming the schedule and the job that created it.

Order, so that a crash never fires twice: the schedule's next firing is moved past now and
committed (``Schedules.claim``) before the job is submitted. A crash between the two loses
that one firing; it never repeats it. Firings missed while the appliance was off are due at
start and run once, not once each: the claim moves the schedule to the first firing after
now. A firing whose command no longer runs (out of scope now, no agent type takes it) is
logged and kept on the schedule as its ``last_error``; the scheduler goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from appliance.errors import UnknownSchedule
from appliance.events import JobContext, ScheduleFired, TaskRef
from appliance.runtime import Clock
from appliance.schedules.store import ScheduleRecord, Schedules

log = logging.getLogger(__name__)


class Started(Protocol):
    """What a submit returns: the job it started and that job's root task."""

    @property
    def job(self) -> JobContext: ...

    @property
    def root(self) -> TaskRef: ...


FireCommand = Callable[[str], Awaitable[Started]]
"""Run a command now, as an autonomous job (and never as a new schedule)."""


class Scheduler:
    def __init__(
        self,
        schedules: Schedules,
        submit: FireCommand,
        record: Callable[[ScheduleFired], None],
        clock: Clock,
        *,
        max_nap_s: float = 60.0,
        submit_timeout_s: float = 60.0,
    ) -> None:
        """``record`` appends to the graph (the runtime's ``record``). ``max_nap_s`` bounds
        each sleep, so a wall clock set late (a board without a battery-backed clock, after
        NTP) is noticed within that long."""
        self._schedules = schedules
        self._submit = submit
        self._record = record
        self._clock = clock
        self._max_nap_s = max_nap_s
        self._submit_timeout_s = submit_timeout_s
        self._changed = asyncio.Event()
        self.fired = 0  # firings that started a job, since start
        self._overdue = 0  # naps in a row that found a firing already due

    async def run(self) -> None:
        """Fire schedules as they come due, for as long as the owner lets it run."""
        loop = asyncio.get_running_loop()

        def changed() -> None:
            loop.call_soon_threadsafe(self._changed.set)

        unsubscribe = self._schedules.subscribe(changed)
        try:
            while True:
                self._changed.clear()
                await self.fire_due()
                await self._nap(await asyncio.to_thread(self._schedules.earliest))
        finally:
            unsubscribe()

    async def fire_due(self) -> None:
        """Fire every schedule due now, each once."""
        now = self._clock.now()
        await asyncio.to_thread(self._schedules.realign, now)  # the wall clock was set back
        for record in await asyncio.to_thread(self._schedules.due, now):
            await self._fire(record, now)

    async def _fire(self, record: ScheduleRecord, now: float) -> None:
        try:
            await asyncio.to_thread(self._schedules.claim, record, now)
        except UnknownSchedule:
            return  # paused, deleted or resumed meanwhile: not this firing
        try:
            async with asyncio.timeout(self._submit_timeout_s):
                started = await self._submit(record.command)
        except Exception as err:  # CancelledError is not an Exception: it passes
            reason = f"{type(err).__name__}: {err}"
            log.warning("schedule %s: %r started no job: %s", record.id, record.command, reason)
            await asyncio.to_thread(self._schedules.fired, record.id, job_id=None, error=reason)
            return
        self._record(
            ScheduleFired(
                job_id=started.job.job_id,
                task_id=started.root.task_id,
                agent_type=started.root.agent_type,
                schedule_id=record.id,
                created_by=record.created_by,
                command=record.command,
                due_at=record.next_fire if record.next_fire is not None else now,
                at=now,
            )
        )
        self.fired += 1
        log.info(
            "schedule %s fired: %r as %s",
            record.id,
            record.command,
            started.job.job_id,
            extra={"job_id": started.job.job_id, "task_id": started.root.task_id},
        )
        await asyncio.to_thread(self._schedules.fired, record.id, job_id=started.job.job_id)

    async def _nap(self, earliest: float | None) -> None:
        """Sleep until ``earliest`` (at most ``max_nap_s``), or until a schedule changes."""
        if self._changed.is_set():
            return
        delay = self._max_nap_s
        if earliest is not None:
            delay = min(delay, earliest - self._clock.now())
        if delay <= 0:
            self._overdue += 1
            if self._overdue <= 3:
                return  # came due while firing the others: fire it now
            delay = 0.5  # still due after several tries (a claim that keeps losing): not hot
        else:
            self._overdue = 0
        async with asyncio.TaskGroup() as tg:
            sleeper = tg.create_task(self._clock.sleep(delay))
            waker = tg.create_task(self._changed.wait())
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            waker.cancel()

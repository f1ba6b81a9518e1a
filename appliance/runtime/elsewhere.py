"""Tasks another device runs: the runtime records them in its own graph as its children, and
waits for how they ended as it waits for its own.

The fleet (``appliance/fleet/``) says where a task goes and carries it there; the runtime only
knows the small interfaces below, so a single device never loads any of it. A task whose
device is lost before it ends is recorded as failed, saying so, and placed again (on another
device that reaches its target, or here): the job goes on.

Events cross too (``Beyond``): a send or a request to a type this device does not run goes
to a device that does, and a fleet-wide topic's events reach every device's subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from appliance.errors import ApplianceError
from appliance.events import Envelope, Event, JobContext, TaskRef, TaskSpawned
from appliance.runtime.cancel import cancel_and_wait
from appliance.runtime.ids import new_task_id
from appliance.runtime.outcome import TaskOutcome

if TYPE_CHECKING:
    from appliance.runtime.runtime import Runtime

log = logging.getLogger(__name__)

PLACEMENTS = 3  # a task placed this many times on devices that were then lost: it fails


class DeviceLost(Exception):
    """The device running a task stopped being heard before the task ended."""


class Elsewhere(Protocol):
    def device_for(self, agent_type: str, start: Event | None) -> str | None:
        """The device that should run this task; None: this one."""

    async def run_there(
        self, device: str, job: JobContext, spawned: TaskSpawned, start: Event | None
    ) -> TaskOutcome:
        """Start the task on ``device`` and return how it ended; DeviceLost if it is lost."""


class Beyond(Protocol):
    """Where an event goes that this device cannot take alone: to a type that only other
    devices run, and to the other devices' subscribers of a fleet-wide topic. One-way events
    cross at most once, as the broker delivers them."""

    def serves(self, agent_type: str) -> bool:
        """Whether a device heard serves ``agent_type`` (the runtime asks only of types it
        does not run itself)."""

    async def carry(self, env: Envelope[Event]) -> None:
        """A one-way event for a type (to one device serving it) or a fleet-wide topic (to
        every other device); UnknownAgentType when no device serves the type."""

    async def request(
        self,
        agent_type: str,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """``Runtime.request`` answered by a device serving ``agent_type``."""


class Placed:
    """The tasks this runtime placed on other devices, until each one ends."""

    def __init__(self, runtime: Runtime, elsewhere: Elsewhere) -> None:
        self._runtime = runtime
        self.elsewhere = elsewhere
        self._running: set[asyncio.Task[None]] = set()
        self.outcomes: dict[str, asyncio.Future[TaskOutcome]] = {}  # by task id, until each ends

    def spawn(
        self,
        device: str,
        agent_type: str,
        job: JobContext,
        objective: str,
        *,
        caller: TaskRef | None,
        start: Event | None,
    ) -> tuple[TaskRef, asyncio.Future[TaskOutcome]]:
        """Record the task (with its device) and start it there; the future is its outcome."""
        outcome: asyncio.Future[TaskOutcome] = asyncio.get_running_loop().create_future()
        ref = self._start(device, agent_type, job, objective, caller, start, outcome, 1)
        self.outcomes[ref.task_id] = outcome
        outcome.add_done_callback(lambda _: self.outcomes.pop(ref.task_id, None))
        return ref, outcome

    def _start(
        self,
        device: str,
        agent_type: str,
        job: JobContext,
        objective: str,
        caller: TaskRef | None,
        start: Event | None,
        outcome: asyncio.Future[TaskOutcome],
        placement: int,
    ) -> TaskRef:
        spawned = TaskSpawned(
            job_id=job.job_id,
            task_id=new_task_id(),
            agent_type=agent_type,
            objective=objective,
            parent_task_id=caller.task_id if caller else None,
            parent_agent=caller.agent_type if caller else None,
            at=self._runtime.clock.now(),
            device=device,
        )
        encoded = msgspec.json.encode(start) if start is not None else None
        self._runtime.journal.spawned(spawned, encoded)
        task = asyncio.create_task(
            self._follow(spawned, job, caller, start, outcome, placement),
            name=f"qey-placed-{spawned.task_id}",
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return TaskRef(agent_type, spawned.task_id)

    async def _follow(
        self,
        spawned: TaskSpawned,
        job: JobContext,
        caller: TaskRef | None,
        start: Event | None,
        outcome: asyncio.Future[TaskOutcome],
        placement: int,
    ) -> None:
        assert spawned.device is not None
        ref = TaskRef(spawned.agent_type, spawned.task_id)
        try:
            ended = await self.elsewhere.run_there(spawned.device, job, spawned, start)
        except DeviceLost as lost:
            ended = TaskOutcome(ref=ref, status="failed", detail=f"{lost}; placed again")
            self._record(spawned, ended)
            self._again(spawned, job, caller, start, outcome, placement)
            return
        except asyncio.CancelledError:
            ended = TaskOutcome(ref=ref, status="cancelled", detail="this device stopped")
            self._record(spawned, ended)
            raise
        except Exception as err:  # the fleet could not run it: the task failed, the job goes on
            ended = TaskOutcome(ref=ref, status="failed", detail=f"{type(err).__name__}: {err}")
        self._record(spawned, ended)
        if not outcome.done():
            outcome.set_result(ended)

    def _again(
        self,
        spawned: TaskSpawned,
        job: JobContext,
        caller: TaskRef | None,
        start: Event | None,
        outcome: asyncio.Future[TaskOutcome],
        placement: int,
    ) -> None:
        """The lost task once more, as a new node beside it: where it goes now, or here."""
        agent_type, objective = spawned.agent_type, spawned.objective
        if placement >= PLACEMENTS:
            outcome.set_result(
                TaskOutcome(
                    ref=TaskRef(agent_type, spawned.task_id),
                    status="failed",
                    detail=f"the devices it was placed on were lost {placement} times",
                )
            )
            return
        device = self.elsewhere.device_for(agent_type, start)
        log.warning(
            "fleet: %s was lost; %s goes to %s", spawned.device, objective, device or "here"
        )
        if device is not None:
            self._start(device, agent_type, job, objective, caller, start, outcome, placement + 1)
            return
        try:
            ref = self._runtime.spawn(agent_type, job, objective, caller=caller, start=start)
        except ApplianceError as err:  # a type only the lost devices ran: it cannot go on here
            detail = f"{spawned.device} was lost, and no device heard runs it: {err}"
            ref = TaskRef(agent_type, spawned.task_id)
            outcome.set_result(TaskOutcome(ref=ref, status="failed", detail=detail))
            return
        here = self._runtime.outcome_future(ref)

        def ended(done: asyncio.Future[TaskOutcome]) -> None:
            if not outcome.done() and not done.cancelled():
                outcome.set_result(done.result())

        here.add_done_callback(ended)

    def _record(self, spawned: TaskSpawned, ended: TaskOutcome) -> None:
        try:
            raw = (
                msgspec.Raw(msgspec.json.encode(ended.result)) if ended.result is not None else None
            )
        except (TypeError, msgspec.EncodeError):
            raw = None
        self._runtime.journal.status(
            spawned.job_id, spawned.task_id, spawned.agent_type, ended.status, ended.detail, raw
        )

    async def stop(self) -> None:
        await cancel_and_wait(list(self._running))

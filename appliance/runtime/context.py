"""What a handler sees of the runtime: its event's job, its own state, and ways to act."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from appliance.events import Envelope, Event, JobContext, Target, TaskRef, TypeRef
from appliance.runtime.fanout import FanOut
from appliance.runtime.outcome import TaskOutcome

if TYPE_CHECKING:
    from appliance.runtime.clock import Clock
    from appliance.runtime.instance import Instance
    from appliance.runtime.knowledge import KnowledgeStore
    from appliance.runtime.runtime import Runtime

S = TypeVar("S", bound=msgspec.Struct)

log = logging.getLogger("appliance.agents")


class Context(msgspec.Struct, Generic[S], frozen=True):
    """One per handled event. Everything sent through it is stamped with this task as caller,
    so the coordination graph records who caused what without the handler saying so.

    A Struct only because one is made per event and a Struct is made in half the time of a
    slotted class; it is never encoded or compared. Frozen: ``state`` is the instance's own
    state for this event's job, to change in place, never to replace.

    An event that rode on another's delivery (``Runtime._drain``) comes with that delivery's
    envelope, ``_shared``: its own (the same, with this event) is made only if asked for."""

    _runtime: Runtime
    _inst: Instance
    _shared: Envelope[Any]  # this event's envelope, or one that differs from it only in event
    event: Event
    state: S
    """This instance's state for this event's job: jobs never see each other's state. A plain
    field, not a lookup on use: a handler reads it as fast as a local."""

    @property
    def envelope(self) -> Envelope[Any]:
        env = self._shared
        if env.event is not self.event:
            env = msgspec.structs.replace(env, event=self.event)
        return env

    @property
    def job(self) -> JobContext:
        return self._shared.job

    @property
    def ref(self) -> TaskRef:
        return self._inst.ref

    @property
    def task_id(self) -> str:
        return self._inst.ref.task_id

    @property
    def objective(self) -> str:
        return self._inst.objective

    @property
    def knowledge(self) -> KnowledgeStore:
        return self._runtime.knowledge

    @property
    def clock(self) -> Clock:
        return self._runtime.clock

    @property
    def extra(self) -> dict[str, str]:
        """``extra=`` for log calls, so log lines name the job and task they belong to."""
        return {"job_id": self._shared.job.job_id, "task_id": self._inst.ref.task_id}

    def spawn(self, agent_type: str, objective: str, *, start: Event | None = None) -> TaskRef:
        return self._runtime.spawn(
            agent_type, self.job, objective, caller=self._inst.ref, start=start
        )

    def publish_nowait(self, target: Target, event: Event) -> None:
        self._runtime.publish_nowait(target, event, job=self.job, caller=self._inst.ref)

    async def send(self, target: Target, event: Event) -> None:
        await self._runtime.send(target, event, job=self.job, caller=self._inst.ref)

    async def request(
        self, target: TaskRef | TypeRef, event: Event, *, timeout: float = 5.0
    ) -> Any:
        return await self._runtime.request(
            target, event, job=self.job, caller=self._inst.ref, timeout=timeout
        )

    async def fan_out(
        self,
        agent_type: str,
        work: Sequence[tuple[str, Event | None]],
        *,
        timeout: float | None = None,
    ) -> list[TaskOutcome]:
        """Spawn one child per ``(objective, start event)`` and gather every outcome.

        Children run concurrently; a failed or late child gives a failed/running outcome in its
        place, so the caller always gets partial results rather than an exception.
        """
        fan = FanOut(self._runtime, self.job, caller=self._inst.ref)
        return await fan.run(agent_type, work, timeout=timeout)

"""Fan-out: N children for N targets, gathered concurrently, partial results kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from appliance.events import Event, JobContext, TaskRef, TaskStatus

if TYPE_CHECKING:
    from appliance.runtime.runtime import Runtime

T = TypeVar("T")


class TaskOutcome(msgspec.Struct, frozen=True):
    """How a task ended (or that it had not ended by a deadline)."""

    ref: TaskRef
    status: TaskStatus
    result: Any = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def result_as(self, type: type[T]) -> T:
        """The result as ``type``: live results are objects already, stored ones are JSON."""
        if isinstance(self.result, type):
            return self.result
        return msgspec.convert(self.result, type)


class FanOut:
    def __init__(self, runtime: Runtime, job: JobContext, *, caller: TaskRef | None) -> None:
        self._runtime = runtime
        self._job = job
        self._caller = caller

    async def run(
        self, agent_type: str, work: Sequence[tuple[str, Event]], *, timeout: float | None = None
    ) -> list[TaskOutcome]:
        refs = [
            self._runtime.spawn(agent_type, self._job, objective, caller=self._caller, start=start)
            for objective, start in work
        ]
        waits = [self._runtime.outcome_future(ref) for ref in refs]
        if not waits:
            return []
        done, _ = await asyncio.wait(waits, timeout=timeout)
        return [
            w.result()
            if w in done
            else TaskOutcome(ref=r, status="running", detail=f"no result within {timeout}s")
            for r, w in zip(refs, waits, strict=True)
        ]

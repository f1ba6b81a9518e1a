"""Fan-out: N children for N targets, gathered concurrently, partial results kept.

In a fleet, a child whose target another device reaches (and this one does not) is placed
there (``runtime/elsewhere.py``); it is waited for like the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from appliance.events import Event, JobContext, TaskRef
from appliance.runtime.outcome import TaskOutcome

if TYPE_CHECKING:
    from appliance.runtime.runtime import Runtime


class FanOut:
    def __init__(self, runtime: Runtime, job: JobContext, *, caller: TaskRef | None) -> None:
        self._runtime = runtime
        self._job = job
        self._caller = caller

    async def run(
        self,
        agent_type: str,
        work: Sequence[tuple[str, Event | None]],
        *,
        timeout: float | None = None,
    ) -> list[TaskOutcome]:
        """A child per ``(objective, start event)``; a None start event is made from the
        objective by the type (on the device that runs it, for a type only another runs)."""
        refs: list[TaskRef] = []
        waits: list[asyncio.Future[TaskOutcome]] = []
        placed = self._runtime.placed
        for objective, start in work:
            device = placed.elsewhere.device_for(agent_type, start) if placed else None
            if placed is not None and device is not None:  # another device reaches it
                ref, wait = placed.spawn(
                    device, agent_type, self._job, objective, caller=self._caller, start=start
                )
            else:
                ref = self._runtime.spawn(
                    agent_type, self._job, objective, caller=self._caller, start=start
                )
                wait = self._runtime.outcome_future(ref)
            refs.append(ref)
            waits.append(wait)
        if not waits:
            return []
        done, _ = await asyncio.wait(waits, timeout=timeout)
        return [
            w.result()
            if w in done
            else TaskOutcome(ref=r, status="running", detail=f"no result within {timeout}s")
            for r, w in zip(refs, waits, strict=True)
        ]

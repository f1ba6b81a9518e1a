"""Where the runtime's records go: the coordination graph, and everyone watching.

One place, so a record can never reach the graph without reaching the watchers (the panel's
live view, the display, ``qey tasks watch``) or the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from appliance.events import (
    Envelope,
    JobContext,
    JobSubmitted,
    RecordEvent,
    TaskSpawned,
    TaskStatus,
    TaskStatusChanged,
    TopicRef,
)
from appliance.runtime.clock import Clock
from appliance.runtime.graph import TaskGraph
from appliance.runtime.watch import Watch

RUNTIME_TOPIC = "runtime"


class Journal:
    def __init__(self, graph: TaskGraph, clock: Clock) -> None:
        self.graph = graph
        self.clock = clock
        self.watches: list[Watch] = []
        # Watches of delivered events too: dispatch offers each event to these, so the list
        # is read on the hot path and shared with it rather than copied.
        self.taps: list[Watch] = []
        # every record as it is made (the fleet shares them): called inline, must not block
        self.listeners: list[Callable[[RecordEvent], None]] = []

    def record(self, rec: RecordEvent) -> None:
        if type(rec) is JobSubmitted:
            self.graph.record_job(rec)
        elif type(rec) is not TaskSpawned:
            self.graph.record(rec)  # type: ignore[arg-type]
        self.notify(rec)

    def spawned(self, rec: TaskSpawned, start: bytes | None) -> None:
        """A task's spawn, with its encoded start event (what a resume after a restart runs)."""
        self.graph.record_spawn(rec, start)
        self.notify(rec)

    def status(
        self,
        job_id: str,
        task_id: str,
        agent_type: str,
        status: TaskStatus,
        detail: str,
        result: msgspec.Raw | None = None,
    ) -> None:
        self.record(
            TaskStatusChanged(
                job_id=job_id,
                task_id=task_id,
                agent_type=agent_type,
                status=status,
                detail=detail,
                result=result,
                at=self.clock.now(),
            )
        )

    def notify(self, rec: RecordEvent) -> None:
        for listener in self.listeners:
            listener(rec)
        if self.watches:
            env = Envelope(
                event=rec, job=JobContext(rec.job_id, ""), target=TopicRef(RUNTIME_TOPIC)
            )
            for watch in self.watches:
                watch.offer(env)

    def offer(self, env: Envelope[Any]) -> None:
        """A topic event: watchers see it like a record."""
        for watch in self.watches:
            watch.offer(env)

    def watch(
        self,
        *,
        job_id: str | None,
        kinds: Iterable[str] | None,
        traffic: bool,
        limit: int,
    ) -> Watch:
        wanted = frozenset(kinds) if kinds is not None else None

        def accepts(env: Envelope[Any]) -> bool:
            if job_id is not None and env.job.job_id != job_id:
                return False
            return wanted is None or env.event.__struct_config__.tag in wanted

        w = Watch(accepts, limit, self._forget)
        self.watches.append(w)
        if traffic:
            self.taps.append(w)
        return w

    def _forget(self, w: Watch) -> None:
        for group in (self.watches, self.taps):
            if w in group:
                group.remove(w)

    def close(self) -> None:
        for w in list(self.watches):
            w.close()

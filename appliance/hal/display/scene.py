"""What the display should show, kept current from runtime events: a line per live instance.

The scene is a plain model with no clock of its own and no wire format: the display service
feeds it every envelope it watches (``note``) and asks for a ``snapshot`` once per frame. An
instance's line lingers for ``linger_s`` after its task ends (or its handler crashes), so the
eye catches short tasks and failures. Lines come in job-tree order (each child below its
parent); when more instances live than the display has lines, the busiest and most recent win.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from appliance.events import (
    Envelope,
    HandlerCrashed,
    JobSubmitted,
    TaskRef,
    TaskSpawned,
    TaskStatusChanged,
)
from appliance.hal.display.messages import Status
from appliance.runtime import InstanceInfo

_ENDED = {"done": Status.DONE, "failed": Status.FAILED, "cancelled": Status.CANCELLED}


class LineView(msgspec.Struct, frozen=True):
    task_id: str
    parent: str | None
    job_id: str
    agent_type: str
    event: str
    status: Status
    hits: int


class JobView(msgspec.Struct, frozen=True):
    job_id: str
    command: str
    autonomous: bool


class Snapshot(msgspec.Struct, frozen=True):
    lines: list[LineView]
    jobs: dict[str, JobView]
    total: int


class _Line:
    __slots__ = ("agent_type", "ended_at", "event", "hits", "job_id", "parent", "seen", "status")

    def __init__(
        self, job_id: str, parent: str | None, agent_type: str, now: float, event: str
    ) -> None:
        self.job_id = job_id
        self.parent = parent
        self.agent_type = agent_type
        self.event = event
        self.status = Status.IDLE
        self.hits = 1
        self.seen = now
        self.ended_at: float | None = None


class Scene:
    def __init__(self, *, linger_s: float = 2.0) -> None:
        self._linger_s = linger_s
        self._lines: dict[str, _Line] = {}
        self._jobs: dict[str, JobView] = {}
        self.changed = False

    def __len__(self) -> int:
        return len(self._lines)

    def seed(self, instances: Iterable[InstanceInfo], now: float) -> None:
        """Instances alive before the display started watching (their parents are unknown
        here, so they stand as roots until they end)."""
        for info in instances:
            if info.ref.task_id not in self._lines and info.status == "running":
                self._lines[info.ref.task_id] = _Line(
                    info.job_id, None, info.ref.agent_type, now, "running"
                )
                self.changed = True

    def know_jobs(self, jobs: Iterable[JobView]) -> None:
        """Jobs read from the store: what a seeded line's job is (a JobSubmitted seen later, or
        already, is not overwritten)."""
        for job in jobs:
            self._jobs.setdefault(job.job_id, job)

    def reconcile(self, instances: Iterable[InstanceInfo], now: float) -> None:
        """Make the lines agree with the runtime's live instances: a line whose end the
        display never heard of (its record dropped by a full watch) ends now, as done."""
        live = {info.ref.task_id: info.status for info in instances}
        for task_id, line in self._lines.items():
            if line.ended_at is not None:
                continue
            status = live.get(task_id, "done")
            if status in _ENDED:
                line.status = _ENDED[status]
                line.ended_at = line.seen = now
                self.changed = True

    def note(self, env: Envelope[Any], now: float) -> None:
        """Take one watched envelope (a runtime record, a topic event or delivered traffic)."""
        event = env.event
        kind = type(event)
        if kind is TaskSpawned:
            self._lines[event.task_id] = _Line(
                event.job_id, event.parent_task_id, event.agent_type, now, "task.spawned"
            )
            self.changed = True
        elif kind is JobSubmitted:
            self._jobs[event.job_id] = JobView(event.job_id, event.command, event.autonomous)
        elif kind is TaskStatusChanged:
            line = self._lines.get(event.task_id)
            if line is not None and event.status in _ENDED:
                line.status = _ENDED[event.status]
                line.ended_at = line.seen = now
                self.changed = True
        elif kind is HandlerCrashed:
            line = self._lines.get(event.task_id)
            if line is not None:
                line.status = Status.CRASHED
                line.event = event.event_kind
                line.ended_at = line.seen = now  # shows for a while, then the line goes idle
                self.changed = True
        else:
            self._activity(env, now)

    def _activity(self, env: Envelope[Any], now: float) -> None:
        """An event delivered to (or published by) an instance: it is doing something."""
        target = env.target
        task_id = target.task_id if type(target) is TaskRef else env.sender
        line = self._lines.get(task_id) if task_id else None
        if line is None:
            return
        self.changed = True
        line.event = str(env.event.__struct_config__.tag)
        line.hits += 1
        line.seen = now
        if line.ended_at is None:
            line.status = Status.HANDLING

    def snapshot(self, now: float, max_lines: int) -> Snapshot:
        """The lines to show now, and the jobs they belong to; resets this frame's hits."""
        self._expire(now)
        lines = self._lines
        shown = set(lines)
        if len(lines) > max_lines:
            ranked = sorted(lines, key=lambda t: (lines[t].hits > 0, lines[t].seen), reverse=True)
            shown = set(ranked[:max_lines])
        views = [
            LineView(
                task_id=t,
                parent=lines[t].parent if lines[t].parent in shown else None,
                job_id=lines[t].job_id,
                agent_type=lines[t].agent_type,
                event=lines[t].event,
                status=lines[t].status,
                hits=lines[t].hits,
            )
            for t in _tree_order(lines, shown)
        ]
        for line in lines.values():
            line.hits = 0
            if line.status == Status.HANDLING:
                line.status = Status.IDLE
        jobs = {v.job_id: self._jobs.get(v.job_id, JobView(v.job_id, "", False)) for v in views}
        self.changed = False
        return Snapshot(lines=views, jobs=jobs, total=len(lines))

    def _expire(self, now: float) -> None:
        gone = [
            t
            for t, line in self._lines.items()
            if line.ended_at is not None and now - line.ended_at >= self._linger_s
        ]
        for task_id in gone:
            line = self._lines[task_id]
            if line.status == Status.CRASHED:  # the instance lives on after a crash
                line.status, line.ended_at = Status.IDLE, None
            else:
                del self._lines[task_id]
        if gone:
            self.changed = True
            live_jobs = {line.job_id for line in self._lines.values()}
            for job_id in [j for j in self._jobs if j not in live_jobs]:
                del self._jobs[job_id]


def _tree_order(lines: dict[str, _Line], shown: set[str]) -> list[str]:
    """Shown task ids, each job's roots first and every child right below its parent."""
    children: dict[str | None, list[str]] = {}
    for task_id in lines:  # dicts keep spawn order: siblings stay in the order they came
        if task_id in shown:
            parent = lines[task_id].parent
            children.setdefault(parent if parent in shown else None, []).append(task_id)
    order: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        task_id = stack.pop()
        order.append(task_id)
        stack.extend(reversed(children.get(task_id, [])))
    return order

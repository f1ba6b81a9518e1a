"""Live agent types and instances: the runtime's bookkeeping, slotted and lazy.

An idle instance holds no task, no queue and no state until something needs them, which is
what lets a board keep tens of thousands of them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeAlias

import msgspec

from appliance.events import Envelope, JobContext, TaskRef, TaskStatus
from appliance.runtime.agent import Agent, Handler, NoState
from appliance.runtime.outcome import TaskOutcome

Reply: TypeAlias = "asyncio.Future[Any] | None"


class Delivery(msgspec.Struct):
    """One event on its way into a handler. A Struct: named and slotted, and made almost as
    fast as the tuple it replaced. In the runtime's queue, the one-way events that follow a
    delivery to the same task, of the same job and sender, ride on it (``Runtime._drain``):
    a delivery of their own is made only for one that waits or fails."""

    inst: Instance
    handler: Handler
    env: Envelope[Any]
    reply: Reply  # who waits for the handler's answer (a request), if anyone
    is_start: bool  # the task's start event: its end ends the task
    attempt: int = 1  # retries count up from 1


class AgentKind:
    """A registered agent type: how to make instances, and the ones alive now."""

    __slots__ = (
        "cls",
        "concurrency",
        "eager",
        "factory",
        "failed",
        "handlers",
        "inbox_size",
        "instances",
        "name",
        "pinned",
        "pool",
        "snapshot",
        "stateless",
    )

    def __init__(self, cls: type[Agent], factory: Callable[[], Agent]) -> None:
        self.cls = cls
        self.name = cls.name
        self.factory = factory
        self.handlers = cls.handlers
        # The class settings the hot path reads per event, one attribute away.
        self.concurrency = cls.concurrency
        self.inbox_size = cls.inbox_size
        self.eager = cls.eager
        # A type that keeps no state shares one empty state among all its handlers and has
        # nothing to snapshot.
        self.stateless: NoState | None = NoState() if cls.State is NoState else None
        self.snapshot = cls.snapshot and self.stateless is None
        self.instances: dict[str, Instance] = {}
        self.pool: list[Instance] = []
        self.failed: str | None = None  # why the supervisor marked this type failed
        self.pinned: int | None = None  # a pool size an admin set: autoscaling leaves it


class Instance:
    __slots__ = (
        "agent",
        "alive",
        "backlog",
        "fault",
        "generation",
        "handled",
        "handlers",
        "home",
        "home_snap",
        "home_state",
        "home_unsaved",
        "inflight",
        "kind",
        "name",
        "objective",
        "outcome",
        "pooled",
        "queued",
        "ref",
        "running",
        "snapshots",
        "space",
        "states",
        "waiters",
    )

    def __init__(self, kind: AgentKind, ref: TaskRef, home: JobContext, objective: str) -> None:
        self.kind = kind
        self.agent = kind.factory()
        self.handlers = kind.handlers
        self.ref = ref
        self.name = str(ref)
        self.home = home
        self.objective = objective
        self.alive = True
        self.inflight = 0
        self.queued = 0
        self.handled = 0  # events finished: the supervisor's progress (liveness) signal
        self.generation = 1
        self.pooled = False
        self.fault: str | None = None  # its last crash, until it restarts or handles an event
        self.backlog: deque[Delivery] | None = None
        self.space: deque[asyncio.Future[None]] | None = None
        # State per job. Most instances only ever serve the job they were spawned for, so
        # that job's state and snapshot live in slots; other jobs' in dicts made on demand.
        self.home_state: msgspec.Struct | None = None
        self.home_snap: bytes | None = None  # the state after the last handler (JSON)
        self.home_unsaved = False  # home_snap is in the runtime's rows for the next commit
        self.states: dict[str, msgspec.Struct] | None = None
        self.snapshots: dict[str, bytes] | None = None
        self.running: dict[asyncio.Task[None], Delivery] | None = None  # suspended handlers
        self.outcome: TaskOutcome | None = None
        self.waiters: asyncio.Future[TaskOutcome] | None = None

    def state_of(self, job: JobContext) -> msgspec.Struct:
        """This instance's state for ``job``, made on first use: what its handlers get."""
        if self.kind.stateless is not None:
            return self.kind.stateless
        if job is self.home and self.home_state is not None:
            return self.home_state
        return self.state_for(job.job_id)

    def state_for(self, job_id: str) -> msgspec.Struct:
        if job_id == self.home.job_id:
            state = self.home_state
            if state is None:
                state = self.home_state = self.kind.cls.State()
            return state
        if self.states is None:
            self.states = {}
        state = self.states.get(job_id)
        if state is None:
            state = self.states[job_id] = self.kind.cls.State()
        return state

    def snapshot(self, job_id: str, data: bytes) -> None:
        if job_id == self.home.job_id:
            self.home_snap = data
            return
        if self.snapshots is None:
            self.snapshots = {}
        self.snapshots[job_id] = data

    def snapshot_of(self, job_id: str) -> bytes | None:
        if job_id == self.home.job_id:
            return self.home_snap
        return self.snapshots.get(job_id) if self.snapshots else None

    def recover_states(self) -> None:
        """Replace in-memory state with the last committed snapshot of each job's state."""
        decode = msgspec.json.Decoder(self.kind.cls.State).decode
        self.home_state = decode(self.home_snap) if self.home_snap is not None else None
        self.states = (
            {job: decode(data) for job, data in self.snapshots.items()} if self.snapshots else None
        )

    @property
    def load(self) -> int:
        return self.inflight + self.queued


class InstanceInfo(msgspec.Struct, frozen=True):
    """A snapshot of one instance, for the panel and the CLI."""

    ref: TaskRef
    job_id: str
    objective: str
    inflight: int
    queued: int
    handled: int
    generation: int
    pooled: bool
    status: TaskStatus
    fault: str | None = None  # why it is failing now: health is "degraded" while any is

"""The agent runtime: typed delivery to persistent instances, concurrently and in isolation.

How an event travels: ``publish_nowait`` checks the target accepts its type and has inbox
room (or refuses, changing nothing), then appends it to one ready queue. A single loop
callback drains that queue in batches and runs each handler inline until its first real
suspension; only a handler that actually waits becomes a Task (owned by the runtime's
TaskGroup, under the type's deadline). So an idle instance costs no task and no queue, and a
handler that finishes without waiting costs no task either: this is what keeps per-event
isolation near the speed of a plain queue. Per-instance FIFO start order holds: an instance
at its concurrency limit keeps later events in its own backlog, and new ones queue behind.

When a handler fails, the runtime asks its supervision policy (``recovery.Supervision``) what
to do and carries it out: record it and go on, deliver the event again later, restart the
instance from its last state snapshot (requeuing what its old incarnation had in flight), or
refuse a type that keeps failing. After a process restart, ``run()`` resumes every job whose
root task had not ended, from its last committed state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from appliance.errors import (
    AgentTypeFailed,
    BadCommand,
    BadEvent,
    EventNotAccepted,
    EventNotAllowed,
    InboxFull,
    RuntimeStopped,
    UnknownAgentType,
    UnknownTask,
)
from appliance.events import (
    Envelope,
    Event,
    JobContext,
    JobSubmitted,
    JournalRecord,
    Started,
    Target,
    TaskRef,
    TaskSpawned,
    TaskStatus,
    TopicRef,
    TypeRef,
    is_fleet_topic,
)
from appliance.runtime import eager
from appliance.runtime.agent import Agent
from appliance.runtime.audit import DEFAULT_LIMIT as AUDIT_EVENTS
from appliance.runtime.audit import AuditTrail
from appliance.runtime.clock import Clock, SystemClock
from appliance.runtime.context import Context
from appliance.runtime.deadlines import Deadlines
from appliance.runtime.elsewhere import Beyond, Elsewhere, Placed
from appliance.runtime.failures import Failures, HandlerHung
from appliance.runtime.graph import TaskGraph, UnfinishedTask
from appliance.runtime.ids import new_command_id, new_job_id, new_task_id
from appliance.runtime.instance import AgentKind, Delivery, Instance, InstanceInfo
from appliance.runtime.journal import RUNTIME_TOPIC, Journal
from appliance.runtime.knowledge import KnowledgeStore
from appliance.runtime.outcome import TaskOutcome
from appliance.runtime.pools import Pools
from appliance.runtime.recovery import LetItFail, Supervision
from appliance.runtime.registry import TypeRegistry, not_accepted, start_handler
from appliance.runtime.store import Store
from appliance.runtime.watch import Watch

__all__ = ["RUNTIME_TOPIC", "HandlerHung", "Runtime", "running"]

log = logging.getLogger(__name__)

_DRAIN_BATCH = 512
# An Encoder's method, not msgspec.json.encode: the same bytes, without the module function's
# per-call setup (95 -> 60 ns a small state): a snapshot is taken on every handled event.
_encode = msgspec.json.Encoder().encode
_replace = msgspec.structs.replace


def _own(item: Delivery, env: Envelope[Any]) -> Delivery:
    """``env``'s own delivery: ``item`` itself, or a copy for an event that rode on it."""
    return item if item.env is env else _replace(item, env=env)


class _Stop(Exception):
    """Raised inside run()'s TaskGroup to end it (3.11 has no TaskGroup.cancel())."""


class Runtime:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        supervision: Supervision | None = None,
        audit_events: int = AUDIT_EVENTS,
    ) -> None:
        """``audit_events``: how many handled events the audit trail keeps (0: none)."""
        self.clock: Clock = clock or SystemClock()
        self.store = store
        self.graph = TaskGraph(store)
        self.knowledge = KnowledgeStore(store, self.clock)
        self.audit = AuditTrail(store, self.clock, limit=audit_events) if audit_events else None
        self._trail = self.audit.pending if self.audit is not None else None
        # the trail's events buffer (empty for good without one), and its encoder's encode_into
        self._trail_events = self.audit.events if self.audit is not None else bytearray()
        if self.audit is not None:
            self._trail_event = self.audit.encode_event
        self._now = self.clock.now
        self._at: float | None = None  # while a batch is dispatched: when it began
        self.types = TypeRegistry()
        self.journal = Journal(self.graph, self.clock)
        self.pools = Pools(self.types, self.journal, self)
        self.failures = Failures(
            self.types, self.journal, self.clock, supervision or LetItFail(), self
        )
        self._kinds = self.types.kinds  # read per event: one attribute away
        self._topics = self.types.topics
        self._taps = self.journal.taps
        self._instances: dict[str, Instance] = {}
        self._ready: deque[Delivery | Event] = deque()  # see _drain
        self._head: Delivery | None = None  # the delivery the bare events first in _ready ride on
        self._tail: Delivery | None = None  # the one the event last in _ready is or rides on
        # what publish_nowait was given for the tail: an event given the same rides on it.
        # Five attributes, not one tuple: compared one by one, by identity first, they cost
        # an event less than a tuple built to compare (_like_tail compares by value).
        self._tail_target: Target | None = None
        self._tail_job: JobContext | None = None
        self._tail_caller: TaskRef | None = None
        self._tail_sender: str | None = None
        self._tail_type: type[Event] | None = None
        self._resumable: deque[Instance] = deque()
        self._scheduled = False
        self._starter = eager.Starter()  # runs each eager handler's first step inline
        self._suspended = 0
        self._tg: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = asyncio.Event()
        self._stopping = asyncio.Event()
        self._job_members: dict[str, list[Instance]] = {}
        self._job_roots: dict[str, str] = {}
        self._sent: asyncio.Future[None] | None = None
        self._deadlines: Deadlines | None = None
        self._unsaved: dict[tuple[str, str], Instance] = {}
        store.add_source(self._unsaved_snapshots)
        self.handled = 0
        self.placed: Placed | None = None  # a fleet's: tasks other devices run for this one
        self.beyond: Beyond | None = None  # a fleet's: events for what other devices run

    def place_elsewhere(self, elsewhere: Elsewhere) -> None:
        """Let ``fan_out`` place tasks on other devices (the fleet), as ``elsewhere`` says."""
        self.placed = Placed(self, elsewhere)

    def reach_beyond(self, beyond: Beyond) -> None:
        """Let events cross to other devices (the fleet): a send or a request to a type only
        they run, and a fleet-wide topic's events (``fleet.<name>``) to their subscribers."""
        self.beyond = beyond

    @property
    def supervision(self) -> Supervision:
        return self.failures.supervision

    @supervision.setter
    def supervision(self, policy: Supervision) -> None:
        self.failures.supervision = policy

    @property
    def crashed(self) -> int:
        return self.failures.crashed

    # -- agent types (the registry) --------------------------------------------------------

    def register(self, cls: type[Agent], factory: Callable[[], Agent] | None = None) -> None:
        """Make an agent type spawnable; from now on its events decode at every edge."""
        self.types.register(cls, factory)

    def on_agent_type(self, listener: Callable[[type[Agent]], None]) -> None:
        """Call ``listener`` for every agent type registered, now and later (the router
        embeds each new type's description this way, so it is routable without retraining)."""
        self.types.on_register(listener)

    @property
    def agent_types(self) -> list[type[Agent]]:
        return [k.cls for k in self._kinds.values()]

    def agent_class(self, name: str) -> type[Agent]:
        return self.types.kind(name).cls

    def startable(self, agent_type: str) -> type[Agent]:
        """The agent type, if a command or an admin may start it (or size its pool); an
        internal one raises InternalAgentType naming those that may."""
        return self.types.startable(agent_type)

    def startable_types(self) -> list[str]:
        return self.types.startable_types()

    def decode_envelope(self, data: bytes | str) -> Envelope[Event]:
        """Decode an envelope from the wire (HTTP, serial, SQLite) or raise BadEvent."""
        return self.types.decode_envelope(data)

    def decode_event(self, data: bytes | str) -> Event:
        return self.types.decode_event(data)

    def decode_packed_event(self, data: bytes) -> Event:
        return self.types.decode_packed_event(data)

    def decode_packed_envelope(self, data: bytes) -> Envelope[Event]:
        """``decode_envelope`` for msgpack (another device's, over the broker)."""
        return self.types.decode_packed_envelope(data)

    def client_kinds(self) -> list[str]:
        """The event kinds a client may send: those some non-internal type accepts. What only
        internal types take (a hardware event for the network watcher, a vote for its
        tracker) comes from inside the appliance alone."""
        return self.types.client_kinds()

    def fail_type(self, agent_type: str, reason: str) -> None:
        """Refuse the type's events until ``reset_type``: it restarted past its intensity."""
        self.failures.fail_type(agent_type, reason)

    def reset_type(self, agent_type: str) -> None:
        self.failures.reset_type(agent_type)

    def failed_types(self) -> dict[str, str]:
        return self.types.failed()

    # -- from the edges ---------------------------------------------------------------------

    def deliver(self, env: Envelope[Event]) -> None:
        """Hand a decoded envelope from an edge (a client) to its target, with
        ``publish_nowait`` semantics, if a client may send it: EventNotAllowed, nothing
        delivered or recorded, for a kind only the appliance sends or an internal target."""
        self._check_from_client(env)
        self.publish_nowait(
            env.target, env.event, job=env.job, caller=env.caller, sender=env.sender
        )

    async def send_from_edge(self, env: Envelope[Event]) -> None:
        """``deliver`` that waits for inbox room instead of refusing (``send``'s backpressure):
        for an edge that has nobody to tell it was full (a one-way event from another device)."""
        self._check_from_client(env)
        await self.send(env.target, env.event, job=env.job, caller=env.caller, sender=env.sender)

    async def request_from_edge(self, env: Envelope[Event], *, timeout: float) -> Any:
        """``request`` for a decoded envelope from an edge (another device), held to the
        same rules as ``deliver``: what a client may not send is refused, never handled."""
        self._check_from_client(env)
        target = env.target
        if isinstance(target, TopicRef):
            raise EventNotAllowed(f"a request goes to a type or a task, not to {target}")
        return await self.request(
            target, env.event, job=env.job, caller=env.caller, timeout=timeout
        )

    def _check_from_client(self, env: Envelope[Event]) -> None:
        event_type = type(env.event)
        tag = str(event_type.__struct_config__.tag)
        allowed = self.client_kinds()
        if tag not in allowed:
            raise EventNotAllowed(
                f"a client may not send {tag!r} events: only the appliance itself does; "
                f"a client may send: {', '.join(allowed)}"
            )
        internal = [
            kind.name
            for kind in self._kinds_at(env.target)
            if kind.cls.internal and event_type in kind.handlers
        ]
        if internal:
            raise EventNotAllowed(
                f"{env.target} reaches {', '.join(internal)}, which only the appliance itself "
                "sends events to"
            )

    def _kinds_at(self, target: Target) -> list[AgentKind]:
        if type(target) is TaskRef:
            inst = self._instances.get(target.task_id)
            return [inst.kind] if inst is not None else []
        if type(target) is TypeRef:
            kind = self._kinds.get(target.agent_type)
            return [kind] if kind is not None else []
        if type(target) is TopicRef:
            return list(self._topics.get(target.topic, ()))
        return []

    # -- jobs and spawning ----------------------------------------------------------------

    def submit(
        self,
        command: str,
        agent_type: str,
        *,
        start: Event | None = None,
        autonomous: bool = False,
        fallbacks: Sequence[str] = (),
    ) -> tuple[JobContext, TaskRef]:
        """Start a job for a command (or an autonomous trigger): its root task and its record.

        Without ``start``, the agent type turns the command into its start event
        (``Agent.start_for``); a command it cannot parse fails here, before anything is recorded,
        and so does one for an internal type (InternalAgentType: see ``start_internal``).
        ``fallbacks``: agent types, in order, to hand the command to if the root's handler
        refuses it (bad input, not a crash): the next one that can parse it runs as the
        root's child, and the root ends as that child ends.

        In a fleet, a type this device does not run has its root placed on a device that
        does, which turns the command into the start event itself (it has the type).
        """
        if agent_type not in self._kinds and self.placed is not None:
            device = self.placed.elsewhere.device_for(agent_type, start)
            if device is not None:  # a type only other devices run: the job's root goes there
                job = self.open_job(command, autonomous=autonomous)
                root, _ = self.placed.spawn(
                    device, agent_type, job, command, caller=None, start=start
                )
                return job, root
        self.startable(agent_type)
        job, root = self._submit(command, agent_type, start=start, autonomous=autonomous)
        self.failures.fallbacks(root.task_id, fallbacks)
        return job, root

    def start_internal(
        self, command: str, agent_type: str, *, start: Event | None = None
    ) -> tuple[JobContext, TaskRef]:
        """Start a standing autonomous job of one of the appliance's own internal types (the
        network watcher): the one way such a type runs as a job. Only the code that wires the
        appliance calls this; the edges call ``submit``, which refuses internal types."""
        return self._submit(command, agent_type, start=start, autonomous=True)

    def _submit(
        self, command: str, agent_type: str, *, start: Event | None, autonomous: bool
    ) -> tuple[JobContext, TaskRef]:
        kind = self.types.kind(agent_type)
        if start is None:
            start = kind.cls.start_for(command)
        start_handler(kind, start)
        job = self.open_job(command, autonomous=autonomous)
        root = self.spawn(agent_type, job, command, start=start, autonomous=autonomous)
        self._job_roots[job.job_id] = root.task_id
        return job, root

    def open_job(self, command: str, *, autonomous: bool = True) -> JobContext:
        """Record a job. ``submit`` gives it a root task; on its own it is for work the
        appliance does on its own account (a supervisor growing pools), whose instances
        appear as roots of that job."""
        job = JobContext(new_job_id(), new_command_id())
        self.journal.record(
            JobSubmitted(
                job_id=job.job_id,
                command_id=job.command_id,
                command=command,
                autonomous=autonomous,
                at=self.clock.now(),
            )
        )
        return job

    def open_job_of(self, job: JobContext, command: str) -> None:
        """Record a job another fleet device started, under its ids, before the first task
        it places here: this device's graph then holds that task under a job it knows. Kept
        as it is if the fleet's graph brought the job here first."""
        self.graph.record_job(
            JobSubmitted(
                job_id=job.job_id,
                command_id=job.command_id,
                command=command,
                autonomous=False,
                at=self.clock.now(),
            ),
            table="foreign_jobs",
        )

    def spawn(
        self,
        agent_type: str,
        job: JobContext,
        objective: str,
        *,
        caller: TaskRef | None = None,
        start: Event | None = None,
        autonomous: bool = False,
        task_id: str | None = None,
    ) -> TaskRef:
        """Create an instance, record it in the graph, and give it its start event.

        The start event (``start``, or ``Started(objective)`` when the type accepts that) is
        the task: what its handler returns or raises becomes the task's outcome. ``task_id``:
        the id another fleet device gave the task it placed here (a new one otherwise)."""
        return self._spawn(
            self.types.kind(agent_type),
            job,
            objective,
            caller,
            start,
            autonomous,
            idle=False,
            task_id=task_id,
        ).ref

    def spawn_idle(self, kind: AgentKind, job: JobContext, caller: TaskRef | None) -> Instance:
        """An instance with no start event at all: it just serves the events sent to it (a
        pool member: its objective is no command, so a type that parses ``Started`` would
        fail)."""
        return self._spawn(kind, job, f"{kind.name} pool", caller, None, False, idle=True)

    def _spawn(
        self,
        kind: AgentKind,
        job: JobContext,
        objective: str,
        caller: TaskRef | None,
        start: Event | None,
        autonomous: bool,
        *,
        idle: bool,
        task_id: str | None = None,
    ) -> Instance:
        if kind.failed is not None:
            raise AgentTypeFailed(f"agent type {kind.name!r} is marked failed: {kind.failed}")
        handler = None if idle else start_handler(kind, start)
        if self._tg is None:
            raise RuntimeStopped("the runtime is not running")
        ref = TaskRef(kind.name, task_id or new_task_id())
        if ref.task_id in self._instances:
            raise BadCommand(f"task {ref.task_id} is already running here")
        inst = self._add_instance(kind, ref, job, objective)
        event = start if start is not None else Started(objective=objective)
        self.journal.spawned(
            TaskSpawned(
                job_id=job.job_id,
                task_id=ref.task_id,
                agent_type=kind.name,
                objective=objective,
                parent_task_id=caller.task_id if caller else None,
                parent_agent=caller.agent_type if caller else None,
                autonomous=autonomous,
                at=self.clock.now(),
            ),
            _encode(event) if handler is not None else None,
        )
        if handler is not None:
            env = _envelope(ref, event, job, caller, None)
            self.enqueue(Delivery(inst, handler, env, None, True))
        return inst

    def _add_instance(
        self, kind: AgentKind, ref: TaskRef, job: JobContext, objective: str
    ) -> Instance:
        inst = Instance(kind, ref, job, objective)
        kind.instances[ref.task_id] = inst
        self._instances[ref.task_id] = inst
        self._job_members.setdefault(job.job_id, []).append(inst)
        return inst

    def live(self, task_id: str) -> Instance | None:
        return self._instances.get(task_id)

    def stop_instance(self, ref: TaskRef, reason: str = "stopped") -> None:
        """Retire an instance: it takes no more events; handlers already running finish."""
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        self.retire(inst)
        if inst.outcome is None:
            self.task_ended(inst, "cancelled", None, reason)

    def cancel_job(self, job_id: str, reason: str) -> list[TaskRef]:
        """Stop a job now: every task of it that has not ended is cancelled (its running
        handlers too, and what it still had queued), recorded with ``reason``, and retired.
        Pool instances serve every job and stay. Returns the tasks cancelled."""
        cancelled = []
        for inst in reversed(self._job_members.get(job_id, [])):  # the root last: its end
            # ends the job, which retires whatever is left
            if inst.pooled or not inst.alive:
                continue
            inst.generation += 1  # whatever its handlers do from now on is dropped
            for task, item in (inst.running or {}).items():
                task.cancel()
                if item.reply is not None:
                    item.reply.cancel()  # a requester waiting on it hears now, not at its timeout
            inst.running = None
            inst.inflight = 0
            for item in inst.backlog or ():
                if item.reply is not None:
                    item.reply.cancel()
            inst.backlog = None
            self.retire(inst)
            if inst.outcome is None:
                cancelled.append(inst.ref)
                self.task_ended(inst, "cancelled", None, reason)
        return cancelled

    def retire(self, inst: Instance) -> None:
        inst.alive = False
        self._tail = None  # nothing more rides on what was queued to it
        self._instances.pop(inst.ref.task_id, None)
        inst.kind.instances.pop(inst.ref.task_id, None)
        if inst.pooled:
            inst.kind.pool.remove(inst)

    def task_ended(self, inst: Instance, status: TaskStatus, result: Any, detail: str) -> None:
        self.failures.ended(inst.ref.task_id)
        try:
            raw = msgspec.Raw(_encode(result)) if result is not None else None
        except (TypeError, msgspec.EncodeError) as err:
            raw, detail = None, f"{detail} (result not storable: {err})".strip()
        inst.outcome = TaskOutcome(ref=inst.ref, status=status, result=result, detail=detail)
        self.journal.status(
            inst.home.job_id, inst.ref.task_id, inst.kind.name, status, detail, result=raw
        )
        if inst.waiters is not None and not inst.waiters.done():
            inst.waiters.set_result(inst.outcome)
        if self._job_roots.get(inst.home.job_id) == inst.ref.task_id:
            self._job_ended(inst.home.job_id)

    def _job_ended(self, job_id: str) -> None:
        del self._job_roots[job_id]
        self.retire_job(job_id)

    def retire_job(self, job_id: str) -> None:
        """A finished job's instances retire, so a long-running appliance does not grow with
        every job; their records stay in the graph, and handlers still running finish. Its
        root's end does it, or, for a job another fleet device runs, the end of the last task
        it placed here."""
        for member in self._job_members.pop(job_id, []):
            if not member.pooled:
                self.retire(member)

    # -- pools ------------------------------------------------------------------------------

    def add_to_pool(self, agent_type: str, job: JobContext) -> TaskRef:
        """Grow a type's pool by one idle instance (the supervisor scales pools with this)."""
        return self.pools.grow(agent_type, job)

    def remove_from_pool(self, agent_type: str) -> TaskRef | None:
        """Shrink a type's pool by one idle instance (None if every one is busy)."""
        return self.pools.shrink(agent_type)

    def pin_pool(self, agent_type: str, size: int | None) -> None:
        """Hold a type's pool at ``size`` (an admin's choice) so autoscaling leaves it be;
        None hands it back to the supervisor."""
        self.pools.pin(agent_type, size)

    def pinned_pool(self, agent_type: str) -> int | None:
        return self.pools.pinned(agent_type)

    def pool_loads(self, agent_type: str) -> list[int]:
        """In-flight plus queued events of each pool instance: what utilisation samples."""
        return self.pools.loads(agent_type)

    # -- addressing -----------------------------------------------------------------------

    def publish_nowait(
        self,
        target: Target,
        event: Event,
        job: JobContext,
        caller: TaskRef | None = None,
        sender: str | None = None,
    ) -> None:
        """Deliver ``event`` or raise (unknown target, not accepted, inbox full): never half.

        Not keyword-only, unlike the rest of the API (``send`` neither): Python 3.11 looks up
        a keyword-only parameter's default in a dict at every call, which makes the call a
        quarter slower than with its defaults by position (111 against 88 ns, measured)."""
        tail = self._tail
        if tail is not None and (
            (
                target is self._tail_target
                and job is self._tail_job
                and caller is self._tail_caller
                and sender is self._tail_sender
                and type(event) is self._tail_type
            )
            or self._like_tail(target, event, job, caller, sender)
        ):
            # The common case of a stream of events to one task: the same target, job,
            # caller and sender, and an event of the same type (so the same handler), as the
            # event queued just before. It rides on that one's delivery (_drain).
            riding = tail.inst
            if riding.queued < riding.kind.inbox_size and riding.kind.failed is None:
                riding.queued += 1
                self._ready.append(event)
                return
        if self._tg is None:
            raise RuntimeStopped("the runtime is not running")
        env: Envelope[Any] | None = None
        if type(target) is TaskRef:  # the common case, resolved here rather than by a call
            inst = self._instances.get(target.task_id)
            if inst is None:
                raise UnknownTask(f"no live instance {target}")
        elif type(target) is TopicRef:
            env = _envelope(target, event, job, caller, sender)
            self._publish_topic(target, env)
            if self.beyond is not None and is_fleet_topic(target.topic):
                self._carry_later(self.beyond, env)
            return
        elif self.beyond is not None and self._only_beyond(target):
            self._carry_later(self.beyond, _envelope(target, event, job, caller, sender))
            return
        else:
            env = _envelope(target, event, job, caller, sender)
            inst = self._resolve(target, env)
        handler = inst.handlers.get(type(event))
        if handler is None:
            raise EventNotAccepted(not_accepted(inst.kind, event))
        if inst.queued >= inst.kind.inbox_size:
            raise InboxFull(f"{inst.name} has {inst.queued} events waiting")
        if inst.kind.failed is not None:
            raise AgentTypeFailed(f"{inst.name}: its type is marked failed: {inst.kind.failed}")
        if env is None:
            env = (  # _envelope's common case, inlined
                Envelope(event=event, job=job, target=target, sender=sender)
                if caller is None
                else _envelope(target, event, job, caller, sender)
            )
        item = Delivery(inst, handler, env, None, False)
        self.enqueue(item)
        if not self._taps:  # a traffic watch is handed each envelope as it is queued
            self._tail = item  # the next event like this one may ride on it
            self._tail_target, self._tail_job, self._tail_caller = target, job, caller
            self._tail_sender, self._tail_type = sender, type(event)

    def send(
        self,
        target: Target,
        event: Event,
        job: JobContext,
        caller: TaskRef | None = None,
        sender: str | None = None,
    ) -> Awaitable[None]:
        """Like ``publish_nowait`` but waits for inbox room instead of refusing (backpressure).

        Awaitable, not a coroutine: when there is room, as there nearly always is, the event
        is queued at once and a finished future comes back, so the common case costs no
        coroutine. Other errors are raised at the call, like ``publish_nowait``'s. In a fleet,
        an event for a type only other devices run, or for a fleet-wide topic, is sent on
        to them, and the wait includes the broker taking it."""
        tail = self._tail
        if tail is not None and (
            (
                target is self._tail_target
                and job is self._tail_job
                and caller is self._tail_caller
                and sender is self._tail_sender
                and type(event) is self._tail_type
            )
            or self._like_tail(target, event, job, caller, sender)
        ):
            # publish_nowait's riding, here too: the call to it would cost more than the rest
            # of the event's queueing. A tail is a delivery to an instance on this device, so
            # what is sent beyond it never rides.
            riding = tail.inst
            if riding.queued < riding.kind.inbox_size and riding.kind.failed is None:
                riding.queued += 1
                self._ready.append(event)
                return self._sent  # type: ignore[return-value]
        if self.beyond is not None and (
            self._only_beyond(target) or (type(target) is TopicRef and is_fleet_topic(target.topic))
        ):
            return self._send_beyond(self.beyond, _envelope(target, event, job, caller, sender))
        try:
            self.publish_nowait(target, event, job=job, caller=caller, sender=sender)
        except InboxFull:
            return self._send_when_room(target, event, job, caller, sender)
        return self._sent  # type: ignore[return-value]

    def _like_tail(
        self,
        target: Target,
        event: Event,
        job: JobContext,
        caller: TaskRef | None,
        sender: str | None,
    ) -> bool:
        """An event given what the tail was given, equal if not the same objects (an edge
        decodes a new TaskRef for each event): it rides too."""
        return (
            type(event) is self._tail_type
            and target == self._tail_target
            and job == self._tail_job
            and caller == self._tail_caller
            and sender == self._tail_sender
        )

    def _only_beyond(self, target: Target) -> bool:
        """A type this device does not run: in a fleet, another device may."""
        return type(target) is TypeRef and target.agent_type not in self._kinds

    async def _send_beyond(self, beyond: Beyond, env: Envelope[Event]) -> None:
        target = env.target
        if type(target) is TopicRef:  # this device's own subscribers first, then the others'
            await self._topic_here(target, env)
        await beyond.carry(env)

    def _carry_later(self, beyond: Beyond, env: Envelope[Event]) -> None:
        """``publish_nowait`` across devices: checked now, carried in the background (the
        broker takes it at once unless the link is backed up), a failure logged."""
        target = env.target
        if type(target) is TypeRef and not beyond.serves(target.agent_type):
            raise UnknownAgentType(f"no agent type {target.agent_type!r} here or in the fleet")
        assert self._tg is not None  # publish_nowait checked it
        self._tg.create_task(self._carry_logged(beyond, env))

    @staticmethod
    async def _carry_logged(beyond: Beyond, env: Envelope[Event]) -> None:
        try:
            await beyond.carry(env)
        except Exception as err:  # nobody waits on it: said, never raised into the runtime
            log.warning("fleet: an event for %s was not carried: %s", env.target, err)

    async def _topic_here(self, target: TopicRef, env: Envelope[Event]) -> None:
        """A topic's event to this device's subscribers, waiting for inbox room."""
        while True:
            try:
                self._publish_topic(target, env)
                return
            except InboxFull:
                await self._wait_space(target)

    async def topic_from_edge(self, env: Envelope[Event]) -> None:
        """A fleet-wide topic's event from another device, to this device's subscribers alone
        (the sender reached the others itself), held to the rules of ``deliver``."""
        self._check_from_client(env)
        target = env.target
        if type(target) is not TopicRef or not is_fleet_topic(target.topic):
            raise EventNotAllowed(f"{target} is not a fleet-wide topic")
        await self._topic_here(target, env)

    async def _send_when_room(
        self,
        target: Target,
        event: Event,
        job: JobContext,
        caller: TaskRef | None,
        sender: str | None,
    ) -> None:
        while True:
            await self._wait_space(target)
            try:
                self.publish_nowait(target, event, job=job, caller=caller, sender=sender)
                return
            except InboxFull:
                continue

    async def request(
        self,
        target: TaskRef | TypeRef,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Send and wait for the handler's return value; HandlerFailed if it raised. In a
        fleet, a type only other devices run is asked there.

        To an instance with nothing queued and room to run, the handler starts at once, in
        the caller's turn, and the caller gives the loop one turn before it has the answer:
        the same order as through the queue, without the queue's round trip."""
        if self._tg is None or self._loop is None:
            raise RuntimeStopped("the runtime is not running")
        if self.beyond is not None and self._only_beyond(target):
            return await self.beyond.request(
                target.agent_type, event, job=job, caller=caller, timeout=timeout
            )
        env = (  # _envelope's and _resolve's common cases, inlined, as in publish_nowait
            Envelope(event=event, job=job, target=target)
            if caller is None
            else _envelope(target, event, job, caller, None)
        )
        inst = (
            self._instances.get(target.task_id) if type(target) is TaskRef else None
        ) or self._resolve(target, env)
        handler = inst.handlers.get(type(event))
        if handler is None:
            raise EventNotAccepted(not_accepted(inst.kind, event))
        if inst.kind.failed is not None:
            raise AgentTypeFailed(f"{inst.name}: its type is marked failed: {inst.kind.failed}")
        while inst.queued >= inst.kind.inbox_size:
            await self._wait_space(inst.ref)
        reply: asyncio.Future[Any] = self._loop.create_future()
        item = Delivery(inst, handler, env, reply, False)
        if (
            inst.queued
            or inst.backlog
            or inst.inflight >= inst.kind.concurrency
            or self._taps
            or self._starter.busy
        ):
            self.enqueue(item)
        else:
            # Nothing is ahead of it for this instance, which has room: its handler starts
            # now, as _drain would start it next, and a reply it has at once needs no timeout.
            # A traffic watch is handed each event as it is queued, and a handler's inline
            # first step (the starter busy) is not re-entered: then it is queued.
            inst.queued += 1  # _start counts it out
            self._start(item, env)
            self._check_trail()
            if reply.done():
                await asyncio.sleep(0)  # the caller gives the loop its turn, as if it had waited
                return reply.result()
        # Not asyncio.timeout: that needs a current task, which a handler's inline first step
        # does not have, and it costs more.
        self._deadlines.watch(reply, timeout, inst.name)  # type: ignore[union-attr]
        return await reply

    def _resolve(self, target: Target, env: Envelope[Any]) -> Instance:
        if type(target) is TaskRef:
            inst = self._instances.get(target.task_id)
            if inst is None:
                raise UnknownTask(f"no live instance {target}")
            return inst
        if type(target) is TypeRef:
            return self.pools.pick(self.types.kind(target.agent_type), env)
        raise TypeError(f"cannot address {target!r} this way")

    def _publish_topic(self, target: TopicRef, env: Envelope[Any]) -> None:
        items: list[Delivery] = []
        for kind in self._topics.get(target.topic, ()):
            handler = kind.handlers.get(type(env.event))
            if handler is None or kind.failed is not None:
                continue
            for inst in kind.instances.values():
                if inst.queued >= kind.inbox_size:
                    raise InboxFull(f"{inst.name} (subscribed to {target}) is full")
                items.append(Delivery(inst, handler, env, None, False))
        for item in items:
            self.enqueue(item)
        self.journal.offer(env)

    async def _wait_space(self, target: Target) -> None:
        if type(target) is TaskRef:
            insts: Iterable[Instance] = [self._instances[target.task_id]]
        elif type(target) is TypeRef:
            insts = self.types.kind(target.agent_type).pool
        elif type(target) is TopicRef:
            insts = [i for k in self._topics.get(target.topic, ()) for i in k.instances.values()]
        else:
            raise TypeError(f"cannot address {target!r}")
        full = next((i for i in insts if i.queued >= i.kind.inbox_size), None)
        if full is None:
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        if full.space is None:
            full.space = deque()
        full.space.append(waiter)
        await waiter

    # -- dispatch: the hot path, in one place ------------------------------------------------

    def enqueue(self, item: Delivery) -> None:
        item.inst.queued += 1
        self._ready.append(item)
        self._tail = None  # only publish_nowait lets an event ride on the delivery before it
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]
        if self._taps:
            for tap in self._taps:
                tap.offer(item.env)

    def requeue(self, inst: Instance, items: list[Delivery]) -> None:
        """Put events back at the head of an instance's inbox (a restart's in-flight work)."""
        if inst.backlog is None:
            inst.backlog = deque()
        inst.backlog.extendleft(reversed(items))
        inst.queued += len(items)
        self._resumable.append(inst)
        self._schedule()

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the runtime's TaskGroup (a retry's delay)."""
        assert self._tg is not None
        self._tg.create_task(coro)

    def _drain(self) -> None:
        """Start what is ready, a batch at a time.

        ``_ready`` holds deliveries, and bare events: a run of one-way events to one task, of
        one job and one sender, is a delivery followed by the rest of the run's events, each
        of which gets its envelope (a copy of that delivery's with its own event) only now.
        A queued event then costs one slot, not an envelope and a delivery: a burst's memory.
        """
        self._scheduled = False
        self._at = self._now()  # one clock read for the batch: the audit trail's time
        while self._resumable:
            inst = self._resumable.popleft()
            backlog = inst.backlog
            while backlog and inst.inflight < inst.kind.concurrency:
                item = backlog.popleft()
                self._start(item, item.env)
        ready = self._ready
        head = self._head
        budget = min(len(ready), _DRAIN_BATCH)
        while budget:
            budget -= 1
            got = ready.popleft()
            if not ready:
                self._tail = None  # nothing left to ride on: before any handler publishes
            if type(got) is Delivery:
                head = got
                env = got.env
            else:
                assert head is not None  # a bare event always follows a delivery
                env = _replace(head.env, event=got)
            inst = head.inst
            if inst.backlog or inst.inflight >= inst.kind.concurrency:
                if inst.backlog is None:
                    inst.backlog = deque()
                inst.backlog.append(_own(head, env))
                continue
            self._start(head, env)
            if budget and ready and type(ready[0]) is not Delivery and inst.kind.eager:
                budget = self._run(head, budget)
        self._head = head if ready else None
        self._at = None
        self._check_trail()
        if ready or self._resumable:
            self._schedule()

    def _run(self, head: Delivery, budget: int) -> int:
        """The events riding on ``head`` next in the queue, while its instance is free: what
        ``_start`` and ``_done`` do for one, with what the run shares looked up once. This is
        the hot path's common case (a burst, a stream of events to one task). The first event
        that waits or fails takes the general way (``_adopt``, ``_finish``) and ends the run
        here; ``_drain`` goes on with the rest. Returns the batch's budget left.

        The audit trail gets each event as it is handled, and the items the run's events
        share (when, the job, the instance, "done") for all of them at once, before anything
        else can add to it: the two stay in step."""
        inst = head.inst
        if inst.inflight:
            return budget  # the general way (_drain), behind the handler in flight
        ready = self._ready
        handler, agent, shared = head.handler, inst.agent, head.env
        job_id = shared.job.job_id
        state = inst.state_of(shared.job)
        snapshot = inst.kind.snapshot
        home = snapshot and (shared.job is inst.home or job_id == inst.home.job_id)
        starter = self._starter
        send = starter.send  # the same driver all run: one that waits or raises ends the run
        finished = eager.DONE  # one lookup, not one an event
        ran: list[Event] = []  # the run's events that ended well, in order
        ended_well = ran.append
        # A handler of the run is in flight only from when it waits or fails: until its first
        # step ends, nothing else runs that could count it. What only a handler's end
        # changes (the instance's fault, its home state marked unsaved) is settled after it.
        while len(ran) < budget and ready:
            if not inst.alive or inst.space or inst.backlog:
                break  # the general way: _drain
            item = ready.popleft()  # and put back if it is not this run's: one lookup, not two
            if type(item) is Delivery:
                ready.appendleft(item)  # the next run's head: _drain's
                break
            got: Event = item  # type: ignore[assignment]  # not a Delivery: just above
            if not ready:
                self._tail = None
            inst.queued -= 1
            ctx: Context[Any] = Context(self, inst, shared, got, state)
            try:
                step = send(handler(agent, got, ctx))
            except BaseException as err:
                starter.renew()
                if not isinstance(err, Exception | asyncio.CancelledError):
                    raise
                self._ran(inst, ran, home, job_id)
                inst.inflight += 1  # _finish counts it out
                self._finish(_own(head, ctx.envelope), ctx, inst.generation, None, err)
                return budget - len(ran) - 1
            if step is not finished:
                self._ran(inst, ran, home, job_id)
                inst.inflight += 1  # until its Task ends (_finish)
                self._adopt(_own(head, ctx.envelope), ctx, starter.detach(step))
                return budget - len(ran) - 1
            ended_well(got)
            if home:
                inst.home_snap = _encode(state)
            elif snapshot:
                inst.snapshot(job_id, _encode(state))
                self._unsaved_row(inst, job_id)
        self._ran(inst, ran, home, job_id)
        return budget - len(ran)

    def _ran(self, inst: Instance, ran: list[Event], home: bool, job_id: str) -> None:
        """The end of a run of events that ended well (``_run``), before anything else
        happens: the audit trail's entries for them, the counts, the instance's fault
        cleared, and its home state's snapshot marked for the next commit."""
        handled = len(ran)
        if not handled:
            return
        if self.audit is not None:
            self.audit.record_run(ran, self._at or self._now(), job_id, inst.name)
        inst.handled += handled
        self.handled += handled
        inst.fault = None  # it handles events again: whatever crashed was the event's
        if home and not inst.home_unsaved:  # once per commit, not per event
            inst.home_unsaved = True
            self._unsaved_row(inst, job_id)

    def _start(self, item: Delivery, env: Envelope[Any]) -> None:
        """Start ``env``'s handler: ``item`` is its delivery, or the one it rode on."""
        inst = item.inst
        inst.queued -= 1
        if not inst.alive:  # retired (its job was cancelled) after this was queued
            if item.reply is not None:
                item.reply.cancel()
            return
        if inst.space:
            waiter = inst.space.popleft()
            if not waiter.done():
                waiter.set_result(None)
        inst.inflight += 1
        ctx: Context[Any] = Context(self, inst, env, env.event, inst.state_of(env.job))
        coro: Coroutine[Any, Any, Any] = item.handler(inst.agent, env.event, ctx)  # type: ignore[assignment]
        if not inst.kind.eager:
            self._adopt(_own(item, env), ctx, coro)
            return
        starter = self._starter
        try:
            step = starter.send(coro)
        except BaseException as err:
            starter.renew()  # the error ended its driver
            if not isinstance(err, Exception | asyncio.CancelledError):
                raise
            self._finish(_own(item, env), ctx, inst.generation, None, err)
            return
        if step is eager.DONE:
            self._done(item, env, ctx, starter.box[0])  # the same incarnation: it ran just now
        else:
            self._adopt(_own(item, env), ctx, starter.detach(step))

    def _adopt(self, item: Delivery, ctx: Context[Any], handling: Awaitable[Any]) -> None:
        """Give a handler that really waits a Task of its own, under its type's deadline."""
        inst = item.inst
        assert self._tg is not None
        self._suspended += 1
        task = self._tg.create_task(self._resume(item, ctx, handling, inst.generation))
        # A done callback, not a finally: it runs even for a Task cancelled before its first
        # step (a restart can do that), which never enters _resume's body.
        task.add_done_callback(self._adopted_done)
        if inst.running is None:
            inst.running = {}
        inst.running[task] = item

    def _adopted_done(self, task: asyncio.Task[None]) -> None:
        self._suspended -= 1
        self._check_trail()  # it finished outside a batch, whose end _drain checks

    def _check_trail(self) -> None:
        """After handlers ended: the audit trail's chunk, if one is due (``AuditTrail.grew``)."""
        events = self._trail_events
        if events and len(events) >= self.audit.due:  # type: ignore[union-attr]
            self.audit.grew()  # type: ignore[union-attr]

    async def _resume(
        self,
        item: Delivery,
        ctx: Context[Any],
        handling: Awaitable[Any],
        generation: int,
    ) -> None:
        inst = item.inst
        limit = inst.kind.cls.handler_timeout_s
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                result = await handling
        except asyncio.CancelledError as err:
            task = asyncio.current_task()
            if generation != inst.generation:
                return  # its instance restarted; the event went to the new incarnation
            self._settled(inst)
            if task is not None and task.cancelling():
                self._finish(item, ctx, generation, None, None, cancelled=True)
                raise
            self._finish(item, ctx, generation, None, err)
        except Exception as err:
            self._settled(inst)
            if deadline.expired():
                hung = HandlerHung(f"handler overran its {limit}s deadline")
                self._finish(item, ctx, generation, None, hung.with_traceback(err.__traceback__))
            else:
                self._finish(item, ctx, generation, None, err)
        else:
            self._settled(inst)
            self._finish(item, ctx, generation, result, None)

    @staticmethod
    def _settled(inst: Instance) -> None:
        """This handler is no longer in flight: drop it before _finish, whose failure path
        may restart the instance and requeue whatever is still in flight."""
        if inst.running is not None:
            inst.running.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    def _finish(
        self,
        item: Delivery,
        ctx: Context[Any],
        generation: int,
        result: Any,
        err: BaseException | None,
        *,
        cancelled: bool = False,
    ) -> None:
        inst = item.inst
        if generation != inst.generation:
            return  # a stale incarnation's handler: its event was requeued at the restart
        if err is None and not cancelled:
            self._done(item, item.env, ctx, result)
            return
        inst.inflight -= 1
        inst.handled += 1
        self.handled += 1
        if cancelled:
            self._audit(item.env, inst, "cancelled")
            if item.reply is not None and not item.reply.done():
                item.reply.cancel()
            if item.is_start:
                self.task_ended(inst, "cancelled", None, "runtime stopped")
        else:
            assert err is not None  # a handler that neither returned nor was cancelled
            self._audit(item.env, inst, "failed")
            self.failures.failed(item, err)
        if inst.backlog:
            self._resumable.append(inst)
            self._schedule()

    def _done(self, item: Delivery, env: Envelope[Any], ctx: Context[Any], result: Any) -> None:
        """A handler returned: the end of nearly every event, so written for speed. ``env``
        is its envelope, or the one it rode on (which differs only in the event)."""
        inst = item.inst
        inst.inflight -= 1
        inst.handled += 1
        self.handled += 1
        trail = self._trail
        if trail is not None:  # _audit, inlined
            self._trail_event(ctx.event, self._trail_events, -1)  # first: it is what may raise
            trail += (self._at or self._now(), env.job.job_id, inst.name, "done", 1)
        if inst.fault is not None:
            inst.fault = None  # it handles events again: whatever crashed was the event's
        if inst.kind.snapshot:
            # The state the handler left behind is the point a restart recovers to. The store
            # collects it at its next commit (_unsaved_snapshots): a burst of events costs one
            # encode each, and one row per (task, job) per commit.
            state = ctx.state
            job = env.job
            if job is inst.home or job.job_id == inst.home.job_id:
                inst.home_snap = _encode(state)
                if not inst.home_unsaved:  # once per commit, not per event
                    inst.home_unsaved = True
                    self._unsaved_row(inst, job.job_id)
            else:
                inst.snapshot(job.job_id, _encode(state))
                self._unsaved_row(inst, job.job_id)
        reply = item.reply
        if reply is not None and not reply.done():
            reply.set_result(result)
        if item.is_start:
            self.task_ended(inst, "done", result, "")
        if inst.backlog:
            self._resumable.append(inst)
            self._schedule()

    def _audit(self, env: Envelope[Any], inst: Instance, outcome: str) -> None:
        """``AuditTrail.record``, for the trail the runtime holds: a handled event goes on
        its flat list; the end of the batch (``_drain``) or of the adopted handler
        (``_adopted_done``) checks whether a chunk is due."""
        if self._trail is not None:
            self._trail_event(env.event, self._trail_events, -1)
            self._trail += (self._at or self._now(), env.job.job_id, inst.name, outcome, 1)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]

    def _unsaved_row(self, inst: Instance, job_id: str) -> None:
        """A (task, job) state for the store's next commit."""
        if not self._unsaved:
            self.store.wake()
        self._unsaved[(inst.ref.task_id, job_id)] = inst

    def _unsaved_snapshots(self) -> list[tuple[str, object, tuple[Any, ...]]]:
        unsaved, self._unsaved = self._unsaved, {}
        for inst in unsaved.values():
            inst.home_unsaved = False
        now = self.clock.now()
        return [
            ("states", key, (key[0], key[1], inst.kind.name, inst.snapshot_of(key[1]), now))
            for key, inst in unsaved.items()
        ]

    def restart(self, ref: TaskRef, reason: str) -> None:
        """Restart an instance from its last committed state (the supervisor's health check
        does this to an instance that stopped making progress)."""
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        self.failures.restart(inst, reason, [])

    # -- recovery after a process restart -------------------------------------------------

    async def _resume_unfinished(self) -> None:
        """After a process restart: every job whose root task had not ended runs its root
        again from its last committed state; the rest of such a job's unfinished tasks are
        recorded as cancelled (the root spawns what it still needs)."""
        assert self._loop is not None
        for task in await self.graph.unfinished():
            kind = self._kinds.get(task.agent_type)
            start = self._stored_start(task, kind)
            if kind is None or start is None or not task.is_root or kind.failed is not None:
                self.journal.status(
                    task.job_id,
                    task.task_id,
                    task.agent_type,
                    "cancelled",
                    "interrupted when the appliance stopped",
                )
                continue
            handler = kind.handlers[type(start)]
            job = JobContext(task.job_id, task.command_id)
            inst = self._add_instance(kind, TaskRef(kind.name, task.task_id), job, task.objective)
            for job_id, data in task.states.items():
                inst.snapshot(job_id, data)
            inst.recover_states()
            self._job_roots[job.job_id] = task.task_id
            self.journal.status(
                task.job_id,
                task.task_id,
                kind.name,
                "restarted",
                "resumed after the appliance restarted",
            )
            env = _envelope(inst.ref, start, job, None, None)
            self.enqueue(Delivery(inst, handler, env, None, True))

    def _stored_start(self, task: UnfinishedTask, kind: AgentKind | None) -> Event | None:
        if kind is None or task.start is None:
            return None
        try:
            start = self.decode_event(task.start)
        except BadEvent as err:
            log.error("cannot resume %s/%s: %s", task.agent_type, task.task_id, err)
            return None
        return start if type(start) in kind.handlers else None

    def record(self, rec: JournalRecord) -> None:
        """Append a record made outside the runtime (the supervisor's decisions)."""
        self.journal.record(rec)

    # -- waiting and introspection --------------------------------------------------------

    def outcome_future(self, ref: TaskRef) -> asyncio.Future[TaskOutcome]:
        """A future of a live task's outcome (already done if the task has ended)."""
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        if inst.waiters is None:
            inst.waiters = asyncio.get_running_loop().create_future()
            if inst.outcome is not None:
                inst.waiters.set_result(inst.outcome)
        return inst.waiters

    async def wait_task(self, ref: TaskRef) -> TaskOutcome:
        """How the task ended: waits while it runs (here, or placed on another device), reads
        the graph once it is gone."""
        if ref.task_id in self._instances:
            return await asyncio.shield(self.outcome_future(ref))
        there = self.placed.outcomes.get(ref.task_id) if self.placed is not None else None
        if there is not None:
            return await asyncio.shield(there)
        _tree, chain = await self.graph.chain(ref.task_id)
        node = chain[0]
        return TaskOutcome(ref=ref, status=node.status, result=node.result, detail=node.detail)

    def state_of(self, ref: TaskRef, job_id: str | None = None) -> msgspec.Struct:
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        return inst.state_for(job_id or inst.home.job_id)

    def instances(self, agent_type: str | None = None) -> list[InstanceInfo]:
        kinds = [self.types.kind(agent_type)] if agent_type else list(self._kinds.values())
        return [
            InstanceInfo(
                ref=i.ref,
                job_id=i.home.job_id,
                objective=i.objective,
                inflight=i.inflight,
                queued=i.queued,
                handled=i.handled,
                generation=i.generation,
                pooled=i.pooled,
                status=i.outcome.status if i.outcome else "running",
                fault=i.fault,
            )
            for k in kinds
            for i in k.instances.values()
        ]

    def watch(
        self,
        *,
        job_id: str | None = None,
        kinds: Iterable[str] | None = None,
        traffic: bool = False,
        limit: int = 1000,
    ) -> Watch:
        """Follow what happens: records (spawns, status, crashes), topic events, and with
        ``traffic=True`` every delivered event too. Filter by job and by event tag."""
        if traffic:
            self._tail = None  # from now on each event is queued with its own envelope
        return self.journal.watch(job_id=job_id, kinds=kinds, traffic=traffic, limit=limit)

    @property
    def busy(self) -> bool:
        return bool(self._ready or self._resumable or self._suspended)

    # -- lifetime -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()``: owns every handler task and the store's writer."""
        if self._tg is not None:
            raise RuntimeError("runtime is already running")
        self._loop = asyncio.get_running_loop()
        self._sent = self._loop.create_future()
        self._sent.set_result(None)
        self._deadlines = Deadlines(self._loop)
        self._stopping.clear()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.store.run(), name="qey-store-writer")
                self._tg = tg
                await self._resume_unfinished()
                self._running.set()
                await self._stopping.wait()
                self._tg = None
                raise _Stop
        except* _Stop:
            pass
        finally:
            self._tg = None
            self._tail = None  # nothing rides on what was queued: publish_nowait refuses now
            self._running.clear()
            self.journal.close()
            self._deadlines.close()
        await self.store.flush()

    async def wait_running(self) -> None:
        await self._running.wait()

    async def commit(self) -> None:
        """Wait until everything recorded so far is on disk (before telling a user "done")."""
        await self.store.flush()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or in flight; False if ``timeout`` passed first.

        Polls: becoming idle is not an event worth a hook on the hot path, and only tests and
        shutdown wait for it."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self.busy:
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking events, let handlers finish for up to ``grace_s``, then end ``run()``."""
        await self.wait_idle(grace_s)
        if self.placed is not None:
            await self.placed.stop()
        self._stopping.set()


def _envelope(
    target: Target, event: Event, job: JobContext, caller: TaskRef | None, sender: str | None
) -> Envelope[Any]:
    """The one place an envelope is made: its sender is the calling task unless named."""
    if caller is None:
        return Envelope(event=event, job=job, target=target, sender=sender)
    return Envelope(
        event=event,
        job=job,
        target=target,
        sender=sender or caller.task_id,
        caller_task_id=caller.task_id,
        caller_agent=caller.agent_type,
    )


@asynccontextmanager
async def running(runtime: Runtime, *, grace_s: float = 5.0) -> Any:
    """Run ``runtime`` for the body of an ``async with``, in a TaskGroup this block owns.

    An error the body raises comes out as itself, not wrapped in the TaskGroup's
    ExceptionGroup: a caller's ``except BadCommand`` (the CLI's clear error) still works."""
    raised: Exception | None = None
    async with asyncio.TaskGroup() as tg:
        tg.create_task(runtime.run(), name="qey-runtime")
        await runtime.wait_running()
        try:
            yield runtime
        except Exception as err:
            raised = err
        finally:
            await runtime.stop(grace_s)
    if raised is not None:
        raise raised

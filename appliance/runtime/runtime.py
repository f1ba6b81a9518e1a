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
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from appliance.errors import (
    AgentTypeFailed,
    ApplianceError,
    BadEvent,
    EventNotAccepted,
    EventNotAllowed,
    HandlerFailed,
    InboxFull,
    InternalAgentType,
    RequestTimeout,
    RuntimeStopped,
    UnknownAgentType,
    UnknownTask,
)
from appliance.events import AgentTypeFailed as AgentTypeFailedRecord
from appliance.events import (
    AgentTypeReset,
    Envelope,
    Event,
    EventRefused,
    EventRetried,
    EventShed,
    HandlerCrashed,
    InstanceRestarted,
    JobContext,
    JobSubmitted,
    JournalRecord,
    RecordEvent,
    Started,
    Target,
    TaskRef,
    TaskSpawned,
    TaskStatus,
    TaskStatusChanged,
    TopicRef,
    TypeRef,
)
from appliance.runtime import eager
from appliance.runtime.agent import Agent, DuplicateAgentType, Handler, accepted_kinds
from appliance.runtime.audit import DEFAULT_LIMIT as AUDIT_EVENTS
from appliance.runtime.audit import AuditTrail
from appliance.runtime.clock import Clock, SystemClock
from appliance.runtime.context import Context
from appliance.runtime.graph import TaskGraph, UnfinishedTask
from appliance.runtime.ids import new_command_id, new_job_id, new_task_id
from appliance.runtime.instance import AgentKind, Delivery, Instance, InstanceInfo
from appliance.runtime.knowledge import KnowledgeStore
from appliance.runtime.outcome import TaskOutcome
from appliance.runtime.recovery import Action, Failure, LetItFail, Supervision
from appliance.runtime.store import Store
from appliance.runtime.watch import Watch

log = logging.getLogger(__name__)

RUNTIME_TOPIC = "runtime"
_DRAIN_BATCH = 512
_encode = msgspec.json.encode


class _Stop(Exception):
    """Raised inside run()'s TaskGroup to end it (3.11 has no TaskGroup.cancel())."""


class HandlerHung(TimeoutError):
    """A handler overran its agent type's ``handler_timeout_s`` and was cancelled."""


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
        self.supervision: Supervision = supervision or LetItFail()
        self.store = store
        self.graph = TaskGraph(store)
        self.knowledge = KnowledgeStore(store, self.clock)
        self.audit = AuditTrail(store, self.clock, limit=audit_events) if audit_events else None
        self._types: dict[str, AgentKind] = {}
        self._instances: dict[str, Instance] = {}
        self._topics: dict[str, list[AgentKind]] = {}
        self._ready: deque[Delivery] = deque()
        self._resumable: deque[Instance] = deque()
        self._scheduled = False
        self._suspended = 0
        self._tg: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = asyncio.Event()
        self._stopping = asyncio.Event()
        self._watches: list[Watch] = []
        self._taps: list[Watch] = []
        self._job_members: dict[str, list[Instance]] = {}
        self._job_roots: dict[str, str] = {}
        self._event_types: set[type[Event]] = {Started}
        self._decoder: msgspec.json.Decoder[Any] | None = None
        self._type_listeners: list[Callable[[type[Agent]], None]] = []
        self._sent: asyncio.Future[None] | None = None
        self._unsaved: dict[tuple[str, str], Instance] = {}
        self._fallbacks: dict[str, list[str]] = {}  # root task -> types to hand it to
        store.add_source(self._unsaved_snapshots)
        self.handled = 0
        self.crashed = 0

    # -- agent types ----------------------------------------------------------------------

    def register(self, cls: type[Agent], factory: Callable[[], Agent] | None = None) -> None:
        """Make an agent type spawnable; from now on its events decode at every edge."""
        if cls.name in self._types:
            raise DuplicateAgentType(
                f"agent type {cls.__qualname__}: name = {cls.name!r} is already registered "
                f"(by {self._types[cls.name].cls.__module__}."
                f"{self._types[cls.name].cls.__qualname__}); give it a name of its own"
            )
        kind = AgentKind(cls, factory or cls)
        self._types[cls.name] = kind
        for topic in cls.topics:
            self._topics.setdefault(topic, []).append(kind)
        self._event_types.update(cls.handlers)
        self._decoder = None
        for listener in self._type_listeners:
            listener(cls)

    def on_agent_type(self, listener: Callable[[type[Agent]], None]) -> None:
        """Call ``listener`` for every agent type registered, now and later (the router
        embeds each new type's description this way, so it is routable without retraining)."""
        self._type_listeners.append(listener)
        for kind in list(self._types.values()):
            listener(kind.cls)

    @property
    def agent_types(self) -> list[type[Agent]]:
        return [k.cls for k in self._types.values()]

    def agent_class(self, name: str) -> type[Agent]:
        return self._kind(name).cls

    def _kind(self, name: str) -> AgentKind:
        kind = self._types.get(name)
        if kind is None:
            raise UnknownAgentType(
                f"no agent type {name!r}; known: {', '.join(sorted(self._types)) or 'none'}"
            )
        return kind

    def startable(self, agent_type: str) -> type[Agent]:
        """The agent type, if a command or an admin may start it (or size its pool); an
        internal one raises InternalAgentType naming those that may."""
        kind = self._kind(agent_type)
        if kind.cls.internal:
            raise InternalAgentType(
                f"agent type {kind.name!r} is internal: the appliance runs it for itself, "
                f"never for a command; commands go to: {', '.join(self.startable_types())}"
            )
        return kind.cls

    def startable_types(self) -> list[str]:
        return sorted(name for name, kind in self._types.items() if not kind.cls.internal)

    # -- the one typed decoder for every edge ---------------------------------------------

    def _envelope_decoder(self) -> msgspec.json.Decoder[Any]:
        if self._decoder is None:
            union = _union(self._event_types)
            self._decoder = msgspec.json.Decoder(Envelope[union])  # type: ignore[valid-type]
        return self._decoder

    def decode_envelope(self, data: bytes | str) -> Envelope[Event]:
        """Decode an envelope from the wire (HTTP, serial, SQLite) or raise BadEvent."""
        try:
            env: Envelope[Event] = self._envelope_decoder().decode(data)
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event envelope: {err}") from err
        return env

    def decode_event(self, data: bytes | str) -> Event:
        try:
            event: Event = msgspec.json.decode(data, type=_union(self._event_types))
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event: {err}") from err
        return event

    def client_kinds(self) -> list[str]:
        """The event kinds a client may send: those some non-internal type accepts. What only
        internal types take (a hardware event for the network watcher, a vote for its
        tracker) comes from inside the appliance alone."""
        return sorted(
            {
                str(event_type.__struct_config__.tag)
                for kind in self._types.values()
                if not kind.cls.internal
                for event_type in kind.handlers
            }
        )

    def deliver(self, env: Envelope[Event]) -> None:
        """Hand a decoded envelope from an edge (a client) to its target, with
        ``publish_nowait`` semantics, if a client may send it: EventNotAllowed, nothing
        delivered or recorded, for a kind only the appliance sends or an internal target."""
        self._check_from_client(env)
        caller = None
        if env.caller_task_id is not None:
            caller = TaskRef(env.caller_agent or "?", env.caller_task_id)
        self.publish_nowait(env.target, env.event, job=env.job, caller=caller, sender=env.sender)

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
            kind = self._types.get(target.agent_type)
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
        """
        self.startable(agent_type)
        job, root = self._submit(command, agent_type, start=start, autonomous=autonomous)
        if fallbacks:
            self._fallbacks[root.task_id] = list(fallbacks)
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
        kind = self._kind(agent_type)
        if start is None:
            start = kind.cls.start_for(command)
        self._check_spawnable(kind, start)
        job = self.open_job(command, autonomous=autonomous)
        root = self.spawn(agent_type, job, command, start=start, autonomous=autonomous)
        self._job_roots[job.job_id] = root.task_id
        return job, root

    def open_job(self, command: str, *, autonomous: bool = True) -> JobContext:
        """Record a job. ``submit`` gives it a root task; on its own it is for work the
        appliance does on its own account (a supervisor growing pools), whose instances
        appear as roots of that job."""
        job = JobContext(new_job_id(), new_command_id())
        self._record(
            JobSubmitted(
                job_id=job.job_id,
                command_id=job.command_id,
                command=command,
                autonomous=autonomous,
                at=self.clock.now(),
            )
        )
        return job

    def spawn(
        self,
        agent_type: str,
        job: JobContext,
        objective: str,
        *,
        caller: TaskRef | None = None,
        start: Event | None = None,
        autonomous: bool = False,
        idle: bool = False,
    ) -> TaskRef:
        """Create an instance, record it in the graph, and give it its start event.

        The start event (``start``, or ``Started(objective)`` when the type accepts that) is
        the task: what its handler returns or raises becomes the task's outcome. ``idle``:
        no start event at all, the instance just serves the events sent to it (a pool
        member: its objective is no command, so a type that parses ``Started`` would fail).
        """
        kind = self._kind(agent_type)
        if kind.failed is not None:
            raise AgentTypeFailed(f"agent type {kind.name!r} is marked failed: {kind.failed}")
        if idle and start is not None:
            raise ValueError("an idle instance has no start event")
        start_handler = None if idle else self._check_spawnable(kind, start)
        if self._tg is None:
            raise RuntimeStopped("the runtime is not running")
        ref = TaskRef(kind.name, new_task_id())
        inst = self._add_instance(kind, ref, job, objective)
        event = start if start is not None else Started(objective=objective)
        rec = TaskSpawned(
            job_id=job.job_id,
            task_id=ref.task_id,
            agent_type=kind.name,
            objective=objective,
            parent_task_id=caller.task_id if caller else None,
            parent_agent=caller.agent_type if caller else None,
            autonomous=autonomous,
            at=self.clock.now(),
        )
        self.graph.record_spawn(rec, _encode(event) if start_handler is not None else None)
        self._notify(rec)
        if start_handler is not None:
            env = Envelope(
                event=event,
                job=job,
                target=ref,
                sender=caller.task_id if caller else None,
                caller_task_id=caller.task_id if caller else None,
                caller_agent=caller.agent_type if caller else None,
            )
            self._enqueue(Delivery(inst, start_handler, env, None, True))
        return ref

    def _add_instance(
        self, kind: AgentKind, ref: TaskRef, job: JobContext, objective: str
    ) -> Instance:
        inst = Instance(kind, ref, job, objective)
        kind.instances[ref.task_id] = inst
        self._instances[ref.task_id] = inst
        self._job_members.setdefault(job.job_id, []).append(inst)
        return inst

    def _check_spawnable(self, kind: AgentKind, start: Event | None) -> Handler | None:
        if start is None:
            return kind.handlers.get(Started)
        handler = kind.handlers.get(type(start))
        if handler is None:
            raise EventNotAccepted(_not_accepted(kind, start))
        return handler

    def stop_instance(self, ref: TaskRef, reason: str = "stopped") -> None:
        """Retire an instance: it takes no more events; handlers already running finish."""
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        self._retire(inst)
        if inst.outcome is None:
            self._task_ended(inst, "cancelled", None, reason)

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
            self._retire(inst)
            if inst.outcome is None:
                cancelled.append(inst.ref)
                self._task_ended(inst, "cancelled", None, reason)
        return cancelled

    def _retire(self, inst: Instance) -> None:
        inst.alive = False
        self._instances.pop(inst.ref.task_id, None)
        inst.kind.instances.pop(inst.ref.task_id, None)
        if inst.pooled:
            inst.kind.pool.remove(inst)

    # -- addressing -----------------------------------------------------------------------

    def publish_nowait(
        self,
        target: Target,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
        sender: str | None = None,
    ) -> None:
        """Deliver ``event`` or raise (unknown target, not accepted, inbox full): never half."""
        if self._tg is None:
            raise RuntimeStopped("the runtime is not running")
        if caller is not None:
            env = Envelope(
                event=event,
                job=job,
                target=target,
                sender=sender or caller.task_id,
                caller_task_id=caller.task_id,
                caller_agent=caller.agent_type,
            )
        else:
            env = Envelope(event=event, job=job, target=target, sender=sender)
        if type(target) is TaskRef:  # the common case, resolved here rather than by a call
            inst = self._instances.get(target.task_id)
            if inst is None:
                raise UnknownTask(f"no live instance {target}")
        elif type(target) is TopicRef:
            self._publish_topic(target, env)
            return
        else:
            inst = self._resolve(target, env)
        handler = inst.handlers.get(type(event))
        if handler is None:
            raise EventNotAccepted(_not_accepted(inst.kind, event))
        if inst.queued >= inst.kind.inbox_size:
            raise InboxFull(f"{inst.name} has {inst.queued} events waiting")
        if inst.kind.failed is not None:
            raise AgentTypeFailed(f"{inst.name}: its type is marked failed: {inst.kind.failed}")
        # _enqueue, inlined: this is the hottest line of the runtime
        inst.queued += 1
        self._ready.append(Delivery(inst, handler, env, None, False))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]
        if self._taps:
            for tap in self._taps:
                tap.offer(env)

    def send(
        self,
        target: Target,
        event: Event,
        *,
        job: JobContext,
        caller: TaskRef | None = None,
        sender: str | None = None,
    ) -> Awaitable[None]:
        """Like ``publish_nowait`` but waits for inbox room instead of refusing (backpressure).

        Awaitable, not a coroutine: when there is room, as there nearly always is, the event
        is queued at once and a finished future comes back, so the common case costs no
        coroutine. Other errors are raised at the call, like ``publish_nowait``'s."""
        try:
            self.publish_nowait(target, event, job=job, caller=caller, sender=sender)
        except InboxFull:
            return self._send_when_room(target, event, job, caller, sender)
        return self._sent  # type: ignore[return-value]

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
        """Send and wait for the handler's return value; HandlerFailed if it raised."""
        if self._tg is None or self._loop is None:
            raise RuntimeStopped("the runtime is not running")
        env = Envelope(
            event=event,
            job=job,
            target=target,
            sender=caller.task_id if caller else None,
            caller_task_id=caller.task_id if caller else None,
            caller_agent=caller.agent_type if caller else None,
        )
        inst = self._resolve(target, env)
        handler = inst.handlers.get(type(event))
        if handler is None:
            raise EventNotAccepted(_not_accepted(inst.kind, event))
        if inst.kind.failed is not None:
            raise AgentTypeFailed(f"{inst.name}: its type is marked failed: {inst.kind.failed}")
        while inst.queued >= inst.kind.inbox_size:
            await self._wait_space(inst.ref)
        reply: asyncio.Future[Any] = self._loop.create_future()
        self._enqueue(Delivery(inst, handler, env, reply, False))
        # A timer, not asyncio.timeout: that needs a current task, which a handler's inline
        # first step does not have, and it costs more.
        timer = self._loop.call_later(timeout, _expire, reply, inst.name, timeout)
        try:
            return await reply
        finally:
            timer.cancel()

    def _resolve(self, target: Target, env: Envelope[Any]) -> Instance:
        if type(target) is TaskRef:
            inst = self._instances.get(target.task_id)
            if inst is None:
                raise UnknownTask(f"no live instance {target}")
            return inst
        if type(target) is TypeRef:
            return self._pick(self._kind(target.agent_type), env)
        raise TypeError(f"cannot address {target!r} this way")

    def _pick(self, kind: AgentKind, env: Envelope[Any]) -> Instance:
        """The least-loaded instance of the type's pool; the first one is spawned on demand."""
        if not kind.pool:
            caller = None
            if env.caller_task_id is not None:
                caller = TaskRef(env.caller_agent or "?", env.caller_task_id)
            ref = self.spawn(kind.name, env.job, f"{kind.name} pool", caller=caller, idle=True)
            self._instances[ref.task_id].pooled = True
            kind.pool.append(self._instances[ref.task_id])
        return min(kind.pool, key=lambda inst: inst.load)

    def add_to_pool(self, agent_type: str, job: JobContext) -> TaskRef:
        """Grow a type's pool by one idle instance (the supervisor scales pools with this)."""
        kind = self._kind(agent_type)
        ref = self.spawn(kind.name, job, f"{kind.name} pool", idle=True)
        inst = self._instances[ref.task_id]
        inst.pooled = True
        kind.pool.append(inst)
        return ref

    def remove_from_pool(self, agent_type: str) -> TaskRef | None:
        """Shrink a type's pool by one idle instance (None if every one is busy)."""
        kind = self._kind(agent_type)
        idle = next((i for i in reversed(kind.pool) if i.load == 0), None)
        if idle is None:
            return None
        self._retire(idle)
        self._record_status(
            idle.home.job_id, idle.ref.task_id, kind.name, "done", "retired: pool scaled down"
        )
        return idle.ref

    def pin_pool(self, agent_type: str, size: int | None) -> None:
        """Hold a type's pool at ``size`` (an admin's choice) so autoscaling leaves it be;
        None hands it back to the supervisor."""
        self._kind(agent_type).pinned = size

    def pinned_pool(self, agent_type: str) -> int | None:
        return self._kind(agent_type).pinned

    def pool_loads(self, agent_type: str) -> list[int]:
        """In-flight plus queued events of each pool instance: what utilisation samples."""
        return [i.load for i in self._kind(agent_type).pool]

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
            self._enqueue(item)
        for watch in self._watches:
            watch.offer(env)

    async def _wait_space(self, target: Target) -> None:
        if type(target) is TaskRef:
            insts: Iterable[Instance] = [self._instances[target.task_id]]
        elif type(target) is TypeRef:
            insts = self._kind(target.agent_type).pool
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

    # -- dispatch -------------------------------------------------------------------------

    def _enqueue(self, item: Delivery) -> None:
        item.inst.queued += 1
        self._ready.append(item)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]
        if self._taps:
            for tap in self._taps:
                tap.offer(item.env)

    def _drain(self) -> None:
        self._scheduled = False
        while self._resumable:
            inst = self._resumable.popleft()
            backlog = inst.backlog
            while backlog and inst.inflight < inst.kind.concurrency:
                self._start(backlog.popleft())
        ready = self._ready
        for _ in range(min(len(ready), _DRAIN_BATCH)):
            item = ready.popleft()
            inst = item.inst
            if inst.backlog or inst.inflight >= inst.kind.concurrency:
                if inst.backlog is None:
                    inst.backlog = deque()
                inst.backlog.append(item)
                continue
            self._start(item)
        if ready or self._resumable:
            self._schedule()

    def _start(self, item: Delivery) -> None:
        inst, handler, env, reply = item.inst, item.handler, item.env, item.reply
        inst.queued -= 1
        if not inst.alive:  # retired (its job was cancelled) after this was queued
            if reply is not None:
                reply.cancel()
            return
        if inst.space:
            waiter = inst.space.popleft()
            if not waiter.done():
                waiter.set_result(None)
        inst.inflight += 1
        ctx: Context[Any] = Context(self, inst, env)
        coro: Coroutine[Any, Any, Any] = handler(inst.agent, env.event, ctx)  # type: ignore[assignment]
        if not inst.kind.eager:
            self._adopt(item, ctx, coro, eager.FRESH)
            return
        try:
            finished, step = eager.first_step(coro)
        except (Exception, asyncio.CancelledError) as err:
            self._finish(item, ctx, inst.generation, None, err)
            return
        if finished:
            self._finish(item, ctx, inst.generation, step, None)
            return
        self._adopt(item, ctx, coro, step)

    def _adopt(
        self, item: Delivery, ctx: Context[Any], coro: Coroutine[Any, Any, Any], step: Any
    ) -> None:
        """Give a handler that really waits a Task of its own, under its type's deadline."""
        inst = item.inst
        assert self._tg is not None
        self._suspended += 1
        task = self._tg.create_task(self._resume(item, ctx, coro, step, inst.generation))
        # A done callback, not a finally: it runs even for a Task cancelled before its first
        # step (a restart can do that), which never enters _resume's body.
        task.add_done_callback(self._adopted_done)
        if inst.running is None:
            inst.running = {}
        inst.running[task] = item

    def _adopted_done(self, task: asyncio.Task[None]) -> None:
        self._suspended -= 1

    async def _resume(
        self,
        item: Delivery,
        ctx: Context[Any],
        coro: Coroutine[Any, Any, Any],
        step: Any,
        generation: int,
    ) -> None:
        inst = item.inst
        limit = inst.kind.cls.handler_timeout_s
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                result = await eager.resume(coro, step)
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
        inst, env, reply, is_start = item.inst, item.env, item.reply, item.is_start
        if generation != inst.generation:
            return  # a stale incarnation's handler: its event was requeued at the restart
        inst.inflight -= 1
        inst.handled += 1
        self.handled += 1
        if self.audit is not None:
            self.audit.record(
                env.job.job_id,
                inst.ref.task_id,
                inst.kind.name,
                env.event.__struct_config__.tag,
                "cancelled" if cancelled else "done" if err is None else "failed",
                env.event,
            )
        if cancelled:
            if reply is not None and not reply.done():
                reply.cancel()
            if is_start:
                self._task_ended(inst, "cancelled", None, "runtime stopped")
        elif err is None:
            if inst.fault is not None:
                inst.fault = None  # it handles events again: whatever crashed was the event's
            state = ctx.state_used
            if state is not None and inst.kind.snapshot:
                # The state the handler left behind is the point a restart recovers to. The
                # store collects it at its next commit (_unsaved_snapshots): a burst of
                # events costs one encode each and one row per (task, job) per commit.
                data = _encode(state)
                job_id = env.job.job_id
                if job_id == inst.home.job_id:
                    inst.home_snap = data
                else:
                    inst.snapshot(job_id, data)
                if not self._unsaved:
                    self.store.wake()
                self._unsaved[(inst.ref.task_id, job_id)] = inst
            if reply is not None and not reply.done():
                reply.set_result(result)
            if is_start:
                self._task_ended(inst, "done", result, "")
        else:
            self._failed(item, err)
        if inst.backlog:
            self._resumable.append(inst)
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # type: ignore[union-attr]

    # -- failures and recovery ------------------------------------------------------------

    def _failed(self, item: Delivery, err: BaseException) -> None:
        """Ask the supervision policy what a failure means, then do it."""
        inst, env, reply, is_start, attempt = (
            item.inst,
            item.env,
            item.reply,
            item.is_start,
            item.attempt,
        )
        kind = inst.kind
        decision = self.supervision.on_failure(
            Failure(
                agent=kind.cls,
                ref=inst.ref,
                job=env.job,
                event=env.event,
                error=err,
                attempt=attempt,
                hung=isinstance(err, HandlerHung),
            )
        )
        action = decision.action
        tag = str(env.event.__struct_config__.tag)
        if action is Action.RETRY:
            self._record(
                EventRetried(
                    job_id=env.job.job_id,
                    task_id=inst.ref.task_id,
                    agent_type=kind.name,
                    event_kind=tag,
                    attempt=attempt,
                    delay_s=decision.delay,
                    reason=f"{type(err).__name__}: {err}",
                    at=self.clock.now(),
                )
            )
            assert self._tg is not None
            self._tg.create_task(self._redeliver(item, decision.delay))
            return
        if action is Action.REFUSE:
            self._refused(inst, env, err)
            if reply is not None and not reply.done():
                reply.set_exception(HandlerFailed(f"{inst.name}: {type(err).__name__}: {err}"))
            if is_start and self._hand_over(inst, err):
                return
            if is_start:
                self._task_ended(inst, "failed", None, f"refused: {type(err).__name__}: {err}")
            return
        self._crashed(inst, env, err)
        if action is Action.SHED:
            self._record(
                EventShed(
                    job_id=env.job.job_id,
                    task_id=inst.ref.task_id,
                    agent_type=kind.name,
                    event_kind=tag,
                    reason=decision.reason or f"{type(err).__name__}: {err}",
                    at=self.clock.now(),
                )
            )
        if reply is not None and not reply.done():
            reply.set_exception(HandlerFailed(f"{inst.name}: {type(err).__name__}: {err}"))
        reason = decision.reason or f"{type(err).__name__}: {err}"
        if action is Action.RESTART or action is Action.RESTART_GROUP:
            # The task's own work is its start event: the new incarnation runs it again.
            again = [msgspec.structs.replace(item, attempt=attempt + 1)] if is_start else []
            if action is Action.RESTART:
                self._restart(inst, reason, again)
            else:
                for member in self._group_of(inst):
                    self._restart(member, reason, again if member is inst else [])
            return
        if action is Action.FAIL_TYPE:
            self.fail_type(kind.name, reason)
        if is_start:
            self._task_ended(inst, "failed", None, f"{type(err).__name__}: {err}")

    def _hand_over(self, inst: Instance, err: BaseException) -> bool:
        """A refused root task with fallbacks left: the next type that can parse its command
        takes it as a child; the root ends as that child ends. False: none could."""
        left = self._fallbacks.pop(inst.ref.task_id, [])
        while left:
            name = left.pop(0)
            kind = self._types.get(name)
            if kind is None or kind.cls.internal or kind.failed is not None:
                continue
            try:
                start = kind.cls.start_for(inst.objective)
                self._check_spawnable(kind, start)
                child = self.spawn(name, inst.home, inst.objective, caller=inst.ref, start=start)
            except ApplianceError as refused:
                log.info("%s can't take %r either: %s", name, inst.objective, refused)
                continue
            if left:
                self._fallbacks[child.task_id] = left
            why = f"{name} took it after {inst.kind.name} refused it ({type(err).__name__}: {err})"

            def settle(done: asyncio.Future[TaskOutcome], why: str = why) -> None:
                if inst.outcome is None and not done.cancelled():
                    out = done.result()
                    detail = f"{why}; {out.detail}" if out.detail else why
                    self._task_ended(inst, out.status, out.result, detail)

            self.outcome_future(child).add_done_callback(settle)
            return True
        return False

    async def _redeliver(self, item: Delivery, delay: float) -> None:
        """Deliver a failed event again after ``delay`` (its inbox slot was already paid)."""
        await self.clock.sleep(delay)
        inst, reply = item.inst, item.reply
        if self._instances.get(inst.ref.task_id) is not inst:
            if reply is not None and not reply.done():
                reply.set_exception(UnknownTask(f"{inst.name} retired before its retry"))
            return
        self._enqueue(msgspec.structs.replace(item, attempt=item.attempt + 1))

    def _group_of(self, inst: Instance) -> list[Instance]:
        """One-for-all: the instances of the type in the same job restart together."""
        job_id = inst.home.job_id
        return [i for i in inst.kind.instances.values() if i.home.job_id == job_id]

    def restart(self, ref: TaskRef, reason: str) -> None:
        """Restart an instance from its last committed state (the supervisor's health check
        does this to an instance that stopped making progress)."""
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        self._restart(inst, reason, [])

    def _restart(self, inst: Instance, reason: str, again: list[Delivery]) -> None:
        """A new incarnation: fresh agent object, state from the last snapshot, and every event
        the old one had in flight back at the head of the inbox, in the order they started.
        The old incarnation's handlers are cancelled; whatever they changed is discarded with
        its state, so each of those events takes effect once, in the new incarnation."""
        inst.generation += 1
        inst.agent = inst.kind.factory()
        inst.fault = None  # a new incarnation: whatever failed went with the old one
        inst.recover_states()
        stale = inst.running or {}
        inst.running = None
        inst.inflight = 0
        requeue = again + list(stale.values())
        for task in stale:
            task.cancel()
        if requeue:
            if inst.backlog is None:
                inst.backlog = deque()
            inst.backlog.extendleft(reversed(requeue))
            inst.queued += len(requeue)
            self._resumable.append(inst)
            self._schedule()
        now = self.clock.now()
        self._record(
            InstanceRestarted(
                job_id=inst.home.job_id,
                task_id=inst.ref.task_id,
                agent_type=inst.kind.name,
                reason=reason,
                generation=inst.generation,
                requeued=len(requeue),
                at=now,
            )
        )
        self._record_status(inst.home.job_id, inst.ref.task_id, inst.kind.name, "restarted", reason)

    def fail_type(self, agent_type: str, reason: str) -> None:
        """Refuse the type's events until ``reset_type``: it restarted past its intensity."""
        kind = self._kind(agent_type)
        if kind.failed is None:
            kind.failed = reason
            self._record(
                AgentTypeFailedRecord(agent_type=kind.name, reason=reason, at=self.clock.now())
            )

    def reset_type(self, agent_type: str) -> None:
        kind = self._kind(agent_type)
        if kind.failed is not None:
            kind.failed = None
            self._record(AgentTypeReset(agent_type=kind.name, at=self.clock.now()))

    def failed_types(self) -> dict[str, str]:
        return {k.name: k.failed for k in self._types.values() if k.failed is not None}

    def _unsaved_snapshots(self) -> list[tuple[str, object, tuple[Any, ...]]]:
        unsaved, self._unsaved = self._unsaved, {}
        now = self.clock.now()
        return [
            ("states", key, (key[0], key[1], inst.kind.name, inst.snapshot_of(key[1]), now))
            for key, inst in unsaved.items()
        ]

    def _refused(self, inst: Instance, env: Envelope[Any], err: BaseException) -> None:
        log.info(
            "%s: refused %s: %s: %s",
            inst.name,
            env.event.__struct_config__.tag,
            type(err).__name__,
            err,
            extra={"job_id": env.job.job_id, "task_id": inst.ref.task_id},
        )
        self._record(
            EventRefused(
                job_id=env.job.job_id,
                task_id=inst.ref.task_id,
                agent_type=inst.kind.name,
                event_kind=str(env.event.__struct_config__.tag),
                error_type=type(err).__name__,
                message=str(err),
                at=self.clock.now(),
            )
        )

    def _crashed(self, inst: Instance, env: Envelope[Any], err: BaseException) -> None:
        self.crashed += 1
        inst.fault = f"{type(err).__name__}: {err}"  # until it restarts or handles an event
        kind = env.event.__struct_config__.tag
        log.warning(
            "%s: handler for %s failed: %s: %s",
            inst.name,
            kind,
            type(err).__name__,
            err,
            extra={"job_id": env.job.job_id, "task_id": inst.ref.task_id},
            exc_info=(type(err), err, err.__traceback__)
            if log.isEnabledFor(logging.DEBUG)
            else None,
        )
        self._record(
            HandlerCrashed(
                job_id=env.job.job_id,
                task_id=inst.ref.task_id,
                agent_type=inst.kind.name,
                event_kind=str(kind),
                error_type=type(err).__name__,
                message=str(err),
                at=self.clock.now(),
            )
        )

    def _record_status(
        self,
        job_id: str,
        task_id: str,
        agent_type: str,
        status: TaskStatus,
        detail: str,
        result: msgspec.Raw | None = None,
    ) -> None:
        self._record(
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

    def _task_ended(self, inst: Instance, status: TaskStatus, result: Any, detail: str) -> None:
        self._fallbacks.pop(inst.ref.task_id, None)
        try:
            raw = msgspec.Raw(_encode(result)) if result is not None else None
        except (TypeError, msgspec.EncodeError) as err:
            raw, detail = None, f"{detail} (result not storable: {err})".strip()
        inst.outcome = TaskOutcome(ref=inst.ref, status=status, result=result, detail=detail)
        self._record_status(
            inst.home.job_id, inst.ref.task_id, inst.kind.name, status, detail, result=raw
        )
        if inst.waiters is not None and not inst.waiters.done():
            inst.waiters.set_result(inst.outcome)
        if self._job_roots.get(inst.home.job_id) == inst.ref.task_id:
            self._job_ended(inst.home.job_id)

    def _job_ended(self, job_id: str) -> None:
        """A finished job's instances retire, so a long-running appliance does not grow with
        every job; their records stay in the graph, and handlers still running finish."""
        del self._job_roots[job_id]
        for member in self._job_members.pop(job_id, []):
            if not member.pooled:
                self._retire(member)

    async def _resume_unfinished(self) -> None:
        """After a process restart: every job whose root task had not ended runs its root
        again from its last committed state; the rest of such a job's unfinished tasks are
        recorded as cancelled (the root spawns what it still needs)."""
        assert self._loop is not None
        for task in await self.graph.unfinished():
            kind = self._types.get(task.agent_type)
            start = self._stored_start(task, kind)
            if kind is None or start is None or not task.is_root or kind.failed is not None:
                self._record_status(
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
            self._record_status(
                task.job_id,
                task.task_id,
                kind.name,
                "restarted",
                "resumed after the appliance restarted",
            )
            env = Envelope(event=start, job=job, target=inst.ref)
            self._enqueue(Delivery(inst, handler, env, None, True))

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
        self._record(rec)

    def _record(self, rec: RecordEvent) -> None:
        if type(rec) is JobSubmitted:
            self.graph.record_job(rec)
        elif type(rec) is not TaskSpawned:
            self.graph.record(rec)  # type: ignore[arg-type]
        self._notify(rec)

    def _notify(self, rec: RecordEvent) -> None:
        if self._watches:
            env = Envelope(
                event=rec, job=JobContext(rec.job_id, ""), target=TopicRef(RUNTIME_TOPIC)
            )
            for watch in self._watches:
                watch.offer(env)

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
        """How the task ended: waits while it runs, reads the graph once it is gone."""
        if ref.task_id in self._instances:
            return await asyncio.shield(self.outcome_future(ref))
        _tree, chain = await self.graph.chain(ref.task_id)
        node = chain[0]
        return TaskOutcome(ref=ref, status=node.status, result=node.result, detail=node.detail)

    def state_of(self, ref: TaskRef, job_id: str | None = None) -> msgspec.Struct:
        inst = self._instances.get(ref.task_id)
        if inst is None:
            raise UnknownTask(f"no live instance {ref}")
        return inst.state_for(job_id or inst.home.job_id)

    def instances(self, agent_type: str | None = None) -> list[InstanceInfo]:
        kinds = [self._kind(agent_type)] if agent_type else list(self._types.values())
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
        wanted = frozenset(kinds) if kinds is not None else None

        def accepts(env: Envelope[Any]) -> bool:
            if job_id is not None and env.job.job_id != job_id:
                return False
            return wanted is None or env.event.__struct_config__.tag in wanted

        def forget(w: Watch) -> None:
            for group in (self._watches, self._taps):
                if w in group:
                    group.remove(w)

        w = Watch(accepts, limit, forget)
        self._watches.append(w)
        if traffic:
            self._taps.append(w)
        return w

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
            self._running.clear()
            for w in list(self._watches):
                w.close()
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
        self._stopping.set()


def _expire(reply: asyncio.Future[Any], name: str, timeout: float) -> None:
    if not reply.done():
        reply.set_exception(RequestTimeout(f"{name} did not reply within {timeout}s"))


def _union(types_: Iterable[type[Event]]) -> Any:
    ordered = tuple(sorted(types_, key=lambda t: str(t.__struct_config__.tag)))
    if len(ordered) == 1:
        return ordered[0]

    return typing.Union[ordered]  # noqa: UP007


def _not_accepted(kind: AgentKind, event: Event) -> str:
    tag = event.__struct_config__.tag
    return (
        f"agent type {kind.name!r} does not accept {tag!r} events; it accepts: "
        f"{', '.join(accepted_kinds(kind.cls)) or 'nothing'}"
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

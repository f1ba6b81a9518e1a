"""Typed events and the envelope that carries them.

Every event is a frozen msgspec Struct with an explicit string tag: stored and transmitted
events outlive class names, so the tag, not the Python name, is the contract. Payload events
carry only their own data; who sent an event, for which job, and on whose behalf travels in
the ``Envelope``. Facts are past tense, requests end in ``Requested``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeAlias, TypeVar

import msgspec

TAG_FIELD = "kind"


class _EventMeta(msgspec.StructMeta):
    """Refuses, at class definition, an event field named like the tag field: msgspec's own
    error ("tag_field='kind' conflicts with an existing field") names neither the class nor
    the fix, and it surfaces as an import error of whatever module defined the event."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _EventMeta:
        if TAG_FIELD in namespace.get("__annotations__", {}) and any(
            isinstance(b, _EventMeta) for b in bases
        ):
            raise TypeError(
                f"event {name}: a field named {TAG_FIELD!r} collides with the tag field every "
                f'Event carries (it holds the tag given in the class line, tag="..."); rename '
                f"the field, e.g. to 'category' or 'service_{TAG_FIELD}'"
            )
        cls: _EventMeta = super().__new__(mcls, name, bases, namespace, **kwargs)
        return cls


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field=TAG_FIELD, metaclass=_EventMeta):
    """Base of every event; subclasses must pass ``tag=...``. A field may not be named
    like the tag field (``kind``): that is refused when the class is defined."""


class JobContext(msgspec.Struct, frozen=True):
    """Which job an event belongs to, and the command that started that job."""

    job_id: str
    command_id: str


class TaskRef(msgspec.Struct, frozen=True, tag="task", tag_field="to"):
    """One running instance: the target for instance-addressed events."""

    agent_type: str
    task_id: str

    def __str__(self) -> str:
        return f"{self.agent_type}/{self.task_id}"


class TypeRef(msgspec.Struct, frozen=True, tag="type", tag_field="to"):
    """An agent type: the runtime picks the least-loaded instance of its pool."""

    agent_type: str

    def __str__(self) -> str:
        return f"{self.agent_type}/*"


class TopicRef(msgspec.Struct, frozen=True, tag="topic", tag_field="to"):
    """A topic: every instance whose type subscribes to it gets the event."""

    topic: str

    def __str__(self) -> str:
        return f"#{self.topic}"


Target: TypeAlias = TaskRef | TypeRef | TopicRef

# A topic named so (``fleet.<name>``, the name one NATS token) reaches the subscribers of every
# device in a fleet; any other topic stays on the device it was published on (a hot-plug
# belongs to the device it happened on).
FLEET_TOPIC = "fleet."


def is_fleet_topic(topic: str) -> bool:
    return topic.startswith(FLEET_TOPIC)


E = TypeVar("E")


class Envelope(msgspec.Struct, Generic[E], frozen=True, kw_only=True, gc=False):
    """An event in transit: what it is, for which job, to whom, and on whose behalf.

    ``caller_task_id``/``caller_agent`` name the task that caused this event (None for a
    user command or an autonomous action); they are how any action traces back to its cause.

    ``gc=False``: the garbage collector never scans envelopes. One is made per event and a
    burst keeps many alive at once; an envelope holds only its event and immutable refs, so
    it can never be part of a reference cycle.
    """

    event: E
    job: JobContext
    target: Target
    sender: str | None = None
    caller_task_id: str | None = None
    caller_agent: str | None = None

    @property
    def caller(self) -> TaskRef | None:
        """The task this event came from, if it came from one."""
        if self.caller_task_id is None:
            return None
        return TaskRef(self.caller_agent or "?", self.caller_task_id)


TaskStatus: TypeAlias = Literal["running", "done", "failed", "cancelled", "restarted"]


# Events the runtime itself records. They are published on the "runtime" topic and written
# to the store's journal, so they describe what happened, for the panel and for audits.


class Started(Event, frozen=True, tag="task.start"):
    """Delivered to an instance spawned without a typed start event of its own."""

    objective: str


class TaskRecord(Event, frozen=True, kw_only=True):
    """A record about one task, as the journal keeps it: whose, when."""

    job_id: str
    task_id: str
    agent_type: str
    at: float = 0.0


class TaskSpawned(TaskRecord, frozen=True, kw_only=True, tag="task.spawned"):
    objective: str
    parent_task_id: str | None = None
    parent_agent: str | None = None
    autonomous: bool = False
    device: str | None = None  # the fleet device that runs it; None: the one recording it


class TaskStatusChanged(TaskRecord, frozen=True, kw_only=True, tag="task.status"):
    status: TaskStatus
    detail: str = ""
    result: msgspec.Raw | None = None


class HandlerCrashed(TaskRecord, frozen=True, kw_only=True, tag="handler.crashed"):
    """A handler raised or overran its deadline; its instance lives on."""

    event_kind: str
    error_type: str
    message: str


class EventRefused(TaskRecord, frozen=True, kw_only=True, tag="event.refused"):
    """A handler refused its event as bad input (a command it cannot parse, a target out of
    scope): the input was wrong, not the instance, so this is no crash."""

    event_kind: str
    error_type: str
    message: str


class JobSubmitted(Event, frozen=True, tag="job.submitted"):
    job_id: str
    command_id: str
    command: str
    autonomous: bool = False
    at: float = 0.0


class InstanceRestarted(TaskRecord, frozen=True, kw_only=True, tag="instance.restarted"):
    """An instance came back as a new incarnation with its last snapshot of each job's state."""

    reason: str
    generation: int
    requeued: int = 0


class EventRetried(TaskRecord, frozen=True, kw_only=True, tag="event.retried"):
    event_kind: str
    attempt: int
    delay_s: float
    reason: str


class EventShed(TaskRecord, frozen=True, kw_only=True, tag="event.shed"):
    """An event dropped on purpose because its instance ran out of a resource."""

    event_kind: str
    reason: str


class ScheduleFired(TaskRecord, frozen=True, kw_only=True, tag="schedule.fired"):
    """A schedule started this (autonomous) job: the graph's link from the firing's job to
    its schedule and, through it, to the job whose command created the schedule. It names
    both, so the link outlives a deleted schedule."""

    schedule_id: str
    created_by: str  # the job whose command created the schedule
    command: str  # what the firing ran
    due_at: float = 0.0  # the firing it stands for (a missed one runs late, once)


class JobTriggered(TaskRecord, frozen=True, kw_only=True, tag="job.triggered"):
    """An agent started this (autonomous) job on its own account: the graph's link from the
    job to the task that started it (in its own standing job) and what that task reacted to,
    such as a device event. The job itself has no parent task: nothing asked for it."""

    by_job_id: str
    by_task_id: str
    by_agent: str
    because: str  # what it reacted to: "device.changed net eth1 add"


class ActionDecided(TaskRecord, frozen=True, kw_only=True, tag="action.decided"):
    """What became of an action the task asked for: waiting for approval, applied (and what
    approved it), rejected, expired, failed or undone. Recorded against the asking task, so
    the chain back to the command reaches every block and its approval."""

    action_id: str
    action: str  # for people: "block 127.0.0.3"
    state: str
    decided_by: str = ""
    detail: str = ""


class TypeRecord(Event, frozen=True, kw_only=True):
    """A record about an agent type as a whole; the journal's task columns stay empty."""

    agent_type: str
    job_id: str = ""
    task_id: str = ""
    at: float = 0.0


class AgentTypeFailed(TypeRecord, frozen=True, kw_only=True, tag="agent_type.failed"):
    reason: str


class AgentTypeReset(TypeRecord, frozen=True, kw_only=True, tag="agent_type.reset"):
    """The supervisor (or an admin) gave the type another chance."""


class PoolScaled(TypeRecord, frozen=True, kw_only=True, tag="pool.scaled"):
    size: int
    utilisation: float
    direction: Literal["up", "down"]


# Consensus among specific instances (no one instance decides a destructive action): the
# tracker asks, agents vote
# from their handlers, the tracker decides.


class VoteRequested(Event, frozen=True, tag="vote.requested"):
    vote_id: str
    proposal: str
    tracker: TaskRef


class VoteCast(Event, frozen=True, tag="vote.cast"):
    vote_id: str
    voter: str
    accept: bool
    reason: str = ""


class ConsensusReached(Event, frozen=True, tag="consensus.reached"):
    vote_id: str
    proposal: str
    accepted: bool
    votes: dict[str, bool]


class ConsensusFailed(Event, frozen=True, tag="consensus.failed"):
    vote_id: str
    proposal: str
    reason: str
    votes: dict[str, bool]


JournalRecord: TypeAlias = (
    TaskStatusChanged
    | HandlerCrashed
    | EventRefused
    | InstanceRestarted
    | EventRetried
    | EventShed
    | AgentTypeFailed
    | AgentTypeReset
    | PoolScaled
    | ScheduleFired
    | JobTriggered
    | ActionDecided
)
"""What the store's journal holds: everything that happened to tasks after their spawn."""

RecordEvent: TypeAlias = (
    TaskSpawned
    | TaskStatusChanged
    | HandlerCrashed
    | EventRefused
    | JobSubmitted
    | InstanceRestarted
    | EventRetried
    | EventShed
    | AgentTypeFailed
    | AgentTypeReset
    | PoolScaled
    | ScheduleFired
    | JobTriggered
    | ActionDecided
)

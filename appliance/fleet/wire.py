"""What crosses the broker: msgpack-encoded Structs, decoded with their types at the edge.

An event travels in its ``Envelope`` (the same one the runtime uses), decoded with the
runtime's registry, so a device accepts from the broker exactly what its HTTP API accepts.
"""

from __future__ import annotations

import msgspec

from appliance import errors
from appliance.events import JobContext, TaskRef, TaskStatus


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A device says it is there, what it runs, what it can reach and how busy it is."""

    version: str
    health: str  # "ok", "degraded", ...: the supervisor's word
    scope: list[str]  # the networks it may scan: where work on a target can go
    types: list[str]  # the agent types it serves to the fleet
    load: int  # events queued and in flight on it
    started_at: float  # its wall clock when its link started: a restart shows as a new value
    cards: str = ""  # the digest of its routable types' cards (typecards.py): new, ask them


class Reply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A request's answer: the handler's result, or why there is none."""

    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack of the handler's return value
    error: str = ""  # the error's type name, the requester raises its own kind
    detail: str = ""


# A placement's start when the receiver makes it from the objective (a command for a type
# only the receiver runs): msgpack's nil
NO_START = msgspec.Raw(msgspec.msgpack.encode(None))


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """A task one device asks another to run: the same id in both graphs, its parent the
    placing device's task, its start event typed (msgpack, decoded by the receiver), or
    ``NO_START`` for the receiver's type to make it from the objective."""

    job: JobContext
    command: str  # what the receiver's graph records as the job's command
    task_id: str
    agent_type: str
    objective: str
    parent: TaskRef | None
    start: msgspec.Raw


class Ended(msgspec.Struct, frozen=True, kw_only=True):
    """How a placed task ended, sent back until the placing device acknowledges it."""

    task_id: str
    status: TaskStatus
    detail: str = ""
    result: msgspec.Raw = msgspec.Raw(b"\xc0")


encode = msgspec.msgpack.Encoder().encode
placement_decoder = msgspec.msgpack.Decoder(Placement)
ended_decoder = msgspec.msgpack.Decoder(Ended)
heartbeat_decoder = msgspec.msgpack.Decoder(Heartbeat)
reply_decoder = msgspec.msgpack.Decoder(Reply)


def error_of(reply: Reply) -> Exception:
    """The receiver's own kind of error for the one a reply names (HandlerFailed otherwise)."""
    kind = getattr(errors, reply.error, None)
    if isinstance(kind, type) and issubclass(kind, errors.ApplianceError):
        return kind(reply.detail)
    return errors.HandlerFailed(f"{reply.error}: {reply.detail}")

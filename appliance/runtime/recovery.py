"""What the runtime asks its supervisor when a handler fails, and the answers it can get.

The runtime owns the mechanisms (redeliver later, restart an instance from its last snapshot,
refuse a failed type); the supervisor owns the policy (which error means what, how long to
back off, how many restarts are too many). This keeps ``runtime/`` free of policy and lets
tests drive either side alone.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple, Protocol

from appliance.events import Event, JobContext, TaskRef

if TYPE_CHECKING:
    from appliance.runtime.agent import Agent


class Action(enum.Enum):
    FAIL = "fail"  # record it; the event is done, the instance carries on
    REFUSE = "refuse"  # bad input: record a refusal, not a crash; the instance is fine
    RETRY = "retry"  # deliver the same event again after ``delay``
    RESTART = "restart"  # restart the instance from its last snapshot
    RESTART_GROUP = "restart_group"  # restart every instance of the type in the job
    FAIL_TYPE = "fail_type"  # the type is broken: refuse its events until reset
    SHED = "shed"  # out of resources: drop this event, record it, scale up


class Decision(NamedTuple):
    action: Action
    delay: float = 0.0
    reason: str = ""


class Failure(NamedTuple):
    agent: type[Agent]
    ref: TaskRef
    job: JobContext
    event: Event
    error: BaseException
    attempt: int  # 1 for the first delivery
    hung: bool  # the handler overran its deadline


class Supervision(Protocol):
    def on_failure(self, failure: Failure) -> Decision: ...


class LetItFail:
    """No supervisor: every failure is recorded and the instance carries on."""

    def on_failure(self, failure: Failure) -> Decision:
        return Decision(Action.FAIL)

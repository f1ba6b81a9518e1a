"""Carrying out what the supervision policy decides about a failed handler.

The policy (``recovery.Supervision``, the supervisor) says what a failure means; this module
does it: record a refusal or a crash, deliver the event again after a delay, restart the
instance (or its group) from its last snapshot, hand a refused command to the next type that
can take it, or mark the type failed. Dispatch stays in ``runtime.py``; what this needs of it
is the small ``Dispatch`` interface below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import msgspec

from appliance.errors import ApplianceError, HandlerFailed, UnknownTask
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
    TaskRef,
    TaskStatus,
)
from appliance.runtime.clock import Clock
from appliance.runtime.instance import Delivery, Instance
from appliance.runtime.journal import Journal
from appliance.runtime.outcome import TaskOutcome
from appliance.runtime.recovery import Action, Failure, Supervision
from appliance.runtime.registry import TypeRegistry, start_handler

log = logging.getLogger("appliance.runtime.runtime")


class HandlerHung(TimeoutError):
    """A handler overran its agent type's ``handler_timeout_s`` and was cancelled."""


class Dispatch(Protocol):
    """What recovery needs of the runtime's dispatch."""

    def enqueue(self, item: Delivery) -> None: ...

    def requeue(self, inst: Instance, items: list[Delivery]) -> None: ...

    def background(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def live(self, task_id: str) -> Instance | None: ...

    def spawn(
        self,
        agent_type: str,
        job: JobContext,
        objective: str,
        *,
        caller: TaskRef | None = None,
        start: Event | None = None,
    ) -> TaskRef: ...

    def outcome_future(self, ref: TaskRef) -> asyncio.Future[TaskOutcome]: ...

    def task_ended(self, inst: Instance, status: TaskStatus, result: Any, detail: str) -> None: ...


class Failures:
    def __init__(
        self,
        types: TypeRegistry,
        journal: Journal,
        clock: Clock,
        supervision: Supervision,
        dispatch: Dispatch,
    ) -> None:
        self._types = types
        self._journal = journal
        self._clock = clock
        self.supervision = supervision
        self._dispatch = dispatch
        self._fallbacks: dict[str, list[str]] = {}  # root task -> types to hand it to
        self.crashed = 0

    def fallbacks(self, task_id: str, agent_types: Sequence[str]) -> None:
        """Types, in order, to hand the task's command to if its handler refuses it."""
        if agent_types:
            self._fallbacks[task_id] = list(agent_types)

    def ended(self, task_id: str) -> None:
        self._fallbacks.pop(task_id, None)

    def failed(self, item: Delivery, err: BaseException) -> None:
        """Ask the supervision policy what a failure means, then do it."""
        inst, env, reply, attempt = item.inst, item.env, item.reply, item.attempt
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
        why = f"{type(err).__name__}: {err}"
        if action is Action.RETRY:
            self._journal.record(
                EventRetried(
                    job_id=env.job.job_id,
                    task_id=inst.ref.task_id,
                    agent_type=kind.name,
                    event_kind=_tag(env),
                    attempt=attempt,
                    delay_s=decision.delay,
                    reason=why,
                    at=self._clock.now(),
                )
            )
            self._dispatch.background(self._redeliver(item, decision.delay))
            return
        if action is Action.REFUSE:
            self._refused(inst, env, err)
            if reply is not None and not reply.done():
                reply.set_exception(HandlerFailed(f"{inst.name}: {why}"))
            if item.is_start and not self._hand_over(inst, err):
                self._dispatch.task_ended(inst, "failed", None, f"refused: {why}")
            return
        self._crashed(inst, env, err)
        if action is Action.SHED:
            self._journal.record(
                EventShed(
                    job_id=env.job.job_id,
                    task_id=inst.ref.task_id,
                    agent_type=kind.name,
                    event_kind=_tag(env),
                    reason=decision.reason or why,
                    at=self._clock.now(),
                )
            )
        if reply is not None and not reply.done():
            reply.set_exception(HandlerFailed(f"{inst.name}: {why}"))
        reason = decision.reason or why
        if action is Action.RESTART or action is Action.RESTART_GROUP:
            # The task's own work is its start event: the new incarnation runs it again.
            again = [msgspec.structs.replace(item, attempt=attempt + 1)] if item.is_start else []
            if action is Action.RESTART:
                self.restart(inst, reason, again)
            else:
                for member in _group_of(inst):
                    self.restart(member, reason, again if member is inst else [])
            return
        if action is Action.FAIL_TYPE:
            self.fail_type(kind.name, reason)
        if item.is_start:
            self._dispatch.task_ended(inst, "failed", None, why)

    def restart(self, inst: Instance, reason: str, again: list[Delivery]) -> None:
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
            self._dispatch.requeue(inst, requeue)
        self._journal.record(
            InstanceRestarted(
                job_id=inst.home.job_id,
                task_id=inst.ref.task_id,
                agent_type=inst.kind.name,
                reason=reason,
                generation=inst.generation,
                requeued=len(requeue),
                at=self._clock.now(),
            )
        )
        self._journal.status(
            inst.home.job_id, inst.ref.task_id, inst.kind.name, "restarted", reason
        )

    def fail_type(self, agent_type: str, reason: str) -> None:
        kind = self._types.kind(agent_type)
        if kind.failed is None:
            kind.failed = reason
            self._journal.record(
                AgentTypeFailedRecord(agent_type=kind.name, reason=reason, at=self._clock.now())
            )

    def reset_type(self, agent_type: str) -> None:
        kind = self._types.kind(agent_type)
        if kind.failed is not None:
            kind.failed = None
            self._journal.record(AgentTypeReset(agent_type=kind.name, at=self._clock.now()))

    def _hand_over(self, inst: Instance, err: BaseException) -> bool:
        """A refused root task with fallbacks left: the next type that can parse its command
        takes it as a child; the root ends as that child ends. False: none could."""
        left = self._fallbacks.pop(inst.ref.task_id, [])
        while left:
            name = left.pop(0)
            kind = self._types.kinds.get(name)
            if kind is None or kind.cls.internal or kind.failed is not None:
                continue
            try:
                start = kind.cls.start_for(inst.objective)
                start_handler(kind, start)
                child = self._dispatch.spawn(
                    name, inst.home, inst.objective, caller=inst.ref, start=start
                )
            except ApplianceError as refused:
                log.info("%s can't take %r either: %s", name, inst.objective, refused)
                continue
            self.fallbacks(child.task_id, left)
            why = f"{name} took it after {inst.kind.name} refused it ({type(err).__name__}: {err})"

            def settle(done: asyncio.Future[TaskOutcome], why: str = why) -> None:
                if inst.outcome is None and not done.cancelled():
                    out = done.result()
                    detail = f"{why}; {out.detail}" if out.detail else why
                    self._dispatch.task_ended(inst, out.status, out.result, detail)

            self._dispatch.outcome_future(child).add_done_callback(settle)
            return True
        return False

    async def _redeliver(self, item: Delivery, delay: float) -> None:
        """Deliver a failed event again after ``delay`` (its inbox slot was already paid)."""
        await self._clock.sleep(delay)
        inst, reply = item.inst, item.reply
        if self._dispatch.live(inst.ref.task_id) is not inst:
            if reply is not None and not reply.done():
                reply.set_exception(UnknownTask(f"{inst.name} retired before its retry"))
            return
        self._dispatch.enqueue(msgspec.structs.replace(item, attempt=item.attempt + 1))

    def _refused(self, inst: Instance, env: Envelope[Any], err: BaseException) -> None:
        log.info("%s: refused %s: %s: %s", inst.name, _tag(env), type(err).__name__, err,
                 extra=_where(inst, env))  # fmt: skip
        self._journal.record(EventRefused(**self._what_failed(inst, env, err)))

    def _crashed(self, inst: Instance, env: Envelope[Any], err: BaseException) -> None:
        self.crashed += 1
        inst.fault = f"{type(err).__name__}: {err}"  # until it restarts or handles an event
        log.warning(
            "%s: handler for %s failed: %s: %s",
            inst.name,
            _tag(env),
            type(err).__name__,
            err,
            extra=_where(inst, env),
            exc_info=(type(err), err, err.__traceback__)
            if log.isEnabledFor(logging.DEBUG)
            else None,
        )
        self._journal.record(HandlerCrashed(**self._what_failed(inst, env, err)))

    def _what_failed(
        self, inst: Instance, env: Envelope[Any], err: BaseException
    ) -> dict[str, Any]:
        """A refusal's and a crash's record say the same things."""
        return {
            "job_id": env.job.job_id,
            "task_id": inst.ref.task_id,
            "agent_type": inst.kind.name,
            "event_kind": _tag(env),
            "error_type": type(err).__name__,
            "message": str(err),
            "at": self._clock.now(),
        }


def _group_of(inst: Instance) -> list[Instance]:
    """One-for-all: the instances of the type in the same job restart together."""
    job_id = inst.home.job_id
    return [i for i in inst.kind.instances.values() if i.home.job_id == job_id]


def _tag(env: Envelope[Any]) -> str:
    return str(env.event.__struct_config__.tag)


def _where(inst: Instance, env: Envelope[Any]) -> dict[str, str]:
    """``extra=`` for log lines: the job and task they belong to."""
    return {"job_id": env.job.job_id, "task_id": inst.ref.task_id}

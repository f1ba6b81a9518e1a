"""Running a plan: each step a child task of the coordinator, in the order its dependencies
set, with the typed results of the steps it waits for (and of earlier jobs it refers to).

A step is skipped, with the reason recorded, when a step it waits for did not finish or its
condition does not hold on their results. A type that refuses its step (bad input, not a
crash) hands it to the step's next confident candidate, as submit does for a command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from appliance.agents.messages import (
    SEVERITIES,
    Facts,
    PlanReport,
    StepOutcome,
    facts_of,
    merged_facts,
)
from appliance.errors import ApplianceError, BadCommand, UnknownAgentType
from appliance.planner.plan import (
    AnyCondition,
    AnyFinding,
    FindingAtLeast,
    Plan,
    PortOpen,
    Step,
    describe_condition,
)
from appliance.runtime import Agent, Context, JobResult, NoState, StepInput
from appliance.schedules.cadence import describe
from appliance.scope import Scope

log = logging.getLogger(__name__)

PastResults = Callable[..., Awaitable[list[JobResult]]]


class PlanRunner:
    def __init__(
        self,
        plan: Plan,
        ctx: Context[NoState],
        *,
        agent_class: Callable[[str], type[Agent]],
        past: PastResults,
        scope: Scope,
    ) -> None:
        self._plan = plan
        self._ctx = ctx
        self._agent_class = agent_class
        self._past = past
        self._scope = scope
        self._done: dict[str, StepOutcome] = {}

    def check(self) -> None:
        """Refuse the whole plan before anything runs: a target outside the scope (it may
        have changed since the plan was made), a step waiting on no step, or a cycle."""
        ids = {s.id for s in self._plan.steps}
        for step in self._plan.steps:
            for target in step.params.targets:
                self._scope.check_reachable(target)
            missing = [a for a in step.after if a not in ids]
            if missing:
                raise BadCommand(f"step {step.id} waits for unknown steps {missing}")

    async def run(self) -> PlanReport:
        self.check()
        if self._plan.schedule is not None:  # the schedule runs it; this job only made it
            why = f"scheduled {describe(self._plan.schedule)}: each firing runs it as a job"
            skipped = [_skipped(s, why) for s in self._plan.steps]
            return PlanReport(steps=skipped, ran=[], skipped=[o.id for o in skipped], failed=[])
        pending = list(self._plan.steps)
        while pending:
            ready = [s for s in pending if all(a in self._done for a in s.after)]
            if not ready:
                raise BadCommand(f"the plan's steps {[s.id for s in pending]} wait on each other")
            outcomes = await asyncio.gather(*(self._step(s) for s in ready))
            for outcome in outcomes:
                self._done[outcome.id] = outcome
            pending = [s for s in pending if s.id not in self._done]
        steps = [self._done[s.id] for s in self._plan.steps]
        facts = merged_facts(
            StepInput(source=o.id, agent_type=o.agent_type, result=o.result)
            for o in steps
            if o.status == "done"
        )
        return PlanReport(
            steps=steps,
            ran=[o.id for o in steps if o.status == "done"],
            skipped=[o.id for o in steps if o.status == "skipped"],
            failed=[o.id for o in steps if o.status == "failed"],
            open=facts.open,
            findings=facts.findings,
        )

    async def _step(self, step: Step) -> StepOutcome:
        waited = [self._done[a] for a in step.after]
        unfinished = [w.id for w in waited if w.status != "done"]
        if unfinished:
            return _skipped(step, f"{', '.join(unfinished)} did not finish")
        inputs = [StepInput(source=w.id, agent_type=w.agent_type, result=w.result) for w in waited]
        if step.when is not None and not holds(step.when, merged_facts(inputs)):
            return _skipped(step, f"condition not met: {describe_condition(step.when)}")
        past = await self._past_inputs(step)
        if past is not None and not past and not inputs:
            window = step.params.window.phrase if step.params.window else "earlier"
            return _skipped(step, f"no finished job's results from {window}")
        given = [*inputs, *(past or [])]
        hosts = [hp.host for hp in merged_facts(given).open if hp.open_ports]
        if not step.params.targets and len(hosts) > 1 and not self._takes_all(step, given):
            return await self._each_host(step, hosts, given)
        return await self._start(step, given)

    def _takes_all(self, step: Step, inputs: Sequence[StepInput]) -> bool:
        """Whether the step's type takes every host the steps before found in one start."""
        try:
            return (
                self._agent_class(step.agent_type).start_for_step(step.text, step.params, inputs)
                is not None
            )
        except Exception:  # any refusal: it takes fewer (or its hook is broken)
            return False

    async def _each_host(
        self, step: Step, hosts: Sequence[str], inputs: Sequence[StepInput]
    ) -> StepOutcome:
        """ "Then scan them": a step whose type takes one host runs once per host the steps
        before it found, side by side; its result is what they found together."""
        one_each = [
            msgspec.structs.replace(
                step, params=msgspec.structs.replace(step.params, targets=[host])
            )
            for host in hosts
        ]
        outcomes = await asyncio.gather(*(self._start(s, inputs) for s in one_each))
        done = [o for o in outcomes if o.status == "done"]
        facts = merged_facts(
            StepInput(source=step.id, agent_type=o.agent_type, result=o.result) for o in done
        )
        failed = [f"{h}: {o.reason}" for h, o in zip(hosts, outcomes, strict=True) if o not in done]
        return StepOutcome(
            id=step.id,
            agent_type=step.agent_type,
            status="done" if done else "failed",
            reason="; ".join(failed),
            task_id=done[0].task_id if done else None,
            result=facts,
        )

    async def _past_inputs(self, step: Step) -> list[StepInput] | None:
        """Earlier jobs' results the step refers to; None when it refers to none."""
        params = step.params
        if params.window is None and not params.latest:
            return None
        window = params.window
        found = await self._past(
            since=window.start if window else None,
            until=window.end if window else None,
            exclude_job=self._ctx.job.job_id,
            limit=1 if window is None else 20,
        )
        return [
            StepInput(
                source=f"job:{r.job_id}", agent_type=r.agent_type, result=r.result, at=r.created_at
            )
            for r in found
            if facts_of(r.result) != Facts()
        ]

    async def _start(self, step: Step, inputs: Sequence[StepInput]) -> StepOutcome:
        """Start the step on its type, or on the next candidate if that one refuses it."""
        refusals: list[str] = []
        for agent_type in [step.agent_type, *step.fallbacks]:
            objective, elsewhere = objective_of(step), False
            try:
                start = self._agent_class(agent_type).start_for_step(step.text, step.params, inputs)
            except UnknownAgentType:
                # In a fleet, only another device may run it: placed there with no start
                # event, that device makes one from the step's words, as from a command
                # (what the steps before found stays here). Where none does, fan_out says so.
                start, objective, elsewhere = None, step.text, True
            except ApplianceError as err:
                refusals.append(f"{agent_type}: {err}")
                continue
            except Exception as err:  # another type's hook is its own bug: this step fails
                log.exception("%s.start_for_step failed on %s", agent_type, step.id)
                refusals.append(f"{agent_type}: {type(err).__name__}: {err}")
                continue
            if start is None and not elsewhere:
                refusals.append(f"{agent_type}: takes no steps")
                continue
            try:
                [outcome] = await self._ctx.fan_out(agent_type, [(objective, start)])
            except UnknownAgentType as err:
                refusals.append(f"{agent_type}: {err}")
                continue
            if outcome.ok:
                return StepOutcome(
                    id=step.id,
                    agent_type=agent_type,
                    status="done",
                    task_id=outcome.ref.task_id,
                    result=outcome.result,
                )
            refusals.append(f"{agent_type}: {outcome.detail}")
            if not outcome.detail.startswith("refused:"):
                return StepOutcome(
                    id=step.id,
                    agent_type=agent_type,
                    status="failed",
                    reason=outcome.detail,
                    task_id=outcome.ref.task_id,
                )
        return StepOutcome(
            id=step.id, agent_type=step.agent_type, status="failed", reason="; ".join(refusals)
        )


def holds(when: AnyCondition, facts: Facts) -> bool:
    """Whether a condition holds on the facts of the steps a step waited for."""
    if isinstance(when, PortOpen):
        wanted = set(when.ports)
        result = any(
            wanted & set(hp.open_ports)
            for hp in facts.open
            if when.host is None or hp.host == when.host or when.host == "localhost"
        )
    elif isinstance(when, FindingAtLeast):
        floor = SEVERITIES.index(when.severity)
        result = any(SEVERITIES.index(f.severity) >= floor for f in facts.findings)
    else:
        assert isinstance(when, AnyFinding)
        result = bool(facts.findings) or any(hp.open_ports for hp in facts.open)
    return result != when.negate


def objective_of(step: Step) -> str:
    """The step's task as the graph records it: its id, its words, what it waited for."""
    after = f" (after {', '.join(step.after)})" if step.after else ""
    return f"{step.id}: {step.text}{after}"


def _skipped(step: Step, reason: str) -> StepOutcome:
    return StepOutcome(id=step.id, agent_type=step.agent_type, status="skipped", reason=reason)

"""A plan: what a command asks for, as a DAG of typed steps over the registered agent types.

A plan is data (tagged msgspec Structs with explicit tags, never ``array_like``): the CLI
prints it, the API returns it with the job, the coordinator runs it, and a stored job's plan
decodes into these same types later. Each step names the agent type the router chose for its
clause, the parameters found in it (validated: targets in the scope, ports in range), the
steps whose results it waits for, and an optional condition on those results.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from appliance.runtime import Severity, StepParams
from appliance.schedules.cadence import AnyCadence, describe


class Condition(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of the conditions a step may wait on; evaluated on the results of the steps it
    waits for. ``negate`` reads "unless ...": the step runs when the condition does NOT
    hold."""

    negate: bool = False


class PortOpen(Condition, frozen=True, kw_only=True, tag="port_open"):
    """One of ``ports`` was found open (on ``host``, if named). Closed: ``negate``."""

    ports: list[int]
    host: str | None = None


class FindingAtLeast(Condition, frozen=True, kw_only=True, tag="finding_at_least"):
    """A finding at or above ``severity`` was found."""

    severity: Severity


class AnyFinding(Condition, frozen=True, kw_only=True, tag="any_finding"):
    """Anything at all was found (an open port or a finding); "nothing found": ``negate``."""


AnyCondition: TypeAlias = PortOpen | FindingAtLeast | AnyFinding


class Step(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One task of the plan. ``agent_type`` is the router's choice for ``text`` among every
    registered type; ``fallbacks`` are its next confident candidates, tried in order if the
    chosen type refuses the step."""

    id: str
    text: str
    agent_type: str
    confidence: float
    params: StepParams = StepParams()
    after: list[str] = []
    when: AnyCondition | None = None
    fallbacks: list[str] = []


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What ``plan(command)`` returns. ``runs`` is the command without its schedule phrase
    (what each firing of a schedule runs). ``unused`` are the words the planner did not use
    (reported, never dropped silently). ``uncertain``: a step's route was under the router's
    threshold or words were left over; ``destructive``: a step changes something; the panel
    asks for a confirmation of such plans and of scheduled ones."""

    command: str
    steps: list[Step]
    runs: str = ""
    schedule: AnyCadence | None = None
    schedule_phrase: str = ""
    unused: list[str] = []
    destructive: bool = False
    scheduled: bool = False
    uncertain: bool = False
    # targets outside the scope (a plan of several steps is refused for them; a one-step
    # command's type refuses its job before anything is probed, as it always has)
    out_of_scope: list[str] = []

    @property
    def direct(self) -> bool:
        """One step that waits for nothing and reads nothing earlier: it can start as its
        type's own job, as a routed command always has."""
        if len(self.steps) != 1 or self.schedule is not None:
            return False
        step = self.steps[0]
        return step.when is None and step.params.window is None and not step.params.latest


encode_plan = msgspec.json.Encoder().encode
decode_plan = msgspec.json.Decoder(Plan).decode


def render_plan(plan: Plan) -> str:
    """The plan as a tree, for ``qey plan``: each step under what it waits for."""
    lines = [f'Plan: "{plan.command}"']
    if plan.schedule is not None:
        lines.append(f"  schedule: {describe(plan.schedule)} (runs: {plan.runs!r})")
    flags = [f for f in ("destructive", "scheduled", "uncertain") if getattr(plan, f)]
    if flags:
        lines.append(f"  flags: {', '.join(flags)}")
    for refusal in plan.out_of_scope:
        lines.append(f"  refused: {refusal}")
    if plan.unused:
        lines.append(f"  unused words: {' '.join(plan.unused)}")
    kids: dict[str | None, list[Step]] = {}
    for step in plan.steps:
        kids.setdefault(step.after[-1] if step.after else None, []).append(step)

    def walk(step: Step, prefix: str, last: bool) -> None:
        text = f"{step.id} {step.agent_type} ({step.confidence:.2f}) // {step.text}"
        details = _details(step)
        if details:
            text += f" [{details}]"
        lines.append(prefix + ("└── " if last else "├── ") + text)
        children = kids.get(step.id, [])
        for i, child in enumerate(children):
            walk(child, prefix + ("    " if last else "│   "), i == len(children) - 1)

    roots = kids.get(None, [])
    for i, root in enumerate(roots):
        walk(root, "  ", i == len(roots) - 1)
    return "\n".join(lines)


def _details(step: Step) -> str:
    p = step.params
    parts = []
    if p.targets:
        parts.append("targets " + ",".join(p.targets))
    if p.ports:
        parts.append("ports " + ",".join(map(str, p.ports)))
    if p.severity:
        parts.append(f"{p.severity} and above")
    if p.window:
        parts.append(f"results of {p.window.phrase}")
    if p.latest:
        parts.append("results of the latest job")
    if p.recipients:
        parts.append("to " + ",".join(p.recipients))
    if len(step.after) > 1:
        parts.append("after " + ",".join(step.after))
    if step.when is not None:
        parts.append(describe_condition(step.when))
    return "; ".join(parts)


def describe_condition(when: AnyCondition) -> str:
    if isinstance(when, PortOpen):
        ports = ",".join(map(str, when.ports))
        on = f" on {when.host}" if when.host else ""
        return f"if port {ports}{on} is {'closed' if when.negate else 'open'}"
    if isinstance(when, FindingAtLeast):
        return f"{'unless' if when.negate else 'if'} a finding is {when.severity} or worse"
    return "if nothing was found" if when.negate else "if anything was found"

"""The planner: a command in, a typed Plan out, before anything runs.

Grammar finds the shape (``clauses.py``: steps, order, conditions) and the parameters
(``words.py``: targets, ports, severities, recipients, earlier work); the schedule phrase is
cut out first (``appliance.schedules.cadence``). The router then picks, per clause, the agent
type among every registered one; the planner never names a type itself. Targets are checked
against the scope here, so an out-of-scope command is refused before anything runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from appliance.errors import ApplianceError, BadCommand, NoConfidentMatch, OutOfScope
from appliance.planner.clauses import Clause, split
from appliance.planner.plan import AnyCondition, Plan, PortOpen, Step
from appliance.planner.words import (
    DeviceNames,
    Found,
    find_ports,
    find_recipients,
    find_reference,
    find_severity,
    find_targets,
    numbers_left,
    parse_condition,
)
from appliance.router import RouteDecision
from appliance.runtime import Agent, StepParams
from appliance.schedules.cadence import CadenceMatch, find_cadence

log = logging.getLogger(__name__)

RouteMany = Callable[[Sequence[str]], Awaitable[list[RouteDecision]]]

# Verbs that change something beyond the appliance's own records: such a plan is confirmed.
_DESTRUCTIVE = re.compile(
    r"\b(?:block|quarantine|isolate|revoke|delete|remove|disable|shut\s*down|shut\s+off|kill"
    r"|reboot|restart|wipe|ban|deny|terminate|firewall|close)\b",
    re.IGNORECASE,
)
# Words that point back at the previous step's results ("analyze them", "the findings").
_REFERS_BACK = re.compile(
    r"\b(?:them|it|its|those|these|that|the\s+(?:results?|findings?|output|hosts|ports|"
    r"open\s+ports|scan|report|analysis)|what\s+(?:it|they|you)\s+(?:finds?|found)|the\s+ones)\b",
    re.IGNORECASE,
)
_COURTESY = frozenset(re.findall(r"\w+", "please kindly thanks thank you"))


@dataclass(frozen=True)
class _Prepared:
    """One clause with its parameters found, ready to route."""

    clause: Clause
    params: StepParams
    spans: list[tuple[int, int]]
    condition: AnyCondition | None
    cond_params: StepParams | None  # a condition naming its own target needs its own probe
    unused: list[str]
    out_of_scope: list[OutOfScope]
    reference_span: tuple[int, int] | None = None


class Planner:
    """``plan(command) -> Plan``. ``route_many`` routes clauses (the router, off the event
    loop); ``agent_class`` finds a registered type by name, ``describe`` says what a type
    does (one only another device runs too: it has no class here); ``check_target`` raises
    OutOfScope for a target outside the scope; ``now`` is local wall time; ``names`` are the
    admin's names for devices and networks (config.toml's ``[names]``)."""

    def __init__(
        self,
        route_many: RouteMany,
        *,
        threshold: float,
        agent_class: Callable[[str], type[Agent]],
        describe: Callable[[str], str | None] | None = None,
        check_target: Callable[[str], object],
        now: Callable[[], datetime],
        names: Mapping[str, str] | None = None,
    ) -> None:
        self._route_many = route_many
        self._names = DeviceNames(names or {})
        self._threshold = threshold
        self._agent_class = agent_class
        self._describe = describe or self._class_description
        self._check_target = check_target
        self._now = now

    async def plan(self, command: str) -> Plan:
        """The plan for ``command``; BadCommand (NoConfidentMatch when no step is anything
        the appliance does) naming what was understood, OutOfScope for a target outside it."""
        plan, _ = await self.plan_and_routes(command)
        return plan

    async def plan_and_routes(self, command: str) -> tuple[Plan, list[RouteDecision]]:
        """``plan`` and the router's decision for each clause, in order (then each
        condition's own check): what the API shows as a one-step command's route."""
        text = " ".join(command.split())
        if not text:
            raise BadCommand("command is empty")
        draft = self.parse(text)
        texts = [p.clause.text for p in draft.clauses] + draft.probes
        decisions = await self._route_many(texts)
        # A follow-up step is often only a verb and a pronoun ("record it", "tell me"): say
        # what "it" is, once, and keep the better of the two decisions.
        # A step naming earlier work is about that work, not about the time it names: ask
        # again without the time words ("analyze yesterday's results": "analyze results").
        retry = [
            i
            for i, prep in enumerate(draft.clauses)
            if self._choose(decisions[i])[0] is None
            and (i > 0 or prep.clause.cond is not None or prep.reference_span is not None)
            and _may_say_object(prep)
        ]
        if retry:
            variants = [(i, v) for i in retry for v in with_object(draft.clauses[i])]
            again = await self._route_many([v for _, v in variants])
            for (i, _), decision in zip(variants, again, strict=True):
                chosen, confidence, _ = self._choose(decision)
                if chosen is not None and confidence > _best(decisions[i]):
                    decisions[i] = decision
        return self.assemble(command, text, draft, decisions), decisions

    def parse(self, text: str) -> ParsedCommand:
        """Everything but routing: fast, pure, the part measured against 20 ms."""
        now = self._now()
        match = find_cadence(text, now)
        runs = text
        if match is not None:
            a, b = match.span
            runs = " ".join((text[:a] + " " + text[b:]).split()).strip(" ,.;")
            runs = re.sub(r"^(?:and|then)\b\s*", "", runs, flags=re.I).strip(" ,")
        shape = split(runs)
        prepared = [self._prepare(c, now) for c in shape.clauses]
        probes = [probe_text(p.cond_params) for p in prepared if p.cond_params is not None]
        return ParsedCommand(
            runs=runs,
            cadence=match,
            clauses=prepared,
            probes=probes,
            dropped=shape.dropped,
        )

    def _prepare(self, clause: Clause, now: datetime) -> _Prepared:
        found = Found()
        text = clause.text
        find_targets(text, found, self._names)
        find_ports(text, found)
        find_severity(text, found)
        find_recipients(text, found)
        find_reference(text, now, found)
        refused = self._refused(found.targets)
        unused = numbers_left(text, found.spans)
        params = _params(found)
        condition = None
        cond_params = None
        if clause.cond is not None:
            cf = Found()
            find_targets(clause.cond, cf, self._names)
            find_ports(clause.cond, cf)
            find_severity(clause.cond, cf)
            refused += self._refused(cf.targets)
            condition = parse_condition(clause.cond, cf, negate=clause.negate)
            if condition is None:
                unused.append(clause.cond)
            if cf.targets:
                probe_ports = cf.ports or (
                    condition.ports if isinstance(condition, PortOpen) else []
                )
                cond_params = StepParams(targets=cf.targets, ports=probe_ports)
            unused.extend(numbers_left(clause.cond, cf.spans))
            if condition is not None and cond_params is None and found.targets:
                # "record it if telnet is open on ..." names the target in the action
                probe_ports = condition.ports if isinstance(condition, PortOpen) else []
                cond_params = StepParams(targets=found.targets, ports=probe_ports)
        return _Prepared(
            clause,
            params,
            found.spans,
            condition,
            cond_params,
            unused,
            refused,
            found.reference_span,
        )

    def _refused(self, targets: list[str]) -> list[OutOfScope]:
        errors = []
        for target in targets:
            try:
                self._check_target(target)
            except OutOfScope as err:
                errors.append(err)
        return errors

    def assemble(
        self, command: str, text: str, parsed: ParsedCommand, decisions: list[RouteDecision]
    ) -> Plan:
        """The plan from the parsed command and the router's decision per clause (then per
        probe), in the order ``parse`` listed them."""
        clause_decisions = decisions[: len(parsed.clauses)]
        probe_decisions = iter(decisions[len(parsed.clauses) :])
        unused = list(parsed.dropped)
        unused = [w for w in unused if w.lower() not in _COURTESY]
        steps: list[Step] = []
        uncertain = False
        by_group: dict[int, list[str]] = {}
        previous: list[str] = []  # the last group's step ids
        last_group = -1
        unplaced: list[str] = []
        missed: list[RouteDecision] = []  # the router's decisions for what no type takes
        for prep, decision in zip(parsed.clauses, clause_decisions, strict=True):
            clause = prep.clause
            unused.extend(prep.unused)
            if clause.group != last_group:
                if last_group >= 0:
                    previous = by_group.get(last_group, previous)
                last_group = clause.group
            chosen, confidence, fallbacks = self._choose(decision)
            if chosen is None:
                unplaced.append(clause.text)
                missed.append(decision)
                continue
            if confidence < self._threshold:
                uncertain = True
            waits: list[str] = []
            group_so_far = by_group.get(clause.group, [])
            own_input = bool(prep.params.targets) and not _REFERS_BACK.search(clause.text)
            if group_so_far and not own_input and not clause.parallel:
                waits = [group_so_far[-1]]  # "analyze the results and record the findings"
            elif previous:
                waits = list(previous)
            params = prep.params
            if (
                not waits
                and prep.cond_params is None
                and not params.targets
                and params.window is None
                and _REFERS_BACK.search(clause.text)
            ):
                params = msgspec.structs.replace(params, latest=True)  # "analyze the results"
            if prep.cond_params is not None:
                probe = next(probe_decisions)
                p_type, p_conf, p_fall = self._choose(probe)
                if p_type is None:
                    unplaced.append(clause.cond or "")
                    missed.append(probe)
                    continue
                probe_id = f"s{len(steps) + 1}"
                steps.append(
                    Step(
                        id=probe_id,
                        text=probe_text(prep.cond_params),
                        agent_type=p_type,
                        confidence=p_conf,
                        params=prep.cond_params,
                        after=waits,
                        fallbacks=p_fall,
                    )
                )
                uncertain = uncertain or p_conf < self._threshold
                waits = [probe_id]
            if prep.condition is not None and not waits:
                unused.append(clause.cond or "")  # a condition on nothing: nothing to check
            if clause.cond is not None and prep.condition is None:
                uncertain = True
            for one, step_text in self._per_target(chosen, clause.text, params):
                step_id = f"s{len(steps) + 1}"
                steps.append(
                    Step(
                        id=step_id,
                        text=step_text,
                        agent_type=chosen,
                        confidence=confidence,
                        params=one,
                        after=waits,
                        when=prep.condition if waits else None,
                        fallbacks=fallbacks,
                    )
                )
                by_group.setdefault(clause.group, []).append(step_id)
        if unplaced or not steps:
            raise self._not_understood(command, steps, unplaced, missed or clause_decisions)
        unused = [u for u in dict.fromkeys(unused) if u]
        refused = [e for p in parsed.clauses for e in p.out_of_scope]
        plan = Plan(
            command=command,
            steps=steps,
            runs=parsed.runs,
            schedule=parsed.cadence.cadence if parsed.cadence else None,
            schedule_phrase=parsed.cadence.phrase if parsed.cadence else "",
            unused=unused,
            destructive=any(_DESTRUCTIVE.search(s.text) for s in steps),
            scheduled=parsed.cadence is not None,
            uncertain=uncertain or bool(unused),
            out_of_scope=[str(e) for e in refused],
        )
        if refused and not plan.direct:
            raise refused[0]  # before anything runs; a direct job's type refuses it itself
        return plan

    def _choose(self, decision: RouteDecision) -> tuple[str | None, float, list[str]]:
        """The router's type for one clause, its confidence, and the confident runners-up.
        A clause the router sends to its planner type for its shape ("when does ..." read
        as a condition) goes to the best type for its words instead."""
        ranked = [(c.agent_type, c.confidence) for c in decision.alternatives]
        if decision.agent_type is not None and decision.reason == "nearest":
            ranked.insert(0, (decision.agent_type, decision.confidence))
        if not ranked or ranked[0][1] < self._threshold:
            return None, ranked[0][1] if ranked else 0.0, []
        best, confidence = ranked[0]
        fallbacks = [t for t, c in ranked[1:] if c >= self._threshold and t != best]
        return best, confidence, list(dict.fromkeys(fallbacks))

    def _per_target(
        self, agent_type: str, text: str, params: StepParams
    ) -> list[tuple[StepParams, str]]:
        """One step for all targets when the type takes them together, else one per target
        (run in parallel): the type's own ``start_for_step`` says which."""
        if len(params.targets) < 2:
            return [(params, text)]
        try:
            self._agent_class(agent_type).start_for_step(text, params, [])
        except ApplianceError:
            pass  # it takes fewer: one step per target
        except Exception:  # a type's broken hook: its step reports it when it runs
            log.exception("%s.start_for_step failed while planning %r", agent_type, text)
            return [(params, text)]
        else:
            return [(params, text)]
        out = []
        for target in params.targets:
            one = StepParams(
                targets=[target],
                ports=params.ports,
                severity=params.severity,
                window=params.window,
                latest=params.latest,
                recipients=params.recipients,
            )
            out.append((one, text))
        return out

    def _not_understood(
        self,
        command: str,
        steps: list[Step],
        unplaced: list[str],
        decisions: list[RouteDecision],
    ) -> NoConfidentMatch:
        candidates: dict[str, float] = {}
        for decision in decisions:
            for c in decision.alternatives:
                candidates[c.agent_type] = max(candidates.get(c.agent_type, -1.0), c.confidence)
            if decision.agent_type is not None:
                candidates[decision.agent_type] = max(
                    candidates.get(decision.agent_type, -1.0), decision.confidence
                )
        closest = sorted(candidates.items(), key=lambda kv: -kv[1])[:3]
        understood = [f"{s.text!r} ({s.agent_type})" for s in steps]
        return NoConfidentMatch(
            command,
            closest,
            understood=understood,
            not_understood=unplaced,
            can_do=[f"{name}: {self._what_it_does(name)}" for name, _ in closest],
        )

    def _what_it_does(self, agent_type: str) -> str:
        """A type's own first words about itself ("Collects data about hosts and
        networks")."""
        description = self._describe(agent_type)
        if description is None:
            return "?"
        return re.split(r"[:.;]", description, maxsplit=1)[0].strip()

    def _class_description(self, agent_type: str) -> str | None:
        """``describe`` when none is given: the registered type's own words, if any."""
        try:
            return self._agent_class(agent_type).description
        except (ApplianceError, KeyError):
            return None


@dataclass(frozen=True)
class ParsedCommand:
    runs: str
    cadence: CadenceMatch | None
    clauses: list[_Prepared]
    probes: list[str]
    dropped: list[str]


_PRONOUN = re.compile(r"\b(?:it|them|those|these|that|this|ones)\b", re.IGNORECASE)


def probe_text(params: StepParams) -> str:
    """What a condition's own check asks for, in words the router can place: the facts the
    condition is about ("port 23 is open on 127.0.0.1" is checked by finding out)."""
    on = " and ".join(params.targets)
    if params.ports:
        ports = ",".join(map(str, params.ports))
        return f"check whether port{'s' if len(params.ports) > 1 else ''} {ports} open on {on}"
    return f"find the open ports on {on}"


def _may_say_object(prep: _Prepared) -> bool:
    """Only a clause that points back ("record it"), is a bare verb ("tell me") or names
    earlier work ("compare with last week") gets its object said: "make me a sandwich" is
    not a follow-up, whatever follows it."""
    text = prep.clause.text
    return (
        _PRONOUN.search(text) is not None
        or len(text.split()) <= 2
        or bool(prep.params.recipients)
        or prep.params.window is not None
        or prep.params.latest
    )


def with_object(prep: _Prepared) -> list[str]:
    """A follow-up clause with its object said: what the previous step found ("record it":
    "record the findings"). A clause that only says whom to tell ("tell me", "alert me")
    asks for the findings to be sent there; one naming earlier work is also asked without
    its words of time ("analyze yesterday's results": "analyze results")."""
    text = prep.clause.text
    recipients = prep.params.recipients
    if recipients and len(text.split()) <= 4:
        return [f"send the findings to {' and '.join(recipients)}"]
    said = _PRONOUN.sub("the findings", text)
    variants = [said if said != text else f"{text} about the findings"]
    if prep.reference_span is not None:
        a, b = prep.reference_span
        rest = " ".join(f"{text[:a]} {text[b:]}".split())
        if len(rest.split()) >= 2:
            variants.append(rest)
    return variants


def _best(decision: RouteDecision) -> float:
    return decision.confidence if decision.agent_type is not None else 0.0


def _params(found: Found) -> StepParams:
    return StepParams(
        targets=found.targets,
        ports=found.ports,
        severity=found.severity,
        window=found.window,
        latest=found.latest,
        recipients=found.recipients,
    )

"""Evaluate the planner on the labelled plans in plans/plans.tsv (./build.sh eval-planner).

Prints, for one split: exact-plan accuracy (every step's type, order, dependencies,
condition and parameters, and the schedule, all as labelled; a refusal of the labelled kind),
accuracy per construct, parameter accuracy (targets, ports, severity, earlier work,
recipients, condition of each labelled step, and the schedule), the step types' accuracy, and
latency: p50/p99 of planning without the router (this thread's CPU time) and of the whole
plan with the router's embedding (wall time, the router on one thread). Only 'tune' may
shape the planner's grammar; 'test' is what the figures are quoted on. Exit 1 if a goal
(exact >= 90%, parameters >= 97%, p99 without the router <= 20 ms) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.agents import BUILTIN_TYPES
from appliance.agents.coordinator import parse_ports
from appliance.errors import BadCommand, NoConfidentMatch, OutOfScope
from appliance.planner.plan import AnyFinding, FindingAtLeast, Plan, PortOpen, Step
from appliance.planner.planner import Planner
from appliance.router import RouteDecision, Router
from appliance.schedules.cadence import describe
from appliance.scope import Scope

HERE = Path(__file__).resolve().parent
DATA = HERE / "plans" / "plans.tsv"
NOW = datetime(2026, 11, 29, 20, 0)  # the labels' "now" (tomorrow, this morning ...)
SCOPE = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
FIELDS = ("targets", "ports", "severity", "ref", "recipients", "when")
GOALS = {"exact": 0.90, "params": 0.97, "p99_ms": 20.0}


@dataclass(frozen=True)
class Expected:
    split: str
    constructs: list[str]
    command: str
    schedule: str
    outcome: str  # "plan", "REFUSE", "SCOPE", "BAD"
    steps: list[dict[str, str]]


def load(path: Path = DATA) -> list[Expected]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        split, constructs, command, schedule, steps = line.split("\t")
        outcome = steps if steps in ("REFUSE", "SCOPE", "BAD") else "plan"
        parsed = [] if outcome != "plan" else [_step(s) for s in steps.split(" ; ")]
        rows.append(Expected(split, constructs.split(","), command, schedule, outcome, parsed))
    return rows


def _step(text: str) -> dict[str, str]:
    agent_type, *pairs = text.split()
    fields = {"type": agent_type}
    for pair in pairs:
        key, _, value = pair.partition("=")
        fields[key] = value
    return fields


def _expected_fields(step: dict[str, str]) -> dict[str, str]:
    """A labelled step in the same words as ``_actual_fields`` writes a planned one."""
    ports = parse_ports(step["p"]) if "p" in step else []
    return {
        "type": step["type"],
        "after": step.get("after", ""),
        "targets": step.get("t", ""),
        "ports": ",".join(map(str, ports)),
        "severity": step.get("sev", ""),
        "ref": step.get("ref", "").replace("_", " "),
        "recipients": step.get("to", ""),
        "when": step.get("when", ""),
    }


def _actual_fields(step: Step, index: dict[str, int]) -> dict[str, str]:
    p = step.params
    return {
        "type": step.agent_type,
        "after": ",".join(str(index[a]) for a in step.after),
        "targets": ",".join(p.targets),
        "ports": ",".join(map(str, p.ports)),
        "severity": p.severity or "",
        "ref": p.window.phrase if p.window else ("latest" if p.latest else ""),
        "recipients": ",".join(p.recipients),
        "when": _when(step),
    }


def _when(step: Step) -> str:
    w = step.when
    if w is None:
        return ""
    if isinstance(w, PortOpen):
        at = f"@{w.host}" if w.host else ""
        return f"{'port_closed' if w.negate else 'port_open'}:{','.join(map(str, w.ports))}{at}"
    if isinstance(w, FindingAtLeast):
        return f"{'below' if w.negate else 'at_least'}:{w.severity}"
    assert isinstance(w, AnyFinding)
    return "none" if w.negate else "any"


@dataclass
class Scored:
    row: Expected
    got: str  # "plan" or the refusal kind
    plan: Plan | None
    exact: bool
    params_right: int
    params_total: int
    types_right: int
    types_total: int
    detail: str


def score(row: Expected, plan: Plan | None, got: str, error: str) -> Scored:
    total = len(row.steps) * len(FIELDS) + (1 if row.outcome == "plan" else 0)
    if row.outcome != "plan" or plan is None:
        exact = got == row.outcome
        return Scored(row, got, plan, exact, 0, total, 0, len(row.steps), error)
    index = {s.id: i + 1 for i, s in enumerate(plan.steps)}
    actual = [_actual_fields(s, index) for s in plan.steps]
    expected = [_expected_fields(s) for s in row.steps]
    schedule = describe(plan.schedule) if plan.schedule is not None else "-"
    right = int(schedule == row.schedule)
    types = 0
    for i, exp in enumerate(expected):
        act = actual[i] if i < len(actual) else None
        if act is None:
            continue
        right += sum(act[f] == exp[f] for f in FIELDS)
        types += act["type"] == exp["type"]
    exact = actual == expected and schedule == row.schedule
    detail = "" if exact else f"schedule {schedule!r}; got {actual}; want {expected}"
    return Scored(row, got, plan, exact, right, total, types, len(expected), detail)


async def evaluate(rows: Sequence[Expected], planner: Planner) -> list[Scored]:
    out = []
    for row in rows:
        plan, got, error = None, "plan", ""
        try:
            plan = await planner.plan(row.command)
        except NoConfidentMatch as err:
            got, error = "REFUSE", str(err)
        except OutOfScope as err:
            got, error = "SCOPE", str(err)
        except BadCommand as err:
            got, error = "BAD", str(err)
        out.append(score(row, plan, got, error))
    return out


def make_planner() -> tuple[Planner, Router]:
    router = Router()
    types = {cls.name: cls for cls in BUILTIN_TYPES}
    for cls in BUILTIN_TYPES:
        router.add_type(cls)
    router.route_blocking("warm up")
    scope = Scope(SCOPE, confirm_large=True)

    async def route_many(clauses: Sequence[str]) -> list[RouteDecision]:
        return router.route_many(clauses) if clauses else []

    planner = Planner(
        route_many,
        threshold=router.settings.threshold,
        agent_class=types.__getitem__,
        check_target=scope.check,
        now=lambda: NOW,
    )
    return planner, router


def latency(rows: Sequence[Expected], planner: Planner, rounds: int) -> dict[str, float]:
    """p50/p99 in ms of planning without the router (``parse``) and with it (``plan``)."""
    parse: list[float] = []
    whole: list[float] = []
    for _ in range(rounds):
        for row in rows:
            start = time.thread_time()  # this thread's CPU time: the host may be busy
            with contextlib.suppress(BadCommand, OutOfScope):
                planner.parse(" ".join(row.command.split()))
            parse.append(time.thread_time() - start)
    for row in rows:
        start = time.perf_counter()
        with contextlib.suppress(BadCommand, OutOfScope):
            asyncio.run(planner.plan(row.command))
        whole.append(time.perf_counter() - start)
    return {
        "parse_p50_ms": _pct(parse, 0.50),
        "parse_p99_ms": _pct(parse, 0.99),
        "plan_p50_ms": _pct(whole, 0.50),
        "plan_p99_ms": _pct(whole, 0.99),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "test"), default="test")
    parser.add_argument("--show", action="store_true", help="print every plan that missed")
    parser.add_argument("--rounds", type=int, default=20, help="latency rounds of parse")
    args = parser.parse_args(argv)
    rows = [r for r in load() if r.split == args.split]
    planner, _router = make_planner()
    scored = asyncio.run(evaluate(rows, planner))
    exact = sum(s.exact for s in scored) / len(scored)
    params = sum(s.params_right for s in scored) / max(1, sum(s.params_total for s in scored))
    types = sum(s.types_right for s in scored) / max(1, sum(s.types_total for s in scored))
    by_construct: dict[str, list[bool]] = defaultdict(list)
    for s in scored:
        for c in s.row.constructs:
            by_construct[c].append(s.exact)
    times = latency(rows, planner, args.rounds)
    print(f"split {args.split}: {len(scored)} commands")
    print(f"exact plan        {exact:7.1%}  ({sum(s.exact for s in scored)}/{len(scored)})")
    print(f"parameters        {params:7.1%}")
    print(f"step types        {types:7.1%}")
    print("per construct:")
    for construct, hits in sorted(by_construct.items()):
        print(f"  {construct:<12} {sum(hits) / len(hits):7.1%}  ({sum(hits)}/{len(hits)})")
    print(
        "latency without the router (one thread): "
        f"p50 {times['parse_p50_ms']:.2f} ms, p99 {times['parse_p99_ms']:.2f} ms"
    )
    print(
        "latency with the router's embedding:     "
        f"p50 {times['plan_p50_ms']:.2f} ms, p99 {times['plan_p99_ms']:.2f} ms"
    )
    if args.show:
        for s in scored:
            if not s.exact:
                print(f"MISS [{s.got}] {s.row.command}\n     {s.detail}")
    missed = [
        name
        for name, ok in (
            ("exact", exact >= GOALS["exact"]),
            ("params", params >= GOALS["params"]),
            ("p99", times["parse_p99_ms"] <= GOALS["p99_ms"]),
        )
        if not ok
    ]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
        return 1
    print("goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

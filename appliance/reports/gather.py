"""Gather one job's findings report from the coordination graph and the knowledge store.

The stored results are read by their shape, not by the agent classes that wrote them (a
posture report, a plan's report, a scan, an analysis all carry ``findings``), so this
package depends on the runtime alone and reads an extension's results that look alike.
"What is new" is measured against the newest earlier job that finished everything it was
asked on the same set of targets: a partial job is no fair baseline, since what it missed
would read as resolved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

import msgspec

from appliance.reports.model import (
    Baseline,
    JobOutcome,
    JobReport,
    ReportFinding,
    StepIssue,
    Verdict,
    worst_first,
)
from appliance.runtime import SEVERITIES, JobTree, Severity, TaskGraph, TaskNode

T = TypeVar("T")


class KnowledgeReader(Protocol):
    """What the gatherer needs of the knowledge store (``KnowledgeStore`` has it)."""

    def get(self, key: str, type: type[T], default: T) -> T: ...


class _Found(msgspec.Struct, frozen=True):
    """A finding as every built-in result stores it."""

    host: str
    port: int
    service: str
    severity: Severity
    title: str
    advice: str


class _StepResult(msgspec.Struct, frozen=True):
    id: str
    agent_type: str
    status: str
    reason: str = ""
    task_id: str | None = None


class _Result(msgspec.Struct, frozen=True):
    """The fields of a stored result this report reads; any may be missing."""

    findings: list[_Found] | None = None
    targets: list[str] | None = None
    target: str | None = None
    host: str | None = None
    failed_targets: list[str] = []
    steps: list[_StepResult] = []


class _Entry(msgspec.Struct, frozen=True):
    """An executor's entry under ``report/{job_id}`` (only the part read here)."""

    finding: _Found


class _Reading(msgspec.Struct, frozen=True):
    """What one job's tree says, before any comparison."""

    status: str
    verdict: Verdict
    targets: list[str]
    findings: dict[tuple[str, int], _Found]
    problems: list[StepIssue]
    skipped: list[StepIssue]


async def gather_report(
    graph: TaskGraph, knowledge: KnowledgeReader | None, job_id: str, *, history: int = 20
) -> JobReport:
    """The job's report; UnknownJob if there is no such job. ``history``: how many earlier
    finished jobs are looked at for the baseline."""
    tree = await graph.tree(job_id)
    now = read_tree(tree)
    recorded = _recorded(knowledge, job_id)
    found = dict(now.findings)
    for key, finding in recorded.items():
        found.setdefault(key, finding)

    baseline_tree, before = await _baseline(graph, tree, now.targets, history)
    notes: list[str] = []
    if not now.targets:
        notes.append("The job names no targets of its own, so it is compared with no other job.")
    elif before is None:
        notes.append("No earlier job that finished its work scanned these same targets.")
    findings = [
        _finding(f, new=before is not None and key not in before, recorded=key in recorded)
        for key, f in found.items()
    ]
    resolved: list[ReportFinding] = []
    if before is not None:
        if now.verdict == "done":
            resolved = [_finding(f) for key, f in before.items() if key not in found]
        else:
            notes.append(
                "Resolved findings are not listed: this job did not finish all it was asked, "
                "so a finding it missed would look resolved."
            )
    return JobReport(
        job_id=tree.job_id,
        command=tree.command,
        autonomous=tree.autonomous,
        created_at=tree.created_at,
        status=now.status,
        verdict=now.verdict,
        targets=now.targets,
        findings=worst_first(findings),
        resolved=worst_first(resolved),
        baseline=(
            Baseline(
                job_id=baseline_tree.job_id,
                command=baseline_tree.command,
                created_at=baseline_tree.created_at,
            )
            if baseline_tree is not None
            else None
        ),
        problems=now.problems,
        skipped=now.skipped,
        notes=notes,
    )


def outcome(tree: JobTree) -> JobOutcome:
    """How the job ended, from its tree alone (no baseline): cheap enough for a list."""
    reading = read_tree(tree)
    severities = [f.severity for f in reading.findings.values()]
    worst = max(severities, key=SEVERITIES.index) if severities else None
    reason = reading.problems[0].reason if reading.problems and reading.verdict != "done" else ""
    return JobOutcome(reading.verdict, reason, len(reading.findings), worst)


def read_tree(tree: JobTree) -> _Reading:
    """One job's findings, targets and failed steps, from its tree alone."""
    root = tree.roots[0] if tree.roots else None
    results = {node.task_id: _result(node.result) for node in tree.tasks}
    top = results[root.task_id] if root is not None else _Result()
    if top.findings is not None:
        findings = _by_key(top.findings)
    else:  # no answer from the root (failed, running): what its tasks found so far
        findings = _by_key(f for r in results.values() for f in r.findings or [])
    problems, skipped = _issues(tree, top)
    status = root.status if root is not None else "running"
    return _Reading(
        status=status,
        verdict=_verdict(status, top, problems),
        targets=_targets(top, results.values()),
        findings=findings,
        problems=problems,
        skipped=skipped,
    )


def _result(stored: object) -> _Result:
    if not isinstance(stored, dict):
        return _Result()
    try:
        return msgspec.convert(stored, _Result)
    except msgspec.ValidationError:
        return _Result()


def _by_key(findings: Iterable[_Found]) -> dict[tuple[str, int], _Found]:
    """One finding per host and port: the most severe where tasks disagree."""
    out: dict[tuple[str, int], _Found] = {}
    for f in findings:
        key = (f.host, f.port)
        old = out.get(key)
        if old is None or SEVERITIES.index(f.severity) > SEVERITIES.index(old.severity):
            out[key] = f
    return out


def _targets(top: _Result, results: Iterable[_Result]) -> list[str]:
    """What the job was asked to scan: the root's targets, else what its scans covered,
    else the hosts its analyses covered."""
    if top.targets:
        return list(dict.fromkeys(top.targets))
    every = list(results)
    scanned = [r.target for r in every if r.target]
    if scanned:
        return sorted(set(scanned))
    return sorted({r.host for r in every if r.host})


def _issues(tree: JobTree, top: _Result) -> tuple[list[StepIssue], list[StepIssue]]:
    problems = [_task_issue(n) for n in tree.tasks if n.status in ("failed", "cancelled")]
    listed = {p.task_id for p in problems}
    failed_objectives = {n.objective for n in tree.tasks if n.status in ("failed", "cancelled")}
    skipped: list[StepIssue] = []
    for step in top.steps:
        what = f"step {step.id} ({step.agent_type})"
        if step.status == "skipped":
            skipped.append(StepIssue(what=what, status="skipped", reason=step.reason))
        elif step.status == "failed" and (step.task_id is None or step.task_id not in listed):
            problems.append(
                StepIssue(
                    what=what,
                    status="refused" if step.task_id is None else "failed",
                    reason=step.reason or "no reason was given",
                    task_id=step.task_id,
                )
            )
    for target in top.failed_targets:
        if target not in failed_objectives:
            problems.append(
                StepIssue(what=f"scan of {target}", status="failed", reason="the scan did not end")
            )
    return problems, skipped


def _task_issue(node: TaskNode) -> StepIssue:
    refused = node.detail.startswith("refused")
    return StepIssue(
        what=f"{node.agent_type}: {node.objective}" if node.objective else node.agent_type,
        status="refused" if refused else "cancelled" if node.status == "cancelled" else "failed",
        reason=node.detail or "no reason was given",
        task_id=node.task_id,
    )


def _verdict(status: str, top: _Result, problems: list[StepIssue]) -> Verdict:
    """Done only if everything asked was done; refused when nothing ran because every step
    was refused (out of scope, too large, not allowed): that touched nothing."""
    if status == "running":
        return "running"
    refused = bool(problems) and all(p.status == "refused" for p in problems)
    if status != "done":
        return "refused" if refused else "failed"
    if not problems:
        return "done"
    nothing_ran = (top.steps and not any(s.status == "done" for s in top.steps)) or (
        top.targets and set(top.failed_targets) >= set(top.targets)
    )
    if nothing_ran:
        return "refused" if refused else "failed"
    return "partial"


def _recorded(knowledge: KnowledgeReader | None, job_id: str) -> dict[tuple[str, int], _Found]:
    if knowledge is None:
        return {}
    try:
        entries = knowledge.get(f"report/{job_id}", list[_Entry], [])
    except msgspec.ValidationError:
        return {}
    return _by_key(e.finding for e in entries)


async def _baseline(
    graph: TaskGraph, tree: JobTree, targets: list[str], history: int
) -> tuple[JobTree | None, dict[tuple[str, int], _Found] | None]:
    """The newest earlier job that finished all it was asked on the same targets."""
    if not targets:
        return None, None
    wanted = set(targets)
    for earlier in await graph.results(
        until=tree.created_at, exclude_job=tree.job_id, limit=history
    ):
        candidate = await graph.tree(earlier.job_id)
        reading = read_tree(candidate)
        if reading.verdict == "done" and set(reading.targets) == wanted:
            return candidate, reading.findings
    return None, None


def _finding(f: _Found, *, new: bool = False, recorded: bool = False) -> ReportFinding:
    return ReportFinding(
        severity=f.severity,
        host=f.host,
        port=f.port,
        service=f.service,
        title=f.title,
        advice=f.advice,
        new=new,
        recorded=recorded,
    )

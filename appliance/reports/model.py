"""The findings report of one job, as a typed record every renderer and client reads.

A job's answer is spread over its task tree (each task's stored result) and the executor's
entries in the knowledge store; the owner wants one list: what was found, worst first, what
changed since the last time the same targets were scanned, and whether the job really did
all it was asked. ``gather.py`` builds this record; the renderers only format it, so the
panel, the CLI and every download say the same thing.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, TypeAlias

import msgspec

from appliance.runtime import SEVERITIES, Severity

Verdict: TypeAlias = Literal["done", "partial", "refused", "failed", "running"]
"""done: every step did what was asked; partial: the job ended but some step failed or was
refused; failed: the job itself failed or was cancelled; running: not over yet."""

IssueStatus: TypeAlias = Literal["failed", "refused", "cancelled", "skipped"]


class ReportFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One finding: ``title`` says why it matters, ``advice`` what to do about it."""

    severity: Severity
    host: str
    port: int
    service: str
    title: str
    advice: str
    new: bool = False  # absent from the baseline job (False when there is no baseline)
    recorded: bool = False  # an executor put it in the job's report


class StepIssue(msgspec.Struct, frozen=True, kw_only=True):
    """A step that did not do what was asked (or was skipped), in plain words."""

    what: str
    status: IssueStatus
    reason: str
    task_id: str | None = None


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """The earlier finished job that scanned the same targets: what "new" is measured against."""

    job_id: str
    command: str
    created_at: float


class JobReport(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    command: str
    autonomous: bool
    created_at: float
    status: str  # the root task's own status, as the graph records it
    verdict: Verdict
    targets: list[str]
    findings: list[ReportFinding]  # found by this job, critical first
    resolved: list[ReportFinding] = []  # in the baseline, absent now
    baseline: Baseline | None = None
    problems: list[StepIssue] = []  # failed, refused or cancelled steps
    skipped: list[StepIssue] = []  # steps a plan skipped (a condition, an earlier failure)
    notes: list[str] = []  # what the reader should know about the comparison

    def counts(self) -> dict[Severity, int]:
        """How many findings of each severity, worst first (only those present)."""
        out: dict[Severity, int] = {}
        for severity in reversed(SEVERITIES):
            n = sum(1 for f in self.findings if f.severity == severity)
            if n:
                out[severity] = n
        return out


def worst_first(findings: list[ReportFinding]) -> list[ReportFinding]:
    """Critical first; then by address (numerically where it is one) and port."""
    return sorted(
        findings, key=lambda f: (-SEVERITIES.index(f.severity), _host_key(f.host), f.port)
    )


def _host_key(host: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (2, 0, host)
    return (address.version, int(address), host)


class JobOutcome(msgspec.Struct, frozen=True):
    """A job's end in a line: the jobs list's and the home page's status column."""

    verdict: Verdict
    reason: str  # why it is not done, in words (the first step that was not); "" if done
    findings: int
    worst: Severity | None


VERDICT_TEXT: dict[Verdict, str] = {
    "done": "Done: every step did what was asked.",
    "partial": "Partial: the job ended, but some steps failed or were refused (listed below).",
    "refused": "Refused: nothing was done, and nothing was touched (the reason is below).",
    "failed": "Failed: the job did not do what was asked.",
    "running": "Still running: the findings so far.",
}
"""The verdict in words, for every renderer alike."""

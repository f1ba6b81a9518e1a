"""The built-in agents' events and results: the contract between coordinator, collectors,
analyzers and executors (and what the panel shows of a job)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec

from appliance.actions.model import AnyAction
from appliance.events import Event
from appliance.planner.plan import Plan
from appliance.runtime import SEVERITIES, Severity, StepInput

__all__ = ["SEVERITIES", "Severity"]


class ScanRequested(Event, frozen=True, tag="scan.requested"):
    target: str
    ports: list[int]


class ChunkScanRequested(Event, frozen=True, tag="scan.chunk_requested"):
    """One slice of a large scan, for whichever instance of the collectors' pool is free."""

    hosts: list[str]
    ports: list[int]


class ChunkScanned(msgspec.Struct, frozen=True):
    """A slice done: what was open there, and which pool instance did it, how fast."""

    first: str
    last: str
    hosts_probed: int
    open: list[HostPorts]
    worker: str  # the pool instance's task id
    seconds: float


class ScanProgressed(Event, frozen=True, tag="scan.progressed"):
    target: str
    probed: int
    total: int
    open: int


class AnalysisRequested(Event, frozen=True, tag="analysis.requested"):
    host: str
    open_ports: list[int]


class ActionRequested(Event, frozen=True, tag="action.requested"):
    finding: Finding


class Finding(msgspec.Struct, frozen=True):
    host: str
    port: int
    service: str
    severity: Severity
    title: str
    advice: str


class HostPorts(msgspec.Struct, frozen=True):
    host: str
    open_ports: list[int]


class ActionTaken(msgspec.Struct, frozen=True):
    host: str
    port: int
    action: str
    report_key: str = ""  # where a report entry went
    action_id: str = ""  # an action on the firewall or a notice (appliance/actions)
    state: str = "done"  # "pending" until an admin approves it; see `qey approvals`


class ActRequested(Event, frozen=True, tag="act.requested"):
    """Take these actions (block, quarantine, allow-list, revoke, notify); the destructive
    ones wait for an approval: an admin's, or a vote of analyzers on ``findings``."""

    actions: list[AnyAction]
    note: str = ""
    findings: list[Finding] = msgspec.field(default_factory=list)


class Proposal(msgspec.Struct, frozen=True, kw_only=True):
    """What a vote on an action asks each analyzer: does the finding behind it rate at least
    ``floor`` by your own rules? Sent as JSON in the vote's ``proposal``."""

    action: str  # for people: "block 127.0.0.3"
    host: str
    port: int
    floor: Severity


encode_proposal = msgspec.json.Encoder().encode
decode_proposal = msgspec.json.Decoder(Proposal).decode


class AnalysisReport(msgspec.Struct, frozen=True):
    host: str
    findings: list[Finding]
    actions: list[ActionTaken]


class ScanReport(msgspec.Struct, frozen=True):
    target: str
    hosts_probed: int
    open: list[HostPorts]
    findings: list[Finding]
    failed_analyses: int = 0
    chunks: list[ChunkScanned] = []  # a large target's slices, in the order they finished


class PostureReport(msgspec.Struct, frozen=True):
    """A job's answer: what was scanned, what was found, what failed."""

    targets: list[str]
    hosts_probed: int
    open: list[HostPorts]
    findings: list[Finding]
    failed_targets: list[str]
    report_key: str


class Facts(msgspec.Struct, frozen=True):
    """What any built-in result says it found, read alike from every one of them (a scan,
    an analysis, a posture report, a plan's report): the typed view a later step gets."""

    open: list[HostPorts] = []
    findings: list[Finding] = []


def facts_of(result: Any) -> Facts:
    """A result (live object or stored JSON) as Facts; a result of another shape has none."""
    if result is None:
        return Facts()
    try:
        return msgspec.convert(msgspec.to_builtins(result), Facts)
    except (msgspec.ValidationError, TypeError):
        return Facts()


def merged_facts(inputs: Iterable[StepInput]) -> Facts:
    """The inputs' facts together: each host's open ports and each finding once."""
    ports: dict[str, set[int]] = {}
    findings: dict[tuple[str, int], Finding] = {}
    for item in inputs:
        facts = facts_of(item.result)
        for hp in facts.open:
            ports.setdefault(hp.host, set()).update(hp.open_ports)
        for f in facts.findings:
            findings.setdefault((f.host, f.port), f)
    return Facts(
        open=[HostPorts(host=h, open_ports=sorted(p)) for h, p in ports.items()],
        findings=list(findings.values()),
    )


def at_least(findings: Sequence[Finding], severity: Severity | None) -> list[Finding]:
    if severity is None:
        return list(findings)
    floor = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


class ReviewRequested(Event, frozen=True, tag="review.requested"):
    """Analyse results a plan passed on (or earlier jobs' results): rate every open port,
    keep the findings at or above ``severity``, and say what changed against ``baseline``."""

    open: list[HostPorts]
    severity: Severity | None = None
    baseline: list[Finding] | None = None


class ReviewReport(msgspec.Struct, frozen=True):
    open: list[HostPorts]
    findings: list[Finding]
    new: list[Finding] = []
    gone: list[Finding] = []


class RecordRequested(Event, frozen=True, tag="record.requested"):
    """Record the findings a plan passed on (at or above ``severity``), for ``recipients``."""

    findings: list[Finding]
    note: str = ""
    recipients: list[str] = msgspec.field(default_factory=list)


class RecordReport(msgspec.Struct, frozen=True):
    findings: list[Finding]
    actions: list[ActionTaken]
    note: str = ""
    recipients: list[str] = []


class PlanRequested(Event, frozen=True, tag="plan.requested"):
    """Run a plan: each step a child task, in the order its dependencies set."""

    plan: Plan


StepStatus = Literal["done", "failed", "skipped"]


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    agent_type: str
    status: StepStatus
    reason: str = ""
    task_id: str | None = None
    result: Any = None


class PlanReport(msgspec.Struct, frozen=True, kw_only=True):
    """A plan's answer: which steps ran, which were skipped and why, and what was found."""

    steps: list[StepOutcome]
    ran: list[str]
    skipped: list[str]
    failed: list[str]
    open: list[HostPorts] = []
    findings: list[Finding] = []

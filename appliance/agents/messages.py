"""The built-in agents' events and results: the contract between coordinator, collectors,
analyzers and executors (and what the panel shows of a job)."""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from appliance.events import Event

Severity: TypeAlias = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


class ScanRequested(Event, frozen=True, tag="scan.requested"):
    target: str
    ports: list[int]


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
    report_key: str


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


class PostureReport(msgspec.Struct, frozen=True):
    """A job's answer: what was scanned, what was found, what failed."""

    targets: list[str]
    hosts_probed: int
    open: list[HostPorts]
    findings: list[Finding]
    failed_targets: list[str]
    report_key: str

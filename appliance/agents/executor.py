"""The executor: acts on a finding. On this appliance acting means recording it, with its
advice, in the job's report; it never changes anything on the target."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from appliance.agents.messages import (
    ActionRequested,
    ActionTaken,
    Finding,
    RecordReport,
    RecordRequested,
    at_least,
    merged_facts,
)
from appliance.agents.scope import Scope
from appliance.errors import BadCommand
from appliance.events import Event
from appliance.runtime import Agent, Context, NoState, StepInput, StepParams


class ReportEntry(msgspec.Struct, frozen=True):
    finding: Finding
    recorded_by: str
    recorded_at: float


class Executor(Agent):
    name = "executor"
    description = (
        "Acts on findings: records each finding and its advice in the job's report. Writes "
        "up, logs and documents findings and the recommended fixes; it never changes anything "
        "on the target."
    )
    capabilities = (
        "record findings in a report",
        "act on findings",
        "write the findings report",
        "add a finding to the report",
        "log a finding",
        "document the remediation advice",
        "file findings that need action",
        "take action on the flagged findings",
        "make a report entry for an exposed service",
        "write down the recommended fix",
        "write up a finding with its fix",
        "note a finding in the job report",
        "keep a record of the findings",
        "turn flagged findings into report entries",
        "record the remediation steps",
        "handle the flagged findings",
    )
    examples = (
        "act on the high severity findings",
        "save the findings to the job report",
        "record that port 3389 is exposed on 10.1.1.1",
        "document the findings with their advice",
        "append the elasticsearch finding to the report",
        "act on what the analyzer flagged",
        "enter the telnet exposure into the report",
        "produce the findings report",
        "note the open rdp port on 10.0.0.20 in the report",
        "write up the ftp finding with its fix",
        "put the telnet finding for 10.2.2.2 in the job report",
        "log the redis exposure on 10.0.0.40",
        "add the recommended fix for smb to the report",
        "record the remediation steps for the exposed vnc service",
        "enter every high finding into the report",
        "take action on the critical findings",
        "save the finding about port 21 on 10.0.0.5",
        "mark the exposed mysql server 10.0.0.61 in the report",
        "keep a record of the findings for 192.168.5.5",
        "write the advice for port 3389 into the job report",
        "handle the flagged findings for 10.0.0.70",
        "note the exposed vnc on 10.0.0.15 in the report",
        "file the telnet finding",
        "record the high severity rdp exposure",
        "write up the finding for port 21 on 10.0.0.8",
        "log the recommended fix for redis",
        "store the critical findings in the job report",
        "take action on the critical findings",
        "put the smb exposure in the report with its advice",
        "add a report line for the open mysql port",
        "act on the findings the analysis produced",
        "record the remediation advice for each exposed service",
        "save the advice for the nas at 192.168.1.50",
        "carry out the recommended actions for the flagged ports",
        "enter each high finding in the report",
        "make a record of the exposed elasticsearch",
    )
    State = NoState

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @classmethod
    def start_for(cls, command: str) -> Event | None:
        """An executor acts on a finding, which only an analysis produces (service, severity,
        advice); a sentence can't supply one. Say so rather than start an idle instance."""
        raise _alone(command)

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> RecordRequested:
        """A plan's record step: the findings the steps before it (or the earlier jobs it
        refers to) produced, at or above the step's severity."""
        if not inputs:
            raise _alone(step_text)
        findings = at_least(merged_facts(inputs).findings, params.severity)
        return RecordRequested(findings=findings, note=step_text, recipients=params.recipients)

    async def on_record(self, event: RecordRequested, ctx: Context[NoState]) -> RecordReport:
        for finding in event.findings:  # all in scope, or nothing is recorded
            self._scope.check(finding.host)
        key = f"report/{ctx.job.job_id}"
        now = ctx.clock.now()
        entries = [
            ReportEntry(finding=f, recorded_by=ctx.task_id, recorded_at=now) for f in event.findings
        ]
        ctx.knowledge.update(key, lambda old: [*old, *entries], type=list[ReportEntry], default=[])
        return RecordReport(
            findings=event.findings,
            actions=[
                ActionTaken(host=f.host, port=f.port, action="recorded in report", report_key=key)
                for f in event.findings
            ],
            note=event.note,
            recipients=event.recipients,
        )

    async def on_action(self, event: ActionRequested, ctx: Context[NoState]) -> ActionTaken:
        finding = event.finding
        self._scope.check(finding.host)
        key = f"report/{ctx.job.job_id}"
        entry = ReportEntry(finding=finding, recorded_by=ctx.task_id, recorded_at=ctx.clock.now())
        ctx.knowledge.update(
            key, lambda entries: [*entries, entry], type=list[ReportEntry], default=[]
        )
        return ActionTaken(
            host=finding.host, port=finding.port, action="recorded in report", report_key=key
        )


def _alone(command: str) -> BadCommand:
    return BadCommand(
        f"the executor records findings that an analysis produced and can't take "
        f"{command!r} on its own; ask for an analysis (analyze <address>) or a posture "
        "analysis, whose findings reach the report"
    )

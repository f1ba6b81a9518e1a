"""The executor: acts on a finding. On this appliance acting means recording it, with its
advice, in the job's report; it never changes anything on the target."""

from __future__ import annotations

import msgspec

from appliance.agents.messages import ActionRequested, ActionTaken, Finding
from appliance.agents.scope import Scope
from appliance.runtime import Agent, Context, NoState


class ReportEntry(msgspec.Struct, frozen=True):
    finding: Finding
    recorded_by: str
    recorded_at: float


class Executor(Agent):
    name = "executor"
    description = "Acts on findings: records each finding and its advice in the job's report."
    capabilities = ("record findings in a report", "act on findings")
    examples = ("write a report of the findings",)
    State = NoState

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

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

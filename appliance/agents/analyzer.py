"""The analyzer: turns a host's open ports into findings by the rules in port_rules.toml."""

from __future__ import annotations

from appliance.agents.messages import (
    ActionRequested,
    ActionTaken,
    AnalysisReport,
    AnalysisRequested,
)
from appliance.agents.rules import PortRules
from appliance.runtime import Agent, Context, NoState


class Analyzer(Agent):
    name = "analyzer"
    description = "Analyses scan results: rates open ports as findings with a severity."
    capabilities = ("analyze scan results", "rate findings by severity")
    examples = ("analyze the open ports found on 127.0.0.1",)
    State = NoState
    handler_timeout_s = 300.0

    def __init__(self, rules: PortRules) -> None:
        self._rules = rules

    async def on_analysis(self, event: AnalysisRequested, ctx: Context[NoState]) -> AnalysisReport:
        findings = [self._rules.assess(event.host, port) for port in event.open_ports]
        outcomes = await ctx.fan_out(
            "executor",
            [
                (f"{f.severity}: {f.title} on {f.host}:{f.port}", ActionRequested(finding=f))
                for f in findings
                if self._rules.needs_action(f)
            ],
        )
        return AnalysisReport(
            host=event.host,
            findings=findings,
            actions=[o.result_as(ActionTaken) for o in outcomes if o.ok],
        )

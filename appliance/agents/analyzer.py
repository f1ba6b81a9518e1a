"""The analyzer: turns a host's open ports into findings by the rules in port_rules.toml."""

from __future__ import annotations

from collections.abc import Sequence

from appliance.agents.collector import one_target, ports_in
from appliance.agents.messages import (
    ActionRequested,
    ActionTaken,
    AnalysisReport,
    AnalysisRequested,
    HostPorts,
    ReviewReport,
    ReviewRequested,
    at_least,
    merged_facts,
)
from appliance.agents.rules import PortRules
from appliance.agents.scope import parse_network
from appliance.errors import BadCommand
from appliance.runtime import Agent, Context, NoState, StepInput, StepParams

ANALYSIS_USAGE = "say: analyze <address> [ports 22,80] (no ports: what the last scan found)"


class Analyzer(Agent):
    name = "analyzer"
    description = (
        "Analyses scan results: rates each open port as a finding with a severity, explains "
        "how risky an exposed service is, and says which findings need attention. Judges "
        "what was found; it neither scans nor writes the report."
    )
    capabilities = (
        "analyze scan results",
        "rate findings by severity",
        "how risky is an open port",
        "assess the risk of exposed services",
        "is an open port dangerous or a problem",
        "which open ports need attention",
        "interpret the scan output",
        "prioritise and triage findings",
        "explain what an open port means for security",
        "how severe is an exposed service",
        "rate the risk of open ports",
        "assign a severity to each open port",
        "classify findings as low, medium or high",
        "evaluate the exposure of a host",
        "judge whether a service is a security concern",
        "what the scan results mean",
    )
    examples = (
        "analyse the scan results for 10.0.0.5",
        "which of the open ports on 10.0.0.7 are dangerous",
        "is it bad that port 23 is open on 10.0.0.2",
        "give me a severity rating for each open port on 127.0.0.1",
        "how serious is redis exposed on 6379",
        "look at the scan output and tell me what is risky",
        "analyze open port 3306 on 127.0.0.1",
        "should I worry about port 8080 being open on 127.0.0.1",
        "how risky are the open ports on 10.0.2.2",
        "rate the risk of ssh on 10.0.0.3",
        "what does port 21 being open on 10.0.0.4 mean for security",
        "is mongodb on 27017 a security problem",
        "prioritise the open ports on 192.168.2.2 by risk",
        "evaluate the findings for 10.3.3.3",
        "how exposed is 10.0.4.4",
        "assign a severity to port 21 on 10.0.0.9",
        "what is the risk level of the services on localhost",
        "interpret the results of the last scan",
        "are any of the open ports on 172.16.2.2 critical",
        "which exposed services on 10.0.0.8 are the worst",
        "explain why an open smb port is dangerous",
        "sort the open ports on 10.9.0.1 into low, medium and high",
        "is it a concern that mysql listens on 10.0.0.60",
        "judge the risk of the services found on 192.168.4.4",
        "how risky is the open smb share on 10.0.0.30",
        "rate the exposure of ftp on port 21",
        "what is the severity of telnet being reachable",
        "interpret the open ports found on 172.16.9.9",
        "is an exposed mysql port on 10.2.3.4 a problem",
        "prioritise the findings from the last scan",
        "which of these open ports matter most",
        "evaluate whether port 8443 on 127.0.0.1 is a risk",
        "tell me which exposed services are critical",
        "grade the risk of the open ports on the nas",
        "explain what the open ports on 192.168.1.40 mean",
        "how bad is rdp open to the network",
        "judge the severity of the services found on 10.4.4.4",
        "assess the danger of vnc listening on 10.0.0.15",
        "rank the scan findings by risk",
    )
    State = NoState
    handler_timeout_s = 300.0

    def __init__(self, rules: PortRules) -> None:
        self._rules = rules

    @classmethod
    def start_for(cls, command: str) -> AnalysisRequested:
        """A routed command ("analyze ports 22,23 on 127.0.0.1") as the analysis it asks
        for. Without ports, the analysis takes what the last scan of the host found."""
        target = one_target(command, ANALYSIS_USAGE)
        net = parse_network(target)
        if net.num_addresses != 1:
            raise BadCommand(f"{target} is a network; an analysis is of one host. {ANALYSIS_USAGE}")
        host = str(net.network_address)  # "localhost" as the collector recorded it
        return AnalysisRequested(host=host, open_ports=ports_in(command))

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> AnalysisRequested | ReviewRequested:
        """A plan's analysis step: the results it was given (the steps before it, or earlier
        jobs' results it refers to; both: what changed since), else the one host it names."""
        current = [i for i in inputs if not i.source.startswith("job:")]
        past = [i for i in inputs if i.source.startswith("job:")]
        if current or past:
            facts = merged_facts(current or past)
            ports = {hp.host: set(hp.open_ports) for hp in facts.open}
            for f in facts.findings:
                ports.setdefault(f.host, set()).add(f.port)
            wanted = set(params.targets)
            open_ = [
                HostPorts(host=h, open_ports=sorted(p))
                for h, p in ports.items()
                if not wanted or h in wanted
            ]
            baseline = merged_facts(past).findings if current and past else None
            return ReviewRequested(open=open_, severity=params.severity, baseline=baseline)
        if len(params.targets) == 1:
            return cls.start_for(f"{params.targets[0]} {step_text}")
        raise BadCommand(
            f"{step_text!r} has no results to analyse: name one host, or scan first "
            f"(scan <address> then analyze the results). {ANALYSIS_USAGE}"
        )

    async def on_review(self, event: ReviewRequested, ctx: Context[NoState]) -> ReviewReport:
        findings = [self._rules.assess(hp.host, p) for hp in event.open for p in hp.open_ports]
        kept = at_least(findings, event.severity)
        if event.baseline is None:
            return ReviewReport(open=event.open, findings=kept)
        before = {(f.host, f.port) for f in event.baseline}
        now = {(f.host, f.port) for f in findings}
        return ReviewReport(
            open=event.open,
            findings=kept,
            new=[f for f in kept if (f.host, f.port) not in before],
            gone=[
                f for f in at_least(event.baseline, event.severity) if (f.host, f.port) not in now
            ],
        )

    async def on_analysis(self, event: AnalysisRequested, ctx: Context[NoState]) -> AnalysisReport:
        open_ports = event.open_ports or self._last_scan(event.host, ctx)
        findings = [self._rules.assess(event.host, port) for port in open_ports]
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

    @staticmethod
    def _last_scan(host: str, ctx: Context[NoState]) -> list[int]:
        """The open ports the latest scan recorded for ``host`` (the collector keeps them)."""
        record = ctx.knowledge.get(f"hosts/{host}", dict[str, list[int]], {})
        if "open_ports" not in record:
            raise BadCommand(f"no scan of {host} is recorded yet; scan it first, or name ports")
        return record["open_ports"]

"""The analyzer: turns a host's open ports into findings by the rules in port_rules.toml."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

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
    decode_proposal,
    merged_facts,
)
from appliance.agents.rules import PortRules
from appliance.errors import BadCommand
from appliance.events import VoteCast, VoteRequested
from appliance.runtime import SEVERITIES, Agent, Context, NoState, StepInput, StepParams
from appliance.scope import parse_network

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
        "review the results of an earlier scan",
        "which of the findings are serious",
        "look through past results for risky services",
        "triage the findings of a previous job",
        "explain why a finding is rated high or low",
        "why a service is considered risky",
        "summarise the risks in the scan results",
        "compare findings with an earlier scan",
        "did the scan turn up anything serious",
        "answer questions about the findings",
        "which finding to fix first",
        "is a device safe given its open ports",
        "tell true problems from harmless open ports",
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
        "assess the severity of port 3389 being open on 10.1.1.1",
        "classify the findings for host 10.0.0.12 by severity",
        "review the open ports of 192.168.10.20 and rate them",
        "analyze port 445 open on 10.0.0.30",
        "analyze ports 22, 80 and 443 on 10.0.0.80",
        "what do the results of the scan of 127.0.0.2 say about its security",
        "evaluate open ports 5432 and 6379 on 127.0.0.1",
        "which open services on 192.168.1.254 need attention",
        "determine the severity of vnc on port 5900",
        "explain the risk of an exposed elasticsearch on 9200",
        "check the scan results of 10.0.0.50 against the port rules",
        "analyze the exposure of the database server 172.16.5.5",
        "rate the severity of the open ports found earlier",
        "triage the scan results",
        "which findings are high severity on 10.1.0.4",
        "is port 53 open on the router a concern",
        "tell me how severe the open ports on localhost are",
        "which of the findings are critical",
        "which of the results need fixing",
        "which of these findings matter",
        "which of the open ports found on the nas are risky",
        "look through the results for anything risky",
        "look through the findings for exposed admin panels",
        "look over the last scan and tell me what's bad",
        "go through the findings and rate them",
        "go over the scan results for the printer",
        "triage the findings",
        "triage last night's results",
        "triage what the scan found on 10.0.0.5",
        "triage the open ports on the synology",
        "explain why ssh being open is a risk",
        "explain why the finding on the router is high",
        "explain why port 23 is dangerous",
        "explain the findings",
        "explain the results of the scan on the thermostat",
        "why is telnet considered risky",
        "why was the nas rated critical",
        "why did you flag the printer",
        "what does an open port 445 mean",
        "what do the findings mean",
        "what do these results tell me",
        "what did the scan of the xbox reveal about its security",
        "what did yesterday's scan find that I should worry about",
        "did anything bad turn up in the last scan",
        "did the scan find any critical issues",
        "did we find anything dangerous on 10.0.0.0/24",
        "was anything high severity found",
        "were there any serious findings this week",
        "are the results from this morning bad",
        "are there any critical findings",
        "is there anything worrying in the results",
        "is it safe to leave port 80 open on the nas",
        "is ftp on the printer a risk",
        "is an open vnc port on the pi bad",
        "is port 3389 exposure serious",
        "is it ok that the thermostat has port 8080 open",
        "should I be concerned about what's listening on the xbox",
        "should I worry that the camera listens on 554",
        "how bad are the findings",
        "how bad is it that telnet is open",
        "how serious are the results of the last scan",
        "how dangerous is the open rdp on my pc",
        "how risky is the synology",
        "how exposed is the mac mini",
        "how severe is each finding",
        "how critical is an open redis port",
        "rate the results",
        "rate the findings of the last job",
        "rate the findings on 172.16.0.10 by severity",
        "rank the findings by how urgent they are",
        "rank the open ports on the nas by danger",
        "sort the findings by severity",
        "order the findings from most to least severe",
        "prioritize the findings",
        "prioritise what to fix on the router",
        "what should I fix first",
        "which finding is the most urgent",
        "what's the riskiest service on my network",
        "which device is the most exposed",
        "which host has the worst findings",
        "summarise the findings",
        "summarize the results of the scan",
        "give me a summary of the risks found",
        "give me a risk assessment for the hue bridge",
        "assess the risk of the services on the pi",
        "assess the results of yesterday's scan",
        "evaluate the scan findings",
        "evaluate the results for 192.168.1.0/24",
        "judge the findings from the earlier scan",
        "interpret the findings for me",
        "interpret what the scan found on the xbox",
        "make sense of the scan results",
        "help me understand the scan results",
        "what do you make of the open ports on the nas",
        "what's your verdict on the services of the switch",
        "review the previous scan's findings for the xbox",
        "review the results of job 42",
        "review the earlier results for 10.0.0.9",
        "check the results for anything critical",
        "check the findings for high severity issues",
        "scan results: anything to worry about?",
        "any red flags in the scan results?",
        "anything concerning in the results",
        "anything critical on the printer?",
        "findings that need attention?",
        "which findings are low severity",
        "which findings can I ignore",
        "which open ports are harmless",
        "are any of the findings false positives",
        "is the finding about port 53 a false positive",
        "compare the findings of the two last scans",
        "compare this week's results with last week's",
        "what changed in the findings since last week",
        "has the risk on the nas gone up since the last scan",
        "analyse the findings",
        "analyze the results from the nas scan",
        "analyze the scan results from this morning",
        "analyze last night's scan",
        "analyze the open ports of the thermostat",
        "analyze what you found on the router",
        "analyze the earlier results for the printer",
        "analyse results for 10.0.0.7",
        "anaylze the scan results",
        "analize the findings",
        "rate teh open ports on 10.0.0.5",
        "how risky r the services on the synology",
        "whats the risk of ssh on the pi",
        "tell me how dangerous the exposed services are",
        "tell me what's wrong with the thermostat's open ports",
        "tell me which results are high severity",
        "pick out the worst findings",
        "highlight the dangerous findings",
        "point out the risky services on 10.0.0.12",
        "flag anything severe in the results",
        "find the critical findings in the last scan",
        "find the high severity results from this morning",
        "look for critical issues in the scan results",
        "search the results for anything rated high",
        "show me the critical findings",
        "show me only the high severity results",
        "list the findings by severity",
        "list the risky ports found on the nas",
        "what's the severity of the open smb share",
        "what severity is telnet on the printer",
        "classify the open ports on 10.0.0.22",
        "categorise the findings by risk",
        "score each open port on the switch",
        "grade the security of the services found on the nas",
        "what are the security implications of the open ports",
        "what are the risks of the ports found on the hue bridge",
        "was the telnet finding on the camera serious",
        "were the results from the nas any good",
        "what was wrong with the printer according to the scan",
        "how did the router do in the last scan",
        "which hosts from yesterday's scan look risky",
        "go through this morning's findings and tell me what matters",
        "review the last job's results",
        "what did tuesday's scan come up with, risk-wise",
        "look through the latest results for open databases",
        "check the earlier findings for anything critical",
        "triage the latest findings for the servers",
        "triage the results of job 17",
        "explain the high severity finding on the nas",
        "explain why the camera was flagged",
        "why is rdp rated critical",
        "why does the scan say the printer is risky",
        "is the open 8443 on the router a problem",
        "is that ssh port a risk",
        "how bad is the synology's exposure",
        "how concerned should I be about the results",
        "what's the risk level of the last scan's findings",
        "which results are the most severe",
        "which of the hosts need attention",
        "which of the services on the pi are dangerous",
        "what's dangerous in the results",
        "is anything in the results worth fixing",
        "do any of the findings matter",
        "rate how exposed the nvr is",
        "give each finding a severity",
        "interpret the last job's output",
        "make sense of the findings for the office",
        "what did the scan on sunday turn up, anything nasty?",
        "from the last job, which hosts worry you most",
        "explain the finding on the baby monitor",
        "why is the fridge considered risky",
        "triage",
        "triage pls",
        "severity of each finding on 10.21.0.0/24?",
        "is an open port 25 on the mail box a big deal",
        "how bad is telnet on the doorbell",
        "are the cameras safe, judging by what you found",
        "what do the results say about the nvr",
        "go through yesterday's findings and tell me which are real",
        "which of the open ports on the pi are harmless",
        "rate how dangerous the ps5's open ports are",
        "is it risky that the smart tv has 8008 open",
        "explain in simple terms what the scan of the fridge means",
        "what's the worst thing the last scan found",
        "anything critical from this afternoon?",
        "look over the results from the warehouse and flag the concerning ones",
        "review job 17",
        "which findings from last week are still a problem",
        "compare the nas findings from march and april",
        "has the exposure of the printer gotten worse since the last scan",
        "tell me which of the discovered services are a security concern",
        "analyse the results of the camera scan",
        "why was mysql on 10.4.4.4 marked high",
        "why's the plex server rated medium",
        "is the rdp exposure on the reception pc a real risk or not",
        "how serious is the open vnc on my dad's mac",
        "could you explain the results to me as if I'm not technical",
        "which vulnerabilities should we tackle first",
        "what should be fixed first on the office network, based on the findings",
        "prioritize last night's findings",
        "sort the findings by risk",
        "order the results from worst to least bad",
        "which results look like false positives",
        "are these findings real problems or just noise",
        "interpret the findings for the voip phones",
        "assess how risky the open ports on 10.6.6.6 are",
        "what risk does the open ftp on the label printer pose",
        "judge the results for the heat pump",
        "evaluate the findings from the garage server",
        "summarize what the scans this week found, risk wise",
        "give me a risk summary of the last results",
        "what are the high findings",
        "any medium or high findings for the kids' devices?",
        "were there critical results on 172.17.0.0/24",
        "is the robot vacuum exposed in a bad way",
        "did we find anything bad on the doorbell last time",
        "what did the check on my tablet show, is it ok",
        "was the smart plug flagged for anything serious",
        "the scan said port 23 is open on the baby monitor, is that bad?",
        "the nas shows 445 open, what does that mean for me",
        "hmm port 1900 on the tv, dangerous?",
        "wats the risk of port 22 on the pi",
        "explian the findings",
        "trige the results",
        "wich findings are high",
        "analise the last scan",
        "severty of the telnet finding",
        "Kindly advise which of the reported issues on the clinic network are most urgent.",
        "I was wondering whether the results from the last check are anything to lose sleep over",
        "go through the results and separate real issues from harmless ones",
        "check the findings for anything critical on 10.0.8.0/24",
        "is the game server's exposure acceptable",
        "how exposed is the warehouse based on the last scan",
        "which device came out worst in the audit",
        "which hosts had the most findings",
        "what changed in the findings since yesterday",
        "diff this scan against the previous one and tell me what got riskier",
        "rate the nvr's services",
        "give the findings on 127.0.0.2 a severity",
        "classify the exposed services on the lights hub",
        "are any of the results on the pos terminals high risk",
        "should the open 8080 on the web box concern me",
        "is it ok to have upnp open on the router, per the results",
        "how worried should I be about the findings on my son's pc",
        "what's the verdict on the nas",
        "verdict on last night's sweep?",
        "pick out the risky services from the results",
        "spot anything bad in the scan output",
        "read through the scan results and explain the scary bits",
        "look at the results for 192.168.66.0/24 and pick the riskiest host",
        "which of the hosts from the morning scan is the weakest",
        "tell me why the webcam finding is critical",
        "what makes the telnet finding high severity",
        "why does an open smb share matter",
        "what is the risk level of the alarm system",
        "are the voip phones safe with those ports open",
        "is the label printer's exposure serious",
        "evaluate last month's results for the surgery",
        "which finding would an attacker go for first",
        "summarise the earlier results for the garage cameras",
        "double-check the severity ratings of the last scan",
        "rate the risk of the findings again",
        "which of the findings on the office network are actually urgent",
        "which of last night's findings can I ignore",
        "which of the open ports you found on the tv matter",
        "look through the results for anything involving remote desktop",
        "look through the old results for the cameras and pick out the risky ones",
        "look through last month's results and tell me what kept coming up",
        "triage the findings on 10.5.0.0/24",
        "triage what the scan of the warehouse found",
        "triage last week's results by how dangerous they are",
        "explain why port 445 on the file server is a problem",
        "explain why the smart plug was marked critical",
        "explain the medium finding on the doorbell",
        "why did the kettle get flagged",
        "why is the nvr's open port rated low",
        "how dangerous is the open telnet on the heat pump",
        "is the open upnp port on the router a real risk",
        "does port 8009 on the chromecast mean anything bad",
        "is it ok that my mum's tablet has 62078 open",
        "should i worry about ssh being open on the pi",
        "rate the findings for the guest wifi",
        "assign severities to the results from the lab scan",
        "rank the devices by risk using the last results",
        "which host came out riskiest last time",
        "what's the worst thing you found this week",
        "anything serious in the results for the salon?",
        "any criticals?",
        "what's critical",
        "findings summary please",
        "summarise the earlier scan of the clinic in plain english",
        "give me the gist of last night's results",
        "what do the results of the dmz scan tell us",
        "what do you make of the open ports on 203.0.113.8",
        "interpret the results for the smart lock",
        "analyse the last job",
        "analyse the results from the cameras",
        "analyse 127.0.0.1 ports 22,80",
        "analyze the findings on grandpa's desktop",
        "anaylse the nas results",
        "expalin the critical finding",
        "wich results are bad",
        "how risky r the ports on my xbox",
        "is the printer safe based on what you saw",
        "is the baby monitor ok, judging by its ports",
        "was anything on the kids' laptops high risk last time you looked",
        "did the sweep of the guest network show anything worrying",
        "were any of the warehouse scanners exposed in yesterday's results",
        "what changed in the findings since the last audit",
        "compare the printer's results with its previous scan",
        "has the thermostat got riskier since last month",
        "diff the last two scans of 10.20.0.0/24 and rate the new ports",
        "which findings are new compared with friday",
        "which finding should i fix first on the home network",
        "what needs attention first from the audit results",
        "prioritise the open ports found on the tills",
        "order the findings by severity",
        "which results are false positives, do you think",
        "judge the exposure of 198.51.100.60",
        "evaluate how exposed the web server is from the results",
        "assess the risk of the services found on 10.3.0.9",
        "what's the risk of leaving ftp open on the scanner",
        "is rdp on the receptionist's computer dangerous",
        "is it bad if the cctv recorder has port 554 open",
        "tell me if the findings on the smart tv are worth worrying about",
        "I'd be grateful if you could go through the findings and point out anything that needs "
        "my attention",
        "Could you possibly take a look at what the last check turned up and explain it simply?",
        "would you mind reviewing this morning's results for the shop and telling me how bad they "
        "are",
        "go back over the findings from tuesday",
        "go over the results for 172.16.0.0/24",
        "check the findings for anything high",
        "read the results and flag the risky hosts",
        "find the risky services in the last scan",
        "what severity is the smb finding",
        "score the open ports on the game server",
        "grade the findings from this morning",
        "how secure is the nas, going by the findings",
        "which cameras had dangerous ports in the results",
        "what did the scan of the doorbell find and does it matter",
        "what did you find on the scanner in accounts, anything bad",
        "what was wrong with the laptop you checked on monday",
        "explain the findings to me like i'm not technical",
        "tell me what the high findings mean",
        "why are open database ports a concern on 10.4.0.2",
        "break down the risks in the results by device",
        "is the exposure on the alarm panel serious",
        "which open port on the smart hub is the riskiest",
        "review the results of the tuesday job",
        "look through the findings for anything about cameras",
    )
    State = NoState
    handler_timeout_s = 300.0
    # A review rates the open ports it is handed (by that device's port rules): in a fleet it
    # may run on a less busy device. An analysis stays: its actions act on this device's
    # firewall and its findings go into this device's report.
    anywhere = (ReviewRequested,)

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

    async def on_vote(self, event: VoteRequested, ctx: Context[NoState]) -> None:
        """A vote on an action (executor, approval "vote"): rate the finding behind it by
        these rules, independently of whoever rated it first, and say yes only if it is at
        least the proposal's floor. A proposal it cannot read is a no."""
        try:
            proposal = decode_proposal(event.proposal)
        except msgspec.DecodeError:
            accept, reason = False, "not a proposal an analyzer can judge"
        else:
            severity = self._rules.assess(proposal.host, proposal.port).severity
            accept = SEVERITIES.index(severity) >= SEVERITIES.index(proposal.floor)
            reason = f"{proposal.host}:{proposal.port} rates {severity}"
        vote = VoteCast(vote_id=event.vote_id, voter=ctx.task_id, accept=accept, reason=reason)
        await ctx.send(event.tracker, vote)

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

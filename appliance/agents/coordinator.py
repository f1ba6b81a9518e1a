"""The coordinator: turns a posture command into one collector per target and sums them up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.agents.messages import (
    PlanReport,
    PlanRequested,
    PostureReport,
    ScanReport,
    ScanRequested,
)
from appliance.errors import BadCommand
from appliance.events import Started
from appliance.runtime import Agent, Context, NoState
from appliance.scope import Scope

if TYPE_CHECKING:
    from appliance.agents.plans import PastResults

_COMMAND = re.compile(
    r"^\s*(?:analy[sz]e|assess|audit|check)\b.*?\bposture\s+of\s+(?P<targets>.+?)"
    r"(?:\s+(?:on\s+)?ports?\s+(?P<ports>[\d,\s-]+))?\s*$",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*,\s*|\s+and\s+|\s+")
USAGE = "say: analyze network security posture of <address or network>[, ...] [ports 22,80-90]"


def parse_command(command: str, default_ports: list[int]) -> tuple[list[str], list[int]]:
    """The targets and ports a posture command names; BadCommand says what is wrong."""
    match = _COMMAND.match(command)
    if match is None:
        raise BadCommand(f"cannot understand {command!r}; {USAGE}")
    targets = [t for t in _SPLIT.split(match["targets"]) if t]
    ports = parse_ports(match["ports"]) if match["ports"] else list(default_ports)
    return list(dict.fromkeys(targets)), ports


def parse_ports(text: str) -> list[int]:
    ports: set[int] = set()
    for part in filter(None, re.split(r"[\s,]+", text)):
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise BadCommand(f"bad port {part!r}") from None
        if not 0 < first <= last < 65536:
            raise BadCommand(f"ports must be within 1-65535, got {part!r}")
        ports.update(range(first, last + 1))
    return sorted(ports)


class Coordinator(Agent):
    name = "coordinator"
    description = (
        "Plans and coordinates multi-step security work: assesses the network security "
        "posture of one or more addresses or networks end to end, splitting it into a scan "
        "per target, the analysis of what each scan finds and a report. Takes every command "
        "that chains several steps, runs on a schedule or depends on a condition."
    )
    capabilities = (
        "analyze network security posture",
        "assess the security posture of a network",
        "audit the security of a network end to end",
        "full security assessment of the network",
        "overall security review of a subnet",
        "check the whole network for risks",
        "coordinate multi-step jobs",
        "scan, analyze and report in one job",
        "scan the hosts, then analyze the results and write a report",
        "run a security check on a schedule",
        "repeat an audit every day or every week",
        "do a step only if a condition holds",
        "plan a security audit",
        "security posture of a host or a network",
        "analyze the security posture of several targets",
        "assess many hosts or a range of addresses",
        "audit every host in a subnet",
        "end-to-end security assessment: find hosts, rate ports, report",
        "run the whole pipeline of scan, analysis and report",
        "split a large audit into scans per target",
        "a recurring or nightly security check",
        "act when something is found",
        "is the whole network secure",
        "check every device for risks",
        "scan and then act on what is found",
        "watch the network and act when something changes",
        "a security checkup of all devices",
        "scan a device and rate what is found",
    )
    examples = (
        "analyze network security posture of 127.0.0.1",
        "audit the network 192.168.1.0/24 end to end",
        "scan the network then write a report",
        "scan all hosts, analyze the findings and report the critical ones",
        "run a posture check every hour",
        "schedule a daily scan of 192.168.1.0/24",
        "plan a security audit of the lab network",
        "security posture assessment for the office network 10.0.0.0/22",
        "unless the scan of 10.0.0.1 finds nothing, write a report",
        "give me the security posture of 10.3.0.0/24",
        "what is the security posture of localhost",
        "assess how secure the hosts 10.0.0.3 and 10.0.0.4 are",
        "complete security review of the DMZ 172.20.0.0/24",
        "audit every machine on the guest network",
        "posture check of the subnet 192.168.7.0/24",
        "every sunday night audit the servers",
        "each morning check 127.0.0.1 for new open ports",
        "if telnet is open anywhere on 10.0.0.0/24, record it",
        "coordinate an audit of 10.0.0.1 to 10.0.0.40",
        "audit the office network and tell me what to fix",
        "full security assessment of 10.5.0.0/24",
        "scan 127.0.0.1, rate the open ports and record the bad ones",
        "find the hosts on 192.168.2.0/24 then check their risk",
        "every night check the posture of 10.0.0.0/24",
        "if port 23 is open on 10.0.0.2, record a finding",
        "review the security of all hosts in 172.16.0.0/24 from scan to report",
        "perform a complete posture review of localhost",
        "tomorrow at 9:00 audit the lab",
        "scan the servers and write up anything risky",
        "assess how secure the network 10.8.0.0/24 is",
        "run an end to end audit of 127.0.0.1",
        "first discover hosts on 10.0.3.0/24, then scan their ports",
        "evaluate the overall security posture of my home network",
        "audit 10.0.0.5 and record what you find",
        "check the posture of 127.0.0.1, 127.0.0.2 and 127.0.1.0/30",
        "scan 10.0.0.0/24 and then analyze the results",
        "every monday, audit 192.168.0.0/24 and record the findings",
        "analyze the security posture of localhost ports 22,80",
        "assess posture of 10.20.0.0/28 on ports 8000-8002",
        "audit 127.0.0.1 and 127.0.0.2",
        "run the whole pipeline on 127.0.0.1: scan, analyze and report",
        "weekly audit of all servers",
        "check the whole network 10.0.0.0/24 for risks and report them",
        "break the audit of 192.168.0.0/16 into scans per subnet",
        "assess the network posture of 10.0.0.1 through 10.0.0.20",
        "check if ssh is open on 10.0.0.9 and if so analyze the risk",
        "at midnight scan 192.168.1.0/24 and record the results",
        "do a multi-step security check of 172.16.0.0/24",
        "is my network secure",
        "how secure is the office network",
        "how safe is my home network",
        "check the security of my whole network",
        "check my network for vulnerabilities and tell me what to fix",
        "give my network a security checkup",
        "do a security checkup of all the devices at home",
        "audit the home network",
        "audit all the iot gear",
        "audit the servers end to end",
        "run a full audit of the lab",
        "run a security assessment of the office",
        "assess the security of the iot vlan",
        "evaluate the security of every device on my lan",
        "review the security of the whole subnet",
        "complete security check of the nas, the printer and the router",
        "check the nas, the printer and the camera for risks",
        "scan all my devices and tell me which are at risk",
        "scan the network and tell me what's dangerous",
        "scan the nas then analyze what you find",
        "scan the printer and rate the results",
        "scan 10.0.0.5 and report anything critical",
        "scan the router and open a ticket for anything high",
        "scan the lab and email me the findings",
        "scan the dmz, analyze it and export the results",
        "discover hosts then scan each of them",
        "find all hosts and check their open ports for risks",
        "first scan the nas, then triage the findings",
        "first sweep the subnet, then scan every live host",
        "sweep the network, then analyze the hosts you find",
        "scan 10.0.0.0/24 followed by an analysis",
        "scan the thermostat and afterwards write a report",
        "rate the findings and then block the worst host",
        "triage the results and notify me about the critical ones",
        "analyze the findings and record the high ones",
        "scan the camera, if telnet is open quarantine it",
        "if ssh is open on the pi, tell me",
        "if anything critical shows up, page me",
        "if the printer has ftp open, open a ticket",
        "if port 3389 is open on my pc, block it",
        "if the nas has new open ports, analyze them",
        "only if the scan finds databases, notify the admin",
        "when the scan finishes, email me the report",
        "whenever a new device appears, scan it",
        "unless everything is low severity, write a report",
        "scan the synology every night",
        "scan the printer every morning",
        "check the thermostat every hour",
        "scan 10.0.0.0/24 hourly",
        "run a daily audit of the office",
        "weekly security review of the lab",
        "audit the servers every monday",
        "every 10 minutes check port 22 on 10.0.0.9",
        "scan the camera at 3am",
        "at 02:00 scan the network",
        "scan the whole network tonight",
        "scan the guest wifi tomorrow morning",
        "schedule a weekly scan of the nas",
        "set up a nightly scan of 192.168.1.0/24",
        "repeat the audit every week",
        "keep an eye on the network and notify me of new ports",
        "monitor the nas for new open ports",
        "watch the network for new devices and scan them",
        "periodically audit the iot devices",
        "scan each night at 1:30 and report critical findings",
        "every sunday scan everything and email the results",
        "monthly audit of 172.16.0.0/16",
        "run the usual audit on the office network",
        "do the full pipeline on the nas",
        "scan, analyze and report on 10.0.0.5",
        "scan, rate and record the findings for the printer",
        "find hosts, scan ports, rate findings and write a report for 10.2.0.0/24",
        "assess the security posture of the home network",
        "security posture of 10.0.0.0/24",
        "what's the security posture of the lab",
        "posture check of all my devices",
        "give me a security overview of the network",
        "give me a full picture of the risks on my network",
        "tell me everything that's wrong with my network's security",
        "how vulnerable is my network",
        "is my home network exposed to attacks",
        "check all the servers and tell me which ones are at risk",
        "audit 10.0.0.1, 10.0.0.2 and 10.0.0.3",
        "assess the posture of the nas and the router",
        "review 192.168.1.0/24 from discovery to report",
        "coordinate a scan and analysis of the lab",
        "plan an audit of all subnets",
        "split the audit of 10.0.0.0/16 into per subnet scans",
        "do a full security sweep of the office",
        "scan everything and record all findings",
        "scan the network and block anything with telnet open",
        "scan the nas then compare with last week's results",
        "check the network and fix whatever is critical",
        "run a vulnerability assessment of the lab",
        "security audit of the whole house",
        "full check of my smart home devices",
        "check everything",
        "check all my devices",
        "full scan and report",
        "scan the network and send me the findings",
        "scan the office, rate the findings, then open tickets for the high ones",
        "if the nas has telnet open, block it",
        "if anything is critical, email the admin",
        "when a device exposes rdp, quarantine it",
        "every hour check for new devices",
        "sweep the iot vlan every weekday at 7",
        "nightly audit of the office with a report",
        "how secure is the synology, the nvr and the pi",
        "assess the risk of everything on my network",
        "find every device and tell me how exposed each one is",
        "give me a security report for the whole house",
        "hey, can you give the entire flat's network a once-over and tell me what to patch",
        "end-to-end review of 10.44.0.0/24 please, discovery through to write-up",
        "nightly: 192.168.77.0/24, all ports, findings to the report",
        "I'd like a recurring weekly health check of the clinic computers with a written summary",
        "every 6 hours rescan the guest vlan and alert me on anything new",
        "assess 172.22.0.0/24 and quarantine whatever comes back critical",
        "can we do a proper pentest-style sweep of the warehouse lan and a risk report after",
        "check all the tenants' routers in the building and list who is at risk",
        "scan the smart fridge, judge the ports, and note it in the report",
        "in case the baby monitor opens telnet, cut it off",
        "should the door cam ever expose rtsp to everyone, open a ticket",
        "on the first of every month audit the lab subnet 10.60.0.0/24",
        "Is the school's computer room secure overall? Check each machine and write it up.",
        "look at every box on 10.0.5.0/24, rate them, and mail me the bad ones",
        "sweep, triage, report: 192.168.14.0/24",
        "scan+analyse+report 127.0.0.9",
        "I want the whole farm network looked at, the barn cameras included, and a list of fixes",
        "security health check for every device in the house pls",
        "make a plan to audit our three offices 10.1.0.0/24 10.2.0.0/24 10.3.0.0/24",
        "divide 10.100.0.0/16 into chunks and assess each one",
        "check 172.30.1.0/24 at midnight every day and log what turns up",
        "when the tablet reconnects, rescan it and tell me what changed",
        "Once the sweep of the studio is done, triage it and export a spreadsheet.",
        "scan the router then the nas then the printer, and summarise the risks at the end",
        "dear device, kindly carry out a comprehensive security evaluation of the surgery network",
        "full posture review of the dev boxes, then notify the on-call",
        "how vulnerable is my home setup as a whole",
        "tell me if my network is safe or not, check everything",
        "i need to know if the whole shop network is ok for the card payment audit",
        "do the full thing on 10.11.12.0/24",
        "assess every printer in the building for exposure and block the worst",
        "could you set up an automatic check every friday evening of the office and send the findings to me",  # noqa: E501
        "repeat the audit of the pi cluster every 12 hours",
        "if any host on 192.168.0.0/24 has smb open, record it and alert me",
        "whenever a new port shows up on the media server, open a ticket",
        "the whole lan: find hosts, scan them, rate them, write it down",
        "discover what's on the guest wifi and then judge whether any of it is risky",
        "scan 10.2.3.4 and 10.2.3.5, compare their risk, and report which is worse",
        "overall security grade for 172.16.8.0/24, please",
        "evaluate the security of every host between 10.0.0.1 and 10.0.0.50",
        "audit the kids' devices and lock down whatever is exposed",
        "a complete checkup of the network in my parents' house",
        "please run the usual monthly security routine on the office",
        "schedule a scan of the cameras for 3am tomorrow and analyse it when done",
        "kick off a network-wide risk assessment",
        "scan all the iot stuff and kick anything dodgy off the network",
        "how safe are all my devices at home, go through each one",
        "review the whole 192.168.100.0/24 range for weaknesses and document them",
        "before the audit next week, assess every server and produce a findings report",
        "start with discovery on 10.70.0.0/24, then port scans, then a severity ranking",
        "scan 127.0.0.4 and if port 22 is open, escalate it",
        "hourly check of the pos terminals with an alert if anything changes",
        "audit da whole network and tell me wat to fix",
        "pls do securty check of all computer in my home and say problems",
        "complet audit of 10.9.0.0/24 with report at end",
        "Run a vulnerability review of the dental practice network and give me the action items.",
        "network-wide audit, then ticket every high finding",
        "evaluate my whole smart home for security holes",
        "check every device at the office and block the ones with telnet",
        "weekly posture report for 192.168.50.0/24",
        "assess the two branch subnets and put the results side by side",
        "map the lan and assess what you find",
        "scan the cctv system, then analyze the findings, then email the landlord",
        "every weekday at 8am, assess the reception pcs",
        "if the nas stops answering on 443, notify me",
        "plan: discover, scan, analyse and report on 172.19.0.0/24",
        "could you keep an eye on the network overnight and flag anything that opens up",
        "look at everything connected and tell me whether we're secure",
        "risk assessment for all hosts in 10.5.5.0/24, with recommendations",
        "scan the printer and quarantine it if it has ftp open",
        "scan each of the vlans one by one and write up a summary per vlan",
        "run an audit on the whole network this evening and another one tomorrow morning",
        "do a security sweep of the house and tell me in simple words what's wrong",
        "analyse the security of 127.0.0.1 through 127.0.0.8",
        "I'm the new IT person, please audit everything and tell me where we stand",
        "re-audit the office every time the firewall config changes",
        "check my entire network, rate everything, fix what you can",
        "give the gaming room network a full checkup and report back",
        "assess 10.0.8.0/24 each night and only tell me about criticals",
        "complete vulnerability scan and analysis of the warehouse scanners network",
        "please would you kindly organise a full assessment of our branch office, including a "
        "report for the directors",
        "audit the guest wifi, then block anything that looks dangerous",
        "scan the kids' devices each evening at 8 and warn me about anything new",
        "find the hosts on 192.0.2.0/26 and then check what each one exposes",
        "scan 127.0.0.1, analyse the ports and export the findings to csv",
        "if any camera has rdp open, open a ticket for each one",
        "check every printer in the building and record anything risky in the report",
        "assess 10.12.12.0/24 and 10.12.13.0/24 in parallel",
        "daily at 5am: sweep the lab, rate the results, email me",
        "set up an hourly watch on the nas and alert me if a new service appears",
        "security review of grandpa's house network, end to end",
        "once the scan of the thermostat finishes, tell me if it's safe",
        "scan the smart tv, then rate it, then put the results in a ticket",
        "audit 172.30.0.0/24 then email the critical findings to the owner",
        "keep an eye on the shop's network every night and quarantine anything that opens telnet",
        "check the posture of all three floors and give me one report",
        "run a discovery, a port scan and an analysis of 10.77.0.0/24",
        "hey, could you do the full security thing on my home network and send me what's broken",
        "scan then analyse then report on 127.0.0.2",
        "at 02:30 every day rescan the dmz and compare it with the day before",
        "if anything in the audit is critical, escalate it to the security lead",
        "assess the whole house, skip the printer, and report",
        "please check the security of all of our stores and tell me which one to fix first",
        "end to end security audit of 198.51.100.128/25 with a ticket per high finding",
        "sweep the iot vlan, judge the findings, and block the critical devices",
        "for each subnet in 10.0.0.0/22, find the hosts and scan them",
        "check the office now and again every monday morning",
        "scan the new laptop and, if it looks fine, add it to the allow list",
        "full audit of the lab, and if nothing is high, just tell me it's clean",
        "assess the media server every sunday and keep the reports",
        "quick audit of the home wifi with a summary afterwards",
        "when the nightly scan finds something new, open a ticket automatically",
        "is my entire network secure? check it and report back",
        "recurring scan of the cameras every 4 hours with alerts on changes",
        "discover devices on the guest wifi, portscan them, and quarantine the risky ones",
        "audit grandma's house network and email the results to my brother",
        "find out if any machine on 192.0.2.0/24 runs telnet and if so block it",
        "scan the server room nightly and send a digest in the morning",
        "full securty check of the dentist office pls",
        "posture of 203.0.113.64/26, weekly, report by email",
        "check the vpn box and the firewall, then tell me if either is exposed",
        "run a security assessment of the tills and the back office pc together",
        "after you scan the nas, export what you found",
        "schedule an audit of the lab for saturday 9am",
        "rescan everything flagged last week and tell me if it's fixed",
        "whenever a device joins the guest network, scan it and rate it",
        "check 10.88.0.0/24 top to bottom and fix the worst thing",
        "audit, rate, report: 127.0.0.0/30",
        "evaluate the security of every machine in the studio and give me a ranked list",
        "monitor the printer's ports every day and notify me if 23 opens",
        "test the whole home network for weaknesses and write them up",
        "scan the office each hour until friday and alert on anything critical",
        "go through the whole network, find the weak spots and deal with them",
        "every first of the month, check all devices and mail the report to the landlord",
        "take stock of everything on 10.31.0.0/24 and hand me a findings report",
        "can you run a checkup of the surgery's computers on the last friday of each month",
        "bi-weekly security sweep of the lab with an email summary",
        "look after the network while I'm away: scan daily and quarantine anything dodgy",
        "work out how secure the holiday cottage's network is and what to do about it",
        "scan the pos terminals after closing time each day",
        "audit 127.0.0.1 and, only if something is high, write it up",
        "if the nvr shows an open admin port, tell the installer",
        "start a full assessment of 10.66.0.0/24 now and repeat it every sunday",
        "the whole factory floor network: check it, grade it, and tell the manager",
        "run a complete scan and risk review of 192.0.2.200 and 192.0.2.201",
        "scan the vlan for the cameras, rate each one, and ticket the bad ones",
        "is the office safe to connect the new card reader to? check everything first",
        "assess the network at 4am on weekdays",
        "I want an ongoing check of the baby monitor with an alert if anything changes",
        "survey the whole building's network and list the risks, worst first",
        "dont just scan it, analyse and report it too: 10.8.0.0/24",
        "check every host, rate them, notify me of the criticals",
    )
    State = NoState
    handler_timeout_s = 3600.0

    def __init__(
        self,
        scope: Scope,
        default_ports: list[int],
        *,
        agent_class: Callable[[str], type[Agent]] | None = None,
        past: PastResults | None = None,
    ) -> None:
        self._scope = scope
        self._ports = default_ports
        self._agent_class = agent_class
        self._past = past

    @classmethod
    def start_for(cls, command: str) -> Started:
        """A command it cannot parse is refused here, before a job is recorded (and the
        router's next candidate may take it), not as a failed job."""
        parse_command(command, [])
        return Started(objective=command)

    async def on_plan(self, event: PlanRequested, ctx: Context[NoState]) -> PlanReport:
        """Run any plan: each step a child task, with its dependencies, conditions and the
        typed results of what it waited for; the report says what ran and what was skipped."""
        from appliance.agents.plans import PlanRunner

        if self._agent_class is None or self._past is None:
            raise BadCommand("this coordinator was not given the agent types to run plans on")
        runner = PlanRunner(
            event.plan, ctx, agent_class=self._agent_class, past=self._past, scope=self._scope
        )
        return await runner.run()

    async def on_start(self, event: Started, ctx: Context[NoState]) -> PostureReport:
        targets, ports = parse_command(event.objective, self._ports)
        for target in targets:  # refuse the whole job before anything is probed
            self._scope.check_reachable(target)
        outcomes = await ctx.fan_out(
            "data_collector", [(t, ScanRequested(target=t, ports=ports)) for t in targets]
        )
        reports = [o.result_as(ScanReport) for o in outcomes if o.ok]
        return PostureReport(
            targets=targets,
            hosts_probed=sum(r.hosts_probed for r in reports),
            open=[hp for r in reports for hp in r.open],
            findings=[f for r in reports for f in r.findings],
            failed_targets=[t for t, o in zip(targets, outcomes, strict=True) if not o.ok],
            report_key=f"report/{ctx.job.job_id}",
        )

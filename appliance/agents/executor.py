"""The executor: acts on findings and on what the admin asks. It records findings, with
their advice, in the job's report, and takes actions (appliance/actions): a notice, and
blocks, quarantines and allow-list entries on the appliance's own firewall, the destructive
ones only after an admin approved them. It never changes anything on the target itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from appliance.actions.service import Actions
from appliance.actions.store import ActionRecord
from appliance.agents.acting import actions_for, addresses_in
from appliance.agents.messages import (
    ActionRequested,
    ActionTaken,
    ActRequested,
    Finding,
    Proposal,
    RecordReport,
    RecordRequested,
    at_least,
    encode_proposal,
    merged_facts,
)
from appliance.errors import BadCommand
from appliance.events import ConsensusFailed, ConsensusReached, Event
from appliance.runtime import Agent, Context, NoState, StepInput, StepParams
from appliance.scope import Scope
from appliance.supervisor.consensus import ConsensusTracker, VoteOpened


class ReportEntry(msgspec.Struct, frozen=True):
    finding: Finding
    recorded_by: str
    recorded_at: float


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who approves this executor's destructive actions (settings.approval*)."""

    by: Literal["admin", "vote"] = "admin"
    voters: int = 3
    quorum: int = 2
    deadline_s: float = 60.0


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
        "notify someone about a finding",
        "send an alert or an email about the findings",
        "export the findings to a file",
        "block a host or a port",
        "quarantine or isolate a device",
        "open a ticket for a finding",
        "add a host or a port to the allow list",
        "revoke an exception or an allow list entry",
        "mark a finding as accepted, fixed or a false positive",
        "escalate a finding to a person",
        "remediate a finding",
        "forward the findings to another system",
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
        "write down the advice for each finding",
        "act on the finding about redis on 127.0.0.1",
        "record the smb finding for 10.0.0.30",
        "record every medium or worse finding",
        "record the findings and their recommended fixes",
        "write the report entry for mysql on 10.0.0.12",
        "report the exposed ftp server on 192.168.1.254",
        "create report entries for the high findings",
        "record the action for port 445",
        "log each actionable finding",
        "put the advice for closing port 23 on record",
        "add an entry to the report for 10.0.0.66",
        "record the findings of this job",
        "write the findings to the report with their severity",
        "act on the flagged finding on 192.168.1.30",
        "add the rdp finding to the report",
        "record a finding for the web server 10.0.0.80",
        "document the advice for the exposed database",
        "notify the admin about the telnet finding",
        "notify me of every high severity finding",
        "push a notification to my phone for high findings",
        "alert the security team about the exposed database",
        "alert me about the open rdp on my pc",
        "send an email about the findings to ops@example.com",
        "email me the critical findings",
        "mail the report to the it team",
        "message the owner of the nas about the exposed ftp",
        "tell the admin that the printer has telnet open",
        "inform the team about the findings on 10.0.0.5",
        "ping the on-call about the redis exposure",
        "page someone about the critical finding",
        "text me if the findings are critical",
        "export the findings",
        "export the findings to a spreadsheet",
        "export the results of the last job as json",
        "export the report as pdf",
        "download the report",
        "save the findings as a csv file",
        "dump the findings to a file",
        "send the findings to the siem",
        "forward the critical findings to the soc",
        "push the results to the dashboard",
        "upload the findings to the ticketing system",
        "block 10.0.0.66 on the firewall",
        "block the camera",
        "block traffic to port 23 on the printer",
        "block the device with the exposed smb share",
        "firewall off the thermostat",
        "blacklist 192.168.1.99",
        "deny access to the nas from the internet",
        "cut the xbox off the network",
        "quarantine 10.0.0.44",
        "quarantine the infected pc",
        "quarantine the devices with critical findings",
        "isolate the compromised host",
        "isolate the nas until it is patched",
        "move the fridge to the quarantine vlan",
        "disconnect the risky device",
        "open a ticket for the telnet finding",
        "open a ticket about the exposed vnc on the mac mini",
        "create a ticket for the open smb share on 10.0.0.30",
        "file a ticket for the printer finding",
        "raise a ticket for each high finding",
        "log a ticket for the vnc exposure",
        "create an incident for the database exposure",
        "raise an alert for the open telnet on the camera",
        "escalate the critical findings",
        "escalate the rdp exposure to the admin",
        "allowlist the build server",
        "add the printer to the allow list",
        "allow list port 443 on the web server",
        "whitelist the nas",
        "add an exception for port 8080 on 127.0.0.1",
        "mark port 22 on the pi as allowed",
        "accept the risk of ssh on the jump host",
        "mark the finding on the router as a false positive",
        "mark the smb finding as fixed",
        "close the finding about ftp",
        "dismiss the low severity findings",
        "snooze the finding for the thermostat",
        "mute alerts for the printer",
        "suppress the telnet finding on the camera",
        "ignore port 53 on the router from now on",
        "revoke the exception for the nas",
        "revoke the allow list entry for 10.0.0.5",
        "remove the printer from the allow list",
        "un-whitelist the xbox",
        "remove the exception for port 8080",
        "withdraw the accepted risk for ssh on 10.0.0.9",
        "revoke access for the quarantined host",
        "unblock 10.0.0.66",
        "release the camera from quarantine",
        "record the findings",
        "record the telnet finding",
        "record the open ports of the nas in the report",
        "write the report",
        "draft a findings report for the office",
        "write up the results of the last scan",
        "write the findings to the job report",
        "generate the findings report",
        "generate a report for the printer",
        "create a report of the critical findings",
        "make a report of what was found",
        "produce a pdf report of the findings",
        "put together a report on the nas findings",
        "put the findings in the report",
        "add the rdp finding on my pc to the report",
        "add a note about the exposed ftp to the report",
        "note the vnc finding",
        "log the findings for 10.0.0.5",
        "log the smb exposure",
        "document the finding on the thermostat",
        "document the remediation for the open telnet",
        "write down how to fix the redis exposure",
        "attach the remediation advice to each finding",
        "record the fix for the exposed mysql",
        "save the results to the report",
        "save the findings of this morning's scan",
        "store the results of the scan in the report",
        "keep the findings on file",
        "archive the old findings",
        "archive the report of last week",
        "act on the findings",
        "act on the critical findings from the last scan",
        "take action on the findings for the nas",
        "take care of the high findings",
        "deal with the flagged findings",
        "handle the findings on the router",
        "fix the findings",
        "remediate the telnet exposure on the camera",
        "apply the recommended fixes",
        "carry out the remediation for 10.0.0.8",
        "close port 23 on the printer",
        "shut down the exposed ftp service",
        "disable telnet on the camera",
        "respond to the findings",
        "follow up on the critical findings",
        "nofity the admin about the findings",
        "exprot the findings to csv",
        "blcok the nas",
        "open a tikcet for the exposed ssh",
        "qurantine the thermostat",
        "record teh findings",
        "write teh report for the nas",
        "notify the team",
        "send the findings over to ops",
        "alert me",
        "email the report to me",
        "send a slack message about the critical findings",
        "warn the owner of the camera",
        "let me know about the high severity ones",
        "export everything to csv",
        "export the critical findings for the auditors",
        "save the results as a spreadsheet",
        "block it",
        "block port 445 on the router",
        "block the ip that has rdp exposed",
        "drop traffic from 10.0.0.99",
        "put the hue bridge in quarantine",
        "quarantine anything with telnet open",
        "isolate 10.0.0.17",
        "open an incident for the rdp finding",
        "create a jira ticket for the ssh exposure",
        "file a bug for the exposed database",
        "raise a ticket with the network team",
        "add the nas to the exceptions list",
        "allow port 22 on the pi",
        "put the printer on the allow list",
        "treat the smb share as accepted",
        "revoke the printer's exception",
        "take the nas off the allow list",
        "cancel the exception for 10.0.0.5",
        "revoke the waiver for telnet",
        "mark it fixed",
        "mark the finding as resolved",
        "close the ticket for the camera",
        "resolve the rdp finding",
        "record it",
        "log it in the report",
        "write it up",
        "report the findings",
        "report the telnet finding to the admin",
        "save the report",
        "record the result of the last job",
        "email the landlord about the exposed cameras",
        "ping me on slack about the high findings",
        "send a notification to the on-call about the rdp finding",
        "tell my husband the baby monitor has telnet open",
        "let the it guy know about the open vnc",
        "warn the office manager about the smb exposure",
        "alert",
        "notify",
        "block that one",
        "quarantine it",
        "export",
        "block 172.25.3.9",
        "block port 445 on 10.0.0.30",
        "firewall off the fridge",
        "deny the smart tv access to the lan",
        "ban the unknown device at 10.0.0.99",
        "put the baby monitor in quarantine",
        "isolate 192.168.66.12 until we fix it",
        "kick the robot vacuum off the network",
        "move the doorbell to quarantine",
        "release the doorbell from isolation",
        "lift the block on 10.0.0.66",
        "take the ps5 out of quarantine",
        "open a ticket for the telnet on the baby monitor",
        "raise a ticket about port 3389 on the reception pc",
        "file a ticket for each critical finding",
        "create an incident for the exposed database on 10.4.4.4",
        "log an issue in the tracker for the nas ftp finding",
        "put the vnc finding into servicenow",
        "add 10.0.0.12 to the allow list",
        "allow-list port 8123 on home assistant",
        "whitelist the plex server",
        "trust the printer's port 9100",
        "make an exception for ssh on the pi",
        "revoke the whitelist entry for the plex server",
        "strike the synology from the allowed hosts",
        "delete the exception for port 22 on 10.2.3.4",
        "withdraw the exemption for the old printer",
        "undo the last block",
        "undo that quarantine",
        "roll back the allow list change",
        "export the results to excel",
        "export the critical findings as json",
        "give me the findings in a csv file",
        "download last night's findings",
        "dump findings to disk",
        "push the findings to our syslog server",
        "send the report to the siem at 10.0.0.200",
        "write a report on the findings",
        "write up the baby monitor finding with the fix",
        "add the fridge's open port to the report",
        "log the rdp exposure",
        "note down that the tv has upnp open",
        "record the recommended fix for the doorbell",
        "make a report entry for the nvr",
        "put the results in the job report",
        "document the fixes for the warehouse findings",
        "mark the upnp finding as accepted",
        "flag the smb finding as a false positive",
        "close the finding on the nas as fixed",
        "acknowledge the critical finding on the router",
        "snooze the low findings",
        "ignore the finding about port 80 on the printer from now on",
        "bump the webcam issue up to the security lead",
        "hand the critical findings over to the contractor",
        "handle the findings from the scan",
        "take care of the flagged findings",
        "fix the telnet finding on the baby monitor",
        "shut port 23 on the doorbell",
        "act on it",
        "go ahead and block the risky ones",
        "please block the device that has rdp open, thank you",
        "would you kindly email me a copy of the findings",
        "I'd like the findings emailed to the practice manager, if that's possible",
        "could you put the smart tv on the blocked list",
        "emial me the report",
        "quarentine the fridge",
        "blcok 10.0.0.50",
        "exprot findings",
        "tiket for the ssh finding",
        "alow list the printer",
        "notfy the admin",
        "send an sms about the critical finding",
        "text the on-call about the exposed camera",
        "post the findings to the teams channel",
        "send the findings to the ticketing system",
        "report the open telnet on the fridge to the admin",
        "inform the owner of the shop about the findings",
        "block all traffic from the kids' tablet for now",
        "cut off the game server until the vnc issue is fixed",
        "isolate anything flagged critical",
        "quarantine every device the last scan flagged",
        "revoke the temporary access we gave 10.0.0.77",
        "save the report for later please",
        "attach the findings report to an email for the boss",
        "notify the office manager about the exposed rdp",
        "notify me by email about every critical finding",
        "let the caretaker know the boiler controller has telnet open",
        "tell the it company about the smb finding on the server",
        "message my brother that his xbox has an open port",
        "send a push notification about the high findings",
        "email the results of the audit to finance",
        "export the findings to json",
        "export the friday results as a spreadsheet",
        "export it",
        "save the results as a pdf for the insurer",
        "download the findings as csv",
        "block 198.51.100.66",
        "block the kettle",
        "block it now",
        "block everything flagged critical",
        "put a firewall block on port 23 of the dvr",
        "stop the smart plug from reaching the internet",
        "quarantine the webcam in the hallway",
        "quarantine 192.0.2.45",
        "move the smart speaker into quarantine until the update is installed",
        "isolate the infected-looking laptop",
        "isolate the hallway speaker from the rest of the lan",
        "cut the dvr off",
        "take the kettle off the network",
        "open a ticket about the vnc on 10.0.3.3",
        "raise a ticket for the ftp finding",
        "file a support ticket for every high finding",
        "create a jira issue for the exposed mqtt broker",
        "log a ticket for the nas",
        "add 203.0.113.12 to the allowlist",
        "allowlist the media server's port 32400",
        "whitelist grandpa's computer",
        "put the heat pump on the trusted list",
        "trust ssh on the backup server",
        "the nas shouldn't be on the allow list any more, revoke it",
        "remove the printer from the whitelist",
        "take the exception for the camera away",
        "cancel the allow rule for 10.0.7.7",
        "unblock 198.51.100.66",
        "unblock the kettle",
        "lift the quarantine on the webcam",
        "restore the doorbell's network access",
        "undo the block on grandpa's computer",
        "unquarantine 192.0.2.45",
        "reconnect the dvr",
        "record the finding about the heat pump in the report",
        "add the smb exposure on 10.6.0.1 to the job report",
        "write up the telnet finding with how to fix it",
        "put the vnc finding in the report with advice",
        "write up the exposed ftp on the scanner",
        "mark the rdp finding as resolved",
        "the dvr finding was a false positive, mark it so",
        "accept the risk on the nas's port 5000",
        "close out the finding on the webcam",
        "escalate the router finding to the managed service desk",
        "hand the high findings to the managed service provider",
        "forward the critical findings to the security team",
        "page the admin about the open mqtt port",
        "sms me if you find anything critical next time",
        "text the owner about the exposed camera",
        "drop the results into the discord server",
        "notfiy the owner",
        "exprot the results",
        "quarnatine the kettle",
        "unblcok the tv",
        "isolat the webcam",
        "opne a ticket for the rdp",
        "whitelst the nas",
        "please could you send the shop owner an email about the problems you found, that would "
        "be lovely",
        "would you mind blocking the smart tv for me, it's been acting strangely",
        "I'd really appreciate it if you could open a ticket for the exposed camera",
        "if it's not too much trouble, please isolate my son's old laptop",
        "remediate the telnet finding on the doorbell",
        "fix the critical findings",
        "shut down the open ftp on 10.0.9.9",
        "deal with the flagged devices",
        "go ahead and quarantine the ones you flagged yesterday",
        "block the ip address that showed up last night",
        "quarantine that one",
        "ship the findings off to the siem",
        "notify them",
        "block that",
        "quarantine everything high",
        "block the rdp port on 10.0.0.30 and tell me when it's done",
    )
    State = NoState

    def __init__(
        self,
        scope: Scope,
        actions: Actions | None = None,
        approval: ApprovalPolicy = ApprovalPolicy(),
    ) -> None:
        self._scope = scope
        self._actions = actions
        self._approval = approval

    @classmethod
    def start_for(cls, command: str) -> Event | None:
        """An action a sentence names whole ("block 127.0.0.3", "whitelist 127.0.0.9");
        a report entry needs a finding, which only an analysis produces, so for that say so
        rather than start an idle instance."""
        targets = [a.removesuffix("/32").removesuffix("/128") for a in addresses_in(command)]
        actions = actions_for(command, targets, [])
        if actions is None:
            raise _alone(command)
        return ActRequested(actions=actions, note=command)

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> RecordRequested | ActRequested:
        """A plan's step: an action its words name (on its targets, or on the hosts of the
        findings before it), or else a record of those findings, at or above the step's
        severity."""
        facts = merged_facts(inputs)
        findings = at_least(facts.findings, params.severity)
        seen = [hp.host for hp in facts.open if hp.open_ports]
        actions = actions_for(step_text, params.targets, findings, seen)
        if actions is not None:
            return ActRequested(actions=actions, note=step_text, findings=findings)
        if not inputs:
            raise _alone(step_text)
        return RecordRequested(findings=findings, note=step_text, recipients=params.recipients)

    async def on_act(self, event: ActRequested, ctx: Context[NoState]) -> RecordReport:
        """File each action (appliance/actions): applied at once, or pending an approval when
        it is destructive: an admin's, or (approval = "vote") a vote this task runs among
        analyzers on the finding behind it. Every host is checked against the scope first."""
        if self._actions is None:
            raise BadCommand("this appliance was started without its actions (no firewall)")
        for action in event.actions:  # all in scope, or nothing is filed
            if action.host is not None:
                self._scope.check(action.host)
        taken = []
        for action in event.actions:
            behind = next((f for f in event.findings if f.host == action.host), None)
            by_vote = self._approval.by == "vote" and action.destructive and behind is not None
            record = await asyncio.to_thread(
                self._actions.request,
                action,
                job_id=ctx.job.job_id,
                task_id=ctx.task_id,
                agent_type=self.name,
                approval="vote" if by_vote else "admin",
            )
            if record.state == "pending" and record.approval == "vote" and behind is not None:
                record = await self._vote(record, behind, ctx)
            taken.append(
                ActionTaken(
                    host=action.host or "",
                    port=0,
                    action=record.what,
                    action_id=record.id,
                    state=record.state,
                )
            )
        return RecordReport(findings=[], actions=taken, note=event.note)

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

    async def _vote(
        self, record: ActionRecord, finding: Finding, ctx: Context[NoState]
    ) -> ActionRecord:
        """Ask fresh analyzer instances, each rating the finding by its own rules, whether it
        is at least as severe as the analysis said; a quorum of yes approves the action, and
        anything else (a no, a quorum out of reach, the deadline) rejects it, recorded."""
        assert self._actions is not None
        policy = self._approval
        proposal = Proposal(
            action=record.what, host=finding.host, port=finding.port, floor=finding.severity
        )
        voters = [
            ctx.spawn("analyzer", f"rate {finding.host}:{finding.port} for: {record.what}")
            for _ in range(policy.voters)
        ]
        tracker = ctx.spawn(ConsensusTracker.name, f"vote: {record.what}")
        vote_id = f"vote-{record.id}"
        opened = VoteOpened(
            vote_id=vote_id,
            proposal=encode_proposal(proposal).decode(),
            participants=voters,
            quorum=policy.quorum,
            deadline_s=policy.deadline_s,
        )
        outcome = await ctx.request(tracker, opened, timeout=policy.deadline_s + 30)
        yes = sum(outcome.votes.values())
        tally = f"vote {vote_id}: {yes} of {policy.voters} analyzers, quorum {policy.quorum}"
        if isinstance(outcome, ConsensusReached) and outcome.accepted:
            return await asyncio.to_thread(self._actions.approve, record.id, by=tally)
        why = outcome.reason if isinstance(outcome, ConsensusFailed) else "the vote said no"
        return await asyncio.to_thread(self._actions.reject, record.id, by=tally, why=why)


def _alone(command: str) -> BadCommand:
    return BadCommand(
        f"the executor records findings that an analysis produced and can't take "
        f"{command!r} on its own; ask for an analysis (analyze <address>) or a posture "
        "analysis, whose findings reach the report"
    )

"""The executor's actions, read from what a person said: the verb picks the kind ("block",
"quarantine", "add to the allow list", "revoke", "notify"), the hosts come from the step's
targets (checked against the scope by the planner) or, failing those, from the findings the
steps before it passed on. Networks are refused: an action acts on one host at a time, so
"block 10.0.0.0/24" names what it would cut off instead of doing it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from appliance.actions.model import (
    AllowList,
    AnyAction,
    Block,
    Notify,
    Quarantine,
    Revoke,
    Ticket,
)
from appliance.agents.messages import Finding
from appliance.errors import BadCommand

# Checked in this order: "revoke its allow-list entry" is a revoke, not an allow-list.
_VERBS: list[tuple[str, re.Pattern[str]]] = [
    (
        "revoke",
        re.compile(
            r"\b(?:revoke|rescind|withdraw|take\s+back|un-?whitelist|un-?allow-?list"
            r"|remove\b.*\bfrom\s+the\s+(?:allow|white)\s*-?\s*list)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "allow",
        re.compile(
            r"\b(?:allow-?list|whitelist|white-list|exempt|(?:add|put)\b.*\b(?:allow|white)"
            r"\s*-?\s*list|trust)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "ticket",
        re.compile(
            r"\b(?:open|raise|file|create|log|cut|submit)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:ticket|"
            r"issue|case|incident)\b|\bticket\b",
            re.IGNORECASE,
        ),
    ),
    ("undo", re.compile(r"\b(?:unblock|un-?quarantine|undo|release)\b", re.IGNORECASE)),
    ("quarantine", re.compile(r"\b(?:quarantine|isolate|cut\s+off|disconnect)\b", re.I)),
    ("block", re.compile(r"\b(?:block|ban|deny|drop\s+traffic|firewall\s+off)\b", re.I)),
    (
        "notify",
        re.compile(
            r"\b(?:notify|alert|warn|tell|inform|let\b.*\bknow|send\s+(?:an?\s+)?(?:alert|"
            r"notification|message))\b",
            re.IGNORECASE,
        ),
    ),
]
_ADDRESS = re.compile(r"(?<![\w.:/-])[0-9a-f.:]+(?:/\d{1,3})?(?![\w.:/-])", re.IGNORECASE)


def verb_of(text: str) -> str | None:
    """The kind of action ``text`` asks for, or None (a report entry, say)."""
    for name, pattern in _VERBS:
        if pattern.search(text):
            return name
    return None


def addresses_in(text: str) -> list[str]:
    """The IP addresses and networks written in ``text`` (a direct command: no planner)."""
    found = []
    for token in _ADDRESS.findall(text):
        try:
            found.append(str(ipaddress.ip_network(token, strict=False)))
        except ValueError:
            continue
    return found


def actions_for(
    text: str, targets: Sequence[str], findings: Sequence[Finding], seen: Sequence[str] = ()
) -> list[AnyAction] | None:
    """The actions ``text`` asks for on ``targets`` (or, with none, on the hosts of
    ``findings``, or else on the hosts ``seen`` by the steps before: "if telnet is open on
    127.0.0.3, quarantine it"); None when it asks for none. BadCommand when it asks for one
    it cannot take: on a network, on nobody, or an undo (which names an action, not a host)."""
    verb = verb_of(text)
    if verb is None:
        return None
    if verb == "undo":
        raise BadCommand(
            f"{text!r} takes back an earlier action: find it with 'qey actions' (or the panel's "
            "Approvals page) and undo it there ('qey undo ACTION')"
        )
    reason = " ".join(text.split())
    if verb == "notify":
        message = _summary(findings) if findings else reason
        return [Notify(message=message, reason=reason)]
    if verb == "ticket":
        if not findings:
            return [Ticket(title=reason, body=reason, reason=reason)]
        return [
            Ticket(
                title=f"{f.severity}: {f.title} on {f.host}:{f.port}",
                body=f"{f.service} on {f.host}:{f.port} rated {f.severity}. {f.advice}",
                about=f.host,
                reason=reason,
            )
            for f in findings
        ]
    hosts = (
        [_one_host(t, text) for t in targets]
        or list(dict.fromkeys(f.host for f in findings))
        or list(dict.fromkeys(seen))
    )
    if not hosts:
        raise BadCommand(
            f"{text!r} names nobody to {verb}: give an address, or ask for it after a scan "
            "and analysis whose findings name the hosts"
        )
    kinds: dict[str, type[Block | Quarantine | AllowList | Revoke]] = {
        "block": Block,
        "quarantine": Quarantine,
        "allow": AllowList,
        "revoke": Revoke,
    }
    why = {f.host: f"{f.severity}: {f.title}" for f in findings}
    return [kinds[verb](address=h, reason=why.get(h, reason)) for h in hosts]


def _one_host(target: str, text: str) -> str:
    net = ipaddress.ip_network(target, strict=False)
    if net.num_addresses != 1:
        raise BadCommand(
            f"{text!r}: {target} is a network of {net.num_addresses} addresses, and an action "
            "acts on one host at a time: name the hosts (or scan and analyse the network, then "
            "act on what its findings name)"
        )
    return str(net.network_address)


def _summary(findings: Sequence[Finding]) -> str:
    worst = findings[0]
    more = f" and {len(findings) - 1} more" if len(findings) > 1 else ""
    return f"{worst.severity}: {worst.title} on {worst.host}:{worst.port}{more}"

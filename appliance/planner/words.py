"""The parameters in a clause, found by grammar: targets, ports, severities, recipients, the
earlier work a command refers to, and the condition of an ``if``.

Each finder returns what it found and the character spans it used, so the planner can say
which words it did not use. Nothing here knows any agent type: these are the words people
use for things the appliance works on, not for who works on them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from appliance.agents.coordinator import parse_ports
from appliance.errors import BadCommand
from appliance.planner.plan import AnyCondition, AnyFinding, FindingAtLeast, PortOpen
from appliance.runtime import SEVERITIES, Severity, TimeWindow

Span = tuple[int, int]

# Well-known service names (IANA's registered ports) for "if telnet is open", "sweep for ssh".
SERVICE_PORTS: dict[str, list[int]] = {
    "ftp": [21],
    "ssh": [22],
    "telnet": [23],
    "smtp": [25],
    "dns": [53],
    "http": [80],
    "pop3": [110],
    "imap": [143],
    "snmp": [161],
    "ldap": [389],
    "https": [443],
    "smb": [139, 445],
    "mssql": [1433],
    "mysql": [3306],
    "rdp": [3389],
    "postgres": [5432],
    "postgresql": [5432],
    "vnc": [5900],
    "redis": [6379],
    "elasticsearch": [9200],
    "mongodb": [27017],
    "mongo": [27017],
}

_V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_TARGET = re.compile(
    rf"(?<![\w.:/@-])(?:"
    rf"(?P<range>{_V4}\s*-\s*(?:{_V4}|\d{{1,3}}))"
    rf"|(?P<v4>{_V4}(?:/\d{{1,2}})?)(?::(?P<v4port>\d{{1,5}}))?"
    rf"|(?P<v6>[0-9a-f]{{0,4}}(?::[0-9a-f]{{0,4}}){{2,7}}(?:/\d{{1,3}})?)"
    rf"|(?P<localhost>localhost)"
    rf"|(?P<name>[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:local|lan|home|internal|corp|com|net|org|io))"
    rf")(?![\w-]|\.\w)",
    re.IGNORECASE,
)
_PORTS = re.compile(
    r"\b(?:on\s+|at\s+)?(?:tcp\s+)?ports?\s+"
    r"(?P<ports>\d+(?![.\d])(?:\s*(?:-|,|and|or|to|through)\s*\d+(?![.\d]))*)",
    re.IGNORECASE,
)
_SERVICE_FOR = re.compile(
    r"\bfor\s+(?:open\s+)?(?P<svc>" + "|".join(SERVICE_PORTS) + r")\b", re.IGNORECASE
)
_SERVICE = re.compile(r"\b(?P<svc>" + "|".join(SERVICE_PORTS) + r")\b", re.IGNORECASE)
_SEVERITY = re.compile(
    r"\b(?:(?:only|just)\s+)?(?:(?:at\s+least|anything|everything|all)\s+)?(?:the\s+)?"
    r"(?P<sev>critical|high|medium|low|info)"
    r"(?:\s*(?:-|\s)\s*(?:severity|risk|priority|level))?"
    r"(?:\s+(?:or|and)\s+(?:above|higher|worse|more|up|critical))?"
    r"(?:\s+(?:ones|findings?|issues?|items?|risks?|vulnerabilit(?:y|ies)|problems?))?"
    r"(?:\s+(?:only|ones))?\b",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_RECIPIENT = re.compile(
    r"\b(?:tell|notify|email|e-mail|mail|alert|warn|ping|message|text|inform|send|page|let)"
    r"\s+(?P<who>me|us|the\s+(?:admins?|owner|team|on-?call|operator))\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.:/-])\d+(?![\w.:/-])")


@dataclass
class Found:
    """What the finders took from one clause, and where."""

    targets: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    severity: Severity | None = None
    recipients: list[str] = field(default_factory=list)
    window: TimeWindow | None = None
    latest: bool = False
    spans: list[Span] = field(default_factory=list)
    target_spans: list[Span] = field(default_factory=list)
    reference_span: Span | None = None  # the words that named earlier work


class DeviceNames:
    """The admin's names for devices and networks (config.toml's ``[names]``: "the nas",
    "garage camera", "office"), found in a clause as words, with or without "the", "my" or
    "our". Names are never looked up anywhere: nothing leaves the device unasked."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.addresses = {" ".join(n.lower().split()): a for n, a in names.items()}
        words = sorted(self.addresses, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, n.split())) for n in words)
        self._pattern = (
            re.compile(
                rf"(?<![\w.@/-])(?:(?:the|my|our)\s+)?(?P<name>{alternatives})(?:'s)?(?![\w-])",
                re.IGNORECASE,
            )
            if words
            else None
        )

    def find(self, text: str, found: Found) -> None:
        if self._pattern is None:
            return
        for m in self._pattern.finditer(text):
            found.spans.append(m.span())
            found.target_spans.append(m.span())
            found.targets.append(self.addresses[" ".join(m["name"].lower().split())])

    def host(self, name: str) -> str:
        """The address of a host name written out ("nas.lan", "printer.local"), by its full
        name or its first label; BadCommand when the admin named no such device."""
        lowered = name.lower()
        for key in (lowered, lowered.split(".")[0]):
            if key in self.addresses:
                return self.addresses[key]
        raise BadCommand(
            f"{name!r} is a host name, and the appliance does not look names up (nothing "
            "leaves the device unasked): use its address, or give it a name in config.toml's "
            '[names] table (nas = "192.168.1.10")'
        )


NO_NAMES = DeviceNames({})


def find_targets(text: str, found: Found, names: DeviceNames = NO_NAMES) -> None:
    """Addresses, networks, ranges and the admin's device names, each validated by
    ``ipaddress``; a range becomes the networks that cover it exactly. BadCommand names one
    that is malformed, or a host name nobody named."""
    names.find(text, found)
    for m in _TARGET.finditer(text):
        if any(a <= m.start() < b for a, b in found.target_spans):
            continue  # inside a device name already found
        found.spans.append(m.span())
        found.target_spans.append(m.span())
        if m["range"]:
            found.targets.extend(_range(m["range"]))
        elif m["v4"]:
            found.targets.append(_address(m["v4"]))
            if m["v4port"]:
                found.ports.extend(parse_ports(m["v4port"]))
        elif m["v6"]:
            if m["v6"].count(":") < 2 or not any(c.isdigit() or c in "abcdef" for c in m["v6"]):
                found.spans.pop()
                found.target_spans.pop()
                continue
            found.targets.append(_address(m["v6"]))
        elif m["localhost"]:
            found.targets.append("localhost")
        else:
            found.targets.append(names.host(m["name"]))
    found.targets = list(dict.fromkeys(found.targets))


def _address(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise BadCommand(f"{text!r} is not an IP address or network: {err}") from None
    return text if "/" in text or net.num_addresses != 1 else str(net.network_address)


def _range(text: str) -> list[str]:
    first_text, last_text = (p.strip() for p in text.split("-"))
    try:
        first = ipaddress.IPv4Address(first_text)
        if "." not in last_text:
            last_text = first_text.rsplit(".", 1)[0] + "." + last_text
        last = ipaddress.IPv4Address(last_text)
    except ValueError as err:
        raise BadCommand(f"{text!r} is not an address range: {err}") from None
    if last < first:
        raise BadCommand(f"{text!r} is not an address range: it ends before it starts")
    return [str(n) for n in ipaddress.summarize_address_range(first, last)]


def find_ports(text: str, found: Found) -> None:
    """'port 22', 'ports 22, 80-90 and 443', 'for ssh'; BadCommand for one out of range."""
    for m in _PORTS.finditer(text):
        found.spans.append(m.span())
        spec = re.sub(r"\s*(?:and|or|,)\s*", ",", m["ports"])
        spec = re.sub(r"\s*(?:to|through)\s*", "-", spec)
        found.ports.extend(parse_ports(spec))
    if not found.ports:
        for m in _SERVICE_FOR.finditer(text):
            found.spans.append(m.span())
            found.ports.extend(SERVICE_PORTS[m["svc"].lower()])
    found.ports = sorted(set(found.ports))


def find_severity(text: str, found: Found) -> None:
    """The lowest severity a clause limits itself to ("only critical ones", "high or
    above")."""
    for m in _SEVERITY.finditer(text):
        if m.group(0).strip().lower() == m["sev"].lower() and not _bare_severity_ok(text, m):
            continue
        found.spans.append(m.span())
        sev: Severity = SEVERITIES[SEVERITIES.index(m["sev"].lower())]
        if found.severity is None or SEVERITIES.index(sev) < SEVERITIES.index(found.severity):
            found.severity = sev


def _bare_severity_ok(text: str, m: re.Match[str]) -> bool:
    """A bare "high" or "low" is a severity only before a noun of findings (checked by the
    regex's tail) or as "critical": "a high port" is not a filter, "critical" always is."""
    return m["sev"].lower() == "critical"


def find_recipients(text: str, found: Found) -> None:
    for m in _EMAIL.finditer(text):
        found.spans.append(m.span())
        found.recipients.append(m.group(0))
    for m in _RECIPIENT.finditer(text):
        found.spans.append(m.span("who"))
        who = " ".join(m["who"].lower().split())
        found.recipients.append("me" if who == "us" else who)
    found.recipients = list(dict.fromkeys(found.recipients))


# -- references to earlier work --------------------------------------------------------------

_DAY = timedelta(days=1)


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _window(phrase: str, start: datetime, end: datetime) -> TimeWindow:
    return TimeWindow(phrase=phrase, start=start.timestamp(), end=end.timestamp())


def _windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    today = _midnight(now)
    week = today - timedelta(days=today.weekday())
    return {
        "this morning": (today, today.replace(hour=12)),
        "this afternoon": (today.replace(hour=12), today.replace(hour=18)),
        "this evening": (today.replace(hour=18), today + _DAY),
        "tonight": (today.replace(hour=18), today + _DAY),
        "today": (today, now + timedelta(seconds=1)),
        "yesterday": (today - _DAY, today),
        "last night": (today - _DAY + timedelta(hours=18), today + timedelta(hours=6)),
        "this week": (week, now + timedelta(seconds=1)),
        "last week": (week - 7 * _DAY, week),
        "last month": (
            (today.replace(day=1) - _DAY).replace(day=1),
            today.replace(day=1),
        ),
        "this month": (today.replace(day=1), now + timedelta(seconds=1)),
    }


_WINDOW = re.compile(
    r"\b(?:from\s+|of\s+|in\s+|during\s+|since\s+|(?:compared?|comparing)\s+(?:it\s+|them\s+)?"
    r"(?:with|to|against)\s+)?"
    r"(?:(?P<w1>this\s+morning|this\s+afternoon|this\s+evening|tonight|today|yesterday"
    r"|last\s+night|this\s+week|last\s+week|last\s+month|this\s+month)(?:'s)?"
    r"|earlier\s+(?P<w2>today))\b",
    re.IGNORECASE,
)
_COMPARE = re.compile(r"\b(?:compared?|comparing)\s+(?:it\s+|them\s+)?(?:with|to|against)\b")
_LATEST = re.compile(
    r"\b(?:the\s+|my\s+|our\s+)?(?:last|latest|previous|most\s+recent|prior|earlier)\s+"
    r"(?:job|scan|run|results?|reports?|analys[ie]s|findings|audit|check|sweep|assessment)s?\b",
    re.IGNORECASE,
)


def find_reference(text: str, now: datetime, found: Found) -> None:
    """Earlier work a clause refers to: a span of time ("this morning's scan", "compared
    with last week") or the latest job ("the last scan")."""
    for m in _WINDOW.finditer(text):
        phrase = " ".join((m["w1"] or m["w2"]).lower().split())
        start, end = _windows(now)[phrase]
        found.spans.append(m.span())
        found.reference_span = m.span("w1") if m["w1"] else m.span()
        found.window = _window(phrase, start, end)
        return
    m2 = _LATEST.search(text)
    if m2 is not None:
        found.spans.append(m2.span())
        found.reference_span = m2.span()
        found.latest = True


# -- conditions --------------------------------------------------------------------------

_NEGATIVE = re.compile(
    r"\b(?:closed|not\s+open|isn'?t\s+open|is\s+not\s+(?:open|reachable)|unreachable|down"
    r"|not\s+reachable|doesn'?t\s+answer|does\s+not\s+answer)\b",
    re.IGNORECASE,
)
_NOTHING = re.compile(
    r"\b(?:nothing|no\s+(?:findings?|open\s+ports?|issues?|problems?|results?)|is\s+clean"
    r"|comes?\s+back\s+clean|finds\s+none|none\s+(?:are|is)\s+found)\b",
    re.IGNORECASE,
)
_SOMETHING = re.compile(
    r"\b(?:anything|something|any\s+(?:findings?|issues?|problems?|open\s+ports?)|finds?"
    r"|found|open\s+ports?|issues?|problems?|vulnerab\w*|exposed|risky|dangerous)\b",
    re.IGNORECASE,
)
_OPEN = re.compile(r"\b(?:open|reachable|listening|answers?|exposed|up|running|enabled)\b", re.I)


def parse_condition(text: str, found: Found, *, negate: bool) -> AnyCondition | None:
    """The condition an ``if``/``unless`` clause states, on the results of the steps the
    conditional step waits for; None when the words say nothing the planner can check."""
    ports = list(found.ports)
    service_spans = []
    if not ports:
        for m in _SERVICE.finditer(text):
            ports.extend(SERVICE_PORTS[m["svc"].lower()])
            service_spans.append(m.span())
    host = found.targets[0] if len(found.targets) == 1 else None
    if ports and (_OPEN.search(text) or _NEGATIVE.search(text) or service_spans):
        found.spans.extend(service_spans)
        closed = _NEGATIVE.search(text) is not None
        return PortOpen(ports=sorted(set(ports)), host=host, negate=negate != closed)
    if found.severity is not None:
        return FindingAtLeast(severity=found.severity, negate=negate)
    if _NOTHING.search(text):
        return AnyFinding(negate=not negate)
    if _SOMETHING.search(text):
        return AnyFinding(negate=negate)
    return None


def numbers_left(text: str, used: Iterable[Span]) -> list[str]:
    """Numbers no finder took: a port without "port", a stray count. Reported unused."""
    spans = list(used)
    return [
        m.group(0) for m in _NUMBER.finditer(text) if not any(a <= m.start() < b for a, b in spans)
    ]

"""The devices on the network, as the scans found them: an inventory the owner reads.

Every scan that finishes records what it saw here (``record_scan``), one knowledge entry per
address (``devices/<address>``): when something first and last answered there, the open ports
and findings of the latest scan that covered it, and a bounded history of sightings for its
page. The knowledge store persists each update in the appliance's SQLite file, so the
inventory survives restarts and power cuts like the jobs that built it; reading it is a dict
lookup, cheap enough for a home page that refreshes live.

A device that stops answering is not forgotten: a later scan that covered its address and
found nothing open empties its ports and findings and moves ``last_scanned``, while
``last_seen`` keeps the last time it answered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

import msgspec

from appliance.runtime import SEVERITIES, Severity

PREFIX = "devices/"
HISTORY = 50  # sightings kept per device, newest last


class DeviceFinding(msgspec.Struct, frozen=True):
    port: int
    service: str
    severity: Severity
    title: str
    advice: str
    since: float = 0.0  # the scan that first found it, of the unbroken run that still does


class Sighting(msgspec.Struct, frozen=True):
    """One scan that covered the device: what it found there."""

    job_id: str
    at: float
    open_ports: list[int]
    findings: int
    worst: Severity | None = None


class Device(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    first_seen: float  # first time anything answered there
    last_seen: float  # latest time anything answered
    last_scanned: float  # latest scan that covered it, answered or not
    last_job: str
    open_ports: list[int]
    findings: list[DeviceFinding]  # the latest scan's, worst first
    history: list[Sighting] = []

    @property
    def worst(self) -> Severity | None:
        return self.findings[0].severity if self.findings else None


class Found(Protocol):
    """A finding as the analyzers report one (``agents.messages.Finding``)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def service(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def title(self) -> str: ...
    @property
    def advice(self) -> str: ...


class Knowledge(Protocol):
    """What the inventory needs of the knowledge store (``KnowledgeStore`` has it). Loosely
    typed: a device is stored as ``Device | None``, which is no ``type[T]``."""

    def get(self, key: str, type: Any, default: Any) -> Any: ...

    def keys(self, prefix: str = "") -> list[str]: ...

    def update(self, key: str, fn: Callable[[Any], Any], *, type: Any, default: Any) -> Any: ...


MaybeDevice = Device | None


def record_scan(
    knowledge: Knowledge,
    *,
    job_id: str,
    at: float,
    probed: Collection[str],
    found: Mapping[str, list[int]],
    findings: Iterable[Found],
) -> None:
    """What one finished scan saw: the addresses that answered (``found``), their findings,
    and every address it probed (so a known device that no longer answers is updated)."""
    by_host: dict[str, list[DeviceFinding]] = {}
    for f in findings:
        by_host.setdefault(f.host, []).append(
            DeviceFinding(f.port, f.service, f.severity, f.title, f.advice, at)
        )
    known = {key.removeprefix(PREFIX) for key in knowledge.keys(PREFIX)}
    gone = [host for host in known - found.keys() if host in probed]
    for host in [*found, *gone]:
        ports = sorted(found.get(host, []))
        before = device(knowledge, host)
        known_since = {(f.port, f.title): f.since for f in (before.findings if before else [])}
        mine = sorted(
            (
                msgspec.structs.replace(f, since=known_since.get((f.port, f.title), at))
                for f in by_host.get(host, [])
            ),
            key=lambda f: (-_rank(f.severity), f.port),
        )
        sighting = Sighting(job_id, at, ports, len(mine), mine[0].severity if mine else None)

        knowledge.update(
            PREFIX + host,
            _seen(host, job_id, at, ports, mine, sighting),
            type=MaybeDevice,
            default=None,
        )


def _seen(
    host: str,
    job_id: str,
    at: float,
    ports: list[int],
    findings: list[DeviceFinding],
    sighting: Sighting,
) -> Callable[[Device | None], Device]:
    def update(old: Device | None) -> Device:
        return Device(
            address=host,
            first_seen=old.first_seen if old is not None else at,
            last_seen=at if ports or old is None else old.last_seen,
            last_scanned=at,
            last_job=job_id,
            open_ports=ports,
            findings=findings,
            history=[*(old.history if old is not None else []), sighting][-HISTORY:],
        )

    return update


def devices(knowledge: Knowledge) -> list[Device]:
    """Every device, by address (numerically, IPv4 before IPv6)."""
    found: list[Device | None] = [
        knowledge.get(key, MaybeDevice, None) for key in knowledge.keys(PREFIX)
    ]
    return sorted((d for d in found if d is not None), key=lambda d: _address_key(d.address))


def merged(
    here: Iterable[Device], elsewhere: Mapping[str, Iterable[Device]]
) -> list[tuple[Device, str]]:
    """One inventory of a fleet's: this device's (seen by ``""``) and each other device's by
    name, one entry per address, the latest scan of it winning where scopes overlap; by
    address as ``devices`` orders them."""
    best: dict[str, tuple[Device, str]] = {d.address: (d, "") for d in here}
    for name, devices_there in sorted(elsewhere.items()):
        for d in devices_there:
            held = best.get(d.address)
            if held is None or d.last_scanned > held[0].last_scanned:
                best[d.address] = (d, name)
    return sorted(best.values(), key=lambda found: _address_key(found[0].address))


def device(knowledge: Knowledge, address: str) -> Device | None:
    found: Device | None = knowledge.get(PREFIX + address, MaybeDevice, None)
    return found


def _rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (2, 0, address)
    return (ip.version // 6, int(ip), address)


def serious(knowledge: Knowledge) -> str:
    """The open critical and high findings in a few words ("1 critical, 2 high"), or "":
    for the display's status line, where the owner sees them without the panel."""
    counts = {"critical": 0, "high": 0}
    for d in devices(knowledge):
        for f in d.findings:
            if f.severity in counts:
                counts[f.severity] += 1
    return ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)

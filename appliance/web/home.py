"""The owner's view: what needs attention, the devices on the network, what ran and what is
scheduled, what waits for a yes. One builder serves the home page, its live refresh and
``GET /api/v1/home``, so the page and the API never disagree; the devices have their own
endpoints and pages (``/devices``, ``/devices/{address}``).

Findings come from the inventory (``appliance.inventory``): the latest scan of each device,
so a finding fixed since drops off by itself at the next scan. A job's status is its
outcome (``reports.outcome``): done only if all it was asked was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import msgspec
from aiohttp import web

from appliance import inventory
from appliance.errors import UnknownDevice
from appliance.inventory import Device
from appliance.reports import JobOutcome, outcome
from appliance.runtime import SEVERITIES, JobTree, Runtime, Severity
from appliance.schedules.store import ScheduleRecord
from appliance.web.api import json_response
from appliance.web.approvals import ACTIONS
from appliance.web.fleet import FLEET_INVENTORY
from appliance.web.keys import FAILED_EXTENSIONS, NAMES, RUNTIME
from appliance.web.render import render
from appliance.web.routes import Route
from appliance.web.schedules import SCHEDULES

ADDRESS = "/devices/{address:[0-9A-Fa-f.:]+}"  # an IPv4 or IPv6 address
RECENT_JOBS = 10
NEXT_SCHEDULES = 5


class Attention(msgspec.Struct, frozen=True):
    """An open finding on a device, with what to do about it."""

    address: str
    names: list[str]
    port: int
    service: str
    severity: Severity
    title: str
    advice: str


class DeviceRow(msgspec.Struct, frozen=True):
    address: str
    names: list[str]
    open_ports: list[int]
    findings: int
    worst: Severity | None
    first_seen: float
    last_seen: float
    last_scanned: float
    seen_by: str = ""  # in a fleet: the device whose scan this is ("": this one)


class JobRow(msgspec.Struct, frozen=True):
    job_id: str
    command: str
    autonomous: bool
    created_at: float
    outcome: JobOutcome


class HomeView(msgspec.Struct, frozen=True):
    counts: dict[str, int]  # open findings by severity, worst first, only those present
    attention: list[Attention]  # worst first
    devices: list[DeviceRow]
    jobs: list[JobRow]  # newest first
    schedules: list[ScheduleRecord]  # active ones, next firing first
    approvals_waiting: int
    repairs: list[str]  # what on the appliance itself needs the owner, in words
    unanswered: list[str] = []  # in a fleet: devices whose inventories are missing here


class DeviceView(msgspec.Struct, frozen=True):
    device: Device
    names: list[str]
    seen_by: str = ""  # in a fleet: the device whose scans these are ("": this one)


def names_of(names: Mapping[str, str], address: str) -> list[str]:
    """The admin's names for this address (config.toml's ``[names]``: nas = "10.0.0.5");
    a network's name ("the office" = 10.0.0.0/24) names no one device."""
    return sorted(name for name, target in names.items() if target == address)


def job_row(tree: JobTree) -> JobRow:
    return JobRow(tree.job_id, tree.command, tree.autonomous, tree.created_at, outcome(tree))


async def found_devices(app: web.Application) -> tuple[list[tuple[Device, str]], list[str]]:
    """The devices scans found, each with the device that scanned it (``""``: this one), and
    in a fleet the devices that did not answer: every device's inventory, one row per
    address."""
    here = inventory.devices(app[RUNTIME].knowledge)
    ask = app.get(FLEET_INVENTORY)
    if ask is None:
        return [(d, "") for d in here], []
    fleet = await ask()
    return inventory.merged(here, fleet.devices), fleet.unanswered


async def build_home(app: web.Application) -> HomeView:
    runtime: Runtime = app[RUNTIME]
    names = app.get(NAMES) or {}
    found, unanswered = await found_devices(app)
    attention = [
        Attention(
            d.address, names_of(names, d.address), f.port, f.service, f.severity, f.title, f.advice
        )
        for d, _ in found
        for f in d.findings
    ]
    attention.sort(key=lambda a: -SEVERITIES.index(a.severity))
    counts: dict[str, int] = {}
    for severity in reversed(SEVERITIES):
        n = sum(1 for a in attention if a.severity == severity)
        if n:
            counts[severity] = n
    # the appliance's own standing jobs (the network watcher's) are no news to the owner
    internal = {cls.name for cls in runtime.agent_types if cls.internal}
    trees = [
        t
        for t in await runtime.graph.recent_trees(RECENT_JOBS + len(internal))
        if not (t.roots and t.roots[0].agent_type in internal)
    ][:RECENT_JOBS]
    schedules = app.get(SCHEDULES)
    records = await asyncio.to_thread(schedules.list) if schedules is not None else []
    upcoming = sorted(
        (r for r in records if not r.paused and r.next_fire is not None),
        key=lambda r: r.next_fire or 0.0,
    )[:NEXT_SCHEDULES]
    actions = app.get(ACTIONS)
    waiting = len(await asyncio.to_thread(actions.records, ("pending",))) if actions else 0
    return HomeView(
        counts=counts,
        attention=attention,
        devices=[_row(d, names, by) for d, by in found],
        jobs=[job_row(t) for t in trees],
        schedules=upcoming,
        approvals_waiting=waiting,
        repairs=repairs(runtime, app.get(FAILED_EXTENSIONS) or {}),
        unanswered=unanswered,
    )


def repairs(runtime: Runtime, failed_extensions: Mapping[str, str]) -> list[str]:
    """The appliance's own trouble, said so the owner knows what to do (the System page has
    the details): a type stopped after crashing again and again, an extension that did not
    load."""
    out = [
        f"{name} stopped after repeated crashes ({why}): reset it on the System page once "
        "the cause is fixed."
        for name, why in runtime.failed_types().items()
    ]
    out += [
        f"The extension {name} did not load ({why}): its agents are missing until it is "
        "fixed or removed (qey extension list)."
        for name, why in failed_extensions.items()
    ]
    return out


def _row(d: Device, names: Mapping[str, str], seen_by: str = "") -> DeviceRow:
    return DeviceRow(
        d.address,
        names_of(names, d.address),
        d.open_ports,
        len(d.findings),
        d.worst,
        d.first_seen,
        d.last_seen,
        d.last_scanned,
        seen_by,
    )


async def _device(request: web.Request) -> DeviceView:
    address = request.match_info["address"]
    if FLEET_INVENTORY in request.app:  # the scan the lists show: perhaps another device's
        there = {d.address: (d, by) for d, by in (await found_devices(request.app))[0]}
        found, seen_by = there.get(address, (None, ""))
    else:
        found, seen_by = inventory.device(request.app[RUNTIME].knowledge, address), ""
    if found is None:
        raise UnknownDevice(f"no scan has seen a device at {address!r}")
    return DeviceView(found, names_of(request.app.get(NAMES) or {}, address), seen_by)


async def get_home(request: web.Request) -> web.Response:
    return json_response(await build_home(request.app))


async def list_devices(request: web.Request) -> web.Response:
    names = request.app.get(NAMES) or {}
    found, _unanswered = await found_devices(request.app)
    return json_response([_row(d, names, by) for d, by in found])


async def get_device(request: web.Request) -> web.Response:
    return json_response(await _device(request))


async def home_page(request: web.Request) -> web.Response:
    return render(request, "home.html", "Home", active="/", home=await build_home(request.app))


async def devices_page(request: web.Request) -> web.Response:
    names = request.app.get(NAMES) or {}
    found, unanswered = await found_devices(request.app)
    rows = [_row(d, names, by) for d, by in found]
    return render(
        request, "devices.html", "Devices", active="/devices", devices=rows, unanswered=unanswered
    )


async def device_page(request: web.Request) -> web.Response:
    view = await _device(request)
    title = f"Device {view.device.address}"
    return render(request, "device.html", title, active="/devices", view=view)


HOME_ROUTES = (
    Route("GET", "/", home_page),
    Route("GET", "/devices", devices_page),
    Route("GET", ADDRESS, device_page),
    Route(
        "GET",
        "/api/v1/home",
        get_home,
        "The owner's view: open findings worst first, devices, recent jobs and how they "
        "ended, upcoming schedules, approvals waiting",
        returns=HomeView,
    ),
    Route(
        "GET",
        "/api/v1/devices",
        list_devices,
        "The devices scans have seen, by address",
        returns=list[DeviceRow],
    ),
    Route(
        "GET",
        "/api/v1" + ADDRESS,
        get_device,
        "A device: its latest ports and findings and its history of scans",
        returns=DeviceView,
        errors=(404,),
    ),
)

"""The bell: what the owner should hear about without looking. Serious findings (high and
critical) from the day they were first found, actions waiting for a yes, and scheduled jobs
that ended. ``GET /api/v1/notices`` lists them newest first; the header's bell counts those
newer than the browser last opened the list (kept in the browser: nothing to store here),
and the Notifications page shows them.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec
from aiohttp import web

from appliance import inventory
from appliance.errors import UnknownJob
from appliance.reports import outcome
from appliance.runtime import Runtime
from appliance.web.api import json_response
from appliance.web.approvals import ACTIONS
from appliance.web.keys import RUNTIME
from appliance.web.render import render
from appliance.web.routes import Route
from appliance.web.schedules import SCHEDULES

SERIOUS = ("critical", "high")
LIMIT = 50


class Notice(msgspec.Struct, frozen=True):
    kind: Literal["finding", "approval", "scheduled"]
    text: str
    href: str
    at: float


async def build_notices(app: web.Application) -> list[Notice]:
    runtime: Runtime = app[RUNTIME]
    notices = [
        Notice(
            "finding",
            f"{f.severity.capitalize()}: {f.title} on {d.address} ({f.port}/{f.service})",
            f"/devices/{d.address}",
            f.since,
        )
        for d in inventory.devices(runtime.knowledge)
        for f in d.findings
        if f.severity in SERIOUS
    ]
    actions = app.get(ACTIONS)
    if actions is not None:
        pending = await asyncio.to_thread(actions.records, ("pending",))
        notices += [
            Notice("approval", f"“{r.what}” waits for your approval", "/approvals", r.requested_at)
            for r in pending
        ]
    schedules = app.get(SCHEDULES)
    if schedules is not None:
        for record in await asyncio.to_thread(schedules.list):
            if record.last_job is None or record.last_fired is None:
                continue
            try:
                tree = await runtime.graph.tree(record.last_job)
            except UnknownJob:
                continue
            ended = outcome(tree)
            if ended.verdict == "running":
                continue
            found = f", {ended.findings} findings" if ended.findings else ""
            notices.append(
                Notice(
                    "scheduled",
                    f"Scheduled “{record.command}” ended {ended.verdict}{found}",
                    f"/jobs/{record.last_job}",
                    record.last_fired,
                )
            )
    notices.sort(key=lambda n: -n.at)
    return notices[:LIMIT]


async def get_notices(request: web.Request) -> web.Response:
    return json_response(await build_notices(request.app))


async def notices_page(request: web.Request) -> web.Response:
    notices = await build_notices(request.app)
    return render(request, "notices.html", "Notifications", active="/notices", notices=notices)


NOTICE_ROUTES = (
    Route("GET", "/notices", notices_page),
    Route(
        "GET",
        "/api/v1/notices",
        get_notices,
        "What the bell rings for, newest first: serious findings since first found, actions "
        "waiting for approval, scheduled jobs that ended",
        returns=list[Notice],
    ),
)

"""Schedules on the API (``/api/v1/schedules``: list, one with its firings, pause, resume,
delete) and the panel's Schedules page.

The API is served on both surfaces: the control socket (``qey schedules``) and the panel
(behind its session and CSRF check, like every change there). Schedules are made by
submitting a command with a schedule phrase ("scan 10.0.0.0/24 every night"), not here.
The table itself comes through ``ScheduleControl``; its calls wait on SQLite, so they run
off the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime
from typing import Protocol

import msgspec
from aiohttp import web

from appliance.events import ScheduleFired
from appliance.schedules.store import ScheduleRecord
from appliance.web.auth import SESSION
from appliance.web.errors import ActionRefused
from appliance.web.layout import e, page, table
from appliance.web.routes import Route

SCHEDULE_PATH = "/api/v1/schedules"


class ScheduleControl(Protocol):
    """The schedule table, as the app hands it to the web layer (``Schedules``)."""

    def list(self) -> builtins.list[ScheduleRecord]: ...

    def get(self, schedule_id: str) -> ScheduleRecord: ...

    def pause(self, schedule_id: str) -> ScheduleRecord: ...

    def resume(self, schedule_id: str) -> ScheduleRecord: ...

    def delete(self, schedule_id: str) -> None: ...

    async def firings(self, schedule_id: str) -> builtins.list[ScheduleFired]: ...

    async def cause(self, job_id: str) -> ScheduleFired | None: ...


SCHEDULES: web.AppKey[ScheduleControl | None] = web.AppKey("schedules")


class ScheduleDetail(msgspec.Struct, frozen=True):
    """One schedule and the jobs its firings started, oldest first."""

    schedule: ScheduleRecord
    firings: list[ScheduleFired]


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


def _control(request: web.Request) -> ScheduleControl:
    control = request.app.get(SCHEDULES)
    if control is None:
        raise ActionRefused("this appliance keeps no schedules")
    return control


async def list_schedules(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_control(request).list))


async def get_schedule(request: web.Request) -> web.Response:
    control = _control(request)
    schedule_id = request.match_info["schedule_id"]
    record = await asyncio.to_thread(control.get, schedule_id)  # UnknownSchedule: 404
    return json_response(ScheduleDetail(record, await control.firings(schedule_id)))


async def pause_schedule(request: web.Request) -> web.Response:
    control = _control(request)
    return json_response(await asyncio.to_thread(control.pause, request.match_info["schedule_id"]))


async def resume_schedule(request: web.Request) -> web.Response:
    control = _control(request)
    schedule_id = request.match_info["schedule_id"]
    return json_response(await asyncio.to_thread(control.resume, schedule_id))


async def delete_schedule(request: web.Request) -> web.Response:
    await asyncio.to_thread(_control(request).delete, request.match_info["schedule_id"])
    return web.Response(status=204)


_ONE = SCHEDULE_PATH + "/{schedule_id}"

SCHEDULE_ROUTES = (
    Route(
        "GET",
        SCHEDULE_PATH,
        list_schedules,
        "Schedules: commands that run again on their own, oldest first",
        returns=list[ScheduleRecord],
        errors=(409,),
    ),
    Route(
        "GET",
        _ONE,
        get_schedule,
        "A schedule and the jobs its firings started",
        returns=ScheduleDetail,
        errors=(404, 409),
    ),
    Route(
        "DELETE",
        _ONE,
        delete_schedule,
        "Delete a schedule (the jobs it started stay, linked to it in the graph)",
        ok=204,
        errors=(403, 404, 409),
    ),
    Route(
        "POST",
        _ONE + "/pause",
        pause_schedule,
        "Pause a schedule: no firing until it is resumed",
        returns=ScheduleRecord,
        errors=(403, 404, 409),
    ),
    Route(
        "POST",
        _ONE + "/resume",
        resume_schedule,
        "Resume a schedule from its next firing after now (missed ones are skipped)",
        returns=ScheduleRecord,
        errors=(403, 404, 409),
    ),
)
"""The schedule API: on the control socket and on the panel."""


# -- the panel's page -----------------------------------------------------------------------


async def schedules_page(request: web.Request) -> web.Response:
    control = request.app.get(SCHEDULES)
    records = await asyncio.to_thread(control.list) if control is not None else []
    body = (
        "<p>Commands that run again on their own, each firing an autonomous job. Times are "
        "the device's local time.</p>" + schedules_body(records, forms=True)
    )
    return web.Response(
        text=page("Schedules", body, csrf=request[SESSION].csrf, active="/schedules"),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def started_by(request: web.Request, job_id: str) -> str:
    """For a job's page: the schedule whose firing started it, and the job that made that
    schedule (the graph's ``schedule.fired`` link); empty for any other job."""
    control = request.app.get(SCHEDULES)
    fired = await control.cause(job_id) if control is not None else None
    if fired is None:
        return ""
    return (
        '<p id="started-by">Started by schedule <a href="/schedules">'
        f"<code>{e(fired.schedule_id)}</code></a> (due {e(local_time(fired.due_at))}), "
        f'made by job <a href="/jobs/{e(fired.created_by)}">{e(fired.created_by)}</a>.</p>'
    )


SCHEDULE_PAGE = (Route("GET", "/schedules", schedules_page),)


def local_time(at: float | None) -> str:
    """An instant as the device's local time: schedules are kept in it."""
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at is not None else "—"


def state_of(record: ScheduleRecord) -> str:
    if record.paused:
        return "paused"
    return "done" if record.next_fire is None else "active"


def schedules_body(records: builtins.list[ScheduleRecord], *, forms: bool) -> str:
    """The Schedules page's table; ``forms``: with the pause, resume and delete buttons."""
    if not records:
        return (
            "<p>No schedules. Submit a command with a schedule in it (“scan 10.0.0.0/24 every "
            "night”, “check the nas hourly”) to make one.</p>"
        )
    rows = []
    for r in records:
        state = state_of(r)
        last = local_time(r.last_fired)
        if r.last_job:
            last += f' → <a href="/jobs/{e(r.last_job)}">{e(r.last_job)}</a>'
        if r.last_error:
            last += f' <small class="error">{e(r.last_error)}</small>'
        actions = ""
        if forms:
            path = f"{SCHEDULE_PATH}/{r.id}"
            toggle = "resume" if r.paused else "pause"
            if state != "done":
                actions += _form(f"{path}/{toggle}", "POST", toggle.capitalize(), "")
            actions += _form(path, "DELETE", "Delete", f"Delete the schedule “{r.command}”?")
        rows.append(
            [
                f"<code>{e(r.id)}</code>",
                e(r.command),
                e(r.when),
                f'<span class="badge {e(state)}">{e(state)}</span>',
                e(local_time(r.next_fire)),
                last,
                f'<a href="/jobs/{e(r.created_by)}">{e(r.created_by)}</a>',
                actions,
            ]
        )
    return table(
        ["Schedule", "Runs", "When", "State", "Next", "Last", "Made by", ""], rows, id_="schedules"
    )


def _form(api: str, method: str, button: str, confirm: str) -> str:
    """A form panel.js sends to the API; the page reloads to show the result."""
    ask = f' data-confirm="{e(confirm)}"' if confirm else ""
    return (
        f'<form class="inline" data-api="{e(api)}" data-method="{e(method)}" data-reload="1"'
        f'{ask}><button type="submit">{e(button)}</button><output class="result"></output>'
        "</form>"
    )

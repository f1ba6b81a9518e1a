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
from typing import Protocol

import msgspec
from aiohttp import web

from appliance.events import ScheduleFired
from appliance.schedules.store import ScheduleRecord
from appliance.web.errors import ActionRefused
from appliance.web.render import render
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
    rows = [(r, state_of(r)) for r in records]
    return render(request, "schedules.html", "Schedules", active="/schedules", schedules=rows)


SCHEDULE_PAGE = (Route("GET", "/schedules", schedules_page),)


def state_of(record: ScheduleRecord) -> str:
    if record.paused:
        return "paused"
    return "done" if record.next_fire is None else "active"

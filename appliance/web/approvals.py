"""Actions and their approvals on the API (``/api/v1/actions``: list, one, approve, reject,
undo) and the panel's Approvals page.

Served on both surfaces: the control socket (``qey approvals``, ``qey actions``, ``qey undo``)
and the panel (behind its session and CSRF check). The actions come through ``ActionControl``
(the app's ``Actions``); its calls wait on SQLite and, for an approval, on nft, so they run
off the event loop. Who decided is the surface: "admin (panel)" or "admin (console)".
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import msgspec
from aiohttp import web

from appliance.actions.store import ActionRecord, State
from appliance.errors import UnknownAction
from appliance.web.bodies import decoding
from appliance.web.errors import BadRequestBody
from appliance.web.render import render
from appliance.web.routes import Query, Route, add_routes
from appliance.web.schedules import json_response

ACTION_PATH = "/api/v1/actions"
STATES: tuple[State, ...] = ("pending", "applied", "rejected", "expired", "failed", "undone")


class ActionControl(Protocol):
    """The actions, as the app hands them to the web layer (``Actions``)."""

    def records(self, states: tuple[State, ...] = ()) -> list[ActionRecord]: ...

    def get(self, action_id: str) -> ActionRecord: ...

    def approve(self, action_id: str, *, by: str = "admin") -> ActionRecord: ...

    def reject(self, action_id: str, *, by: str = "admin", why: str = "") -> ActionRecord: ...

    def undo(self, action_id: str, *, by: str = "admin") -> ActionRecord: ...


ACTIONS: web.AppKey[ActionControl] = web.AppKey("actions")
SURFACE: web.AppKey[str] = web.AppKey("actions_surface")


class Rejection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    why: str = msgspec.field(default="")


async def list_actions(request: web.Request) -> web.Response:
    asked = tuple(s for s in request.query.get("state", "").split(",") if s)
    for state in asked:
        if state not in STATES:
            raise BadRequestBody(f"unknown state {state!r}: use {', '.join(STATES)}")
    states = cast(tuple[State, ...], asked)
    return json_response(await asyncio.to_thread(request.app[ACTIONS].records, states))


async def get_action(request: web.Request) -> web.Response:
    control = request.app[ACTIONS]
    return json_response(await asyncio.to_thread(control.get, request.match_info["action_id"]))


async def decide(request: web.Request) -> web.Response:
    control = request.app[ACTIONS]
    action_id = request.match_info["action_id"]
    verb = request.match_info["verb"]
    by = f"admin ({request.app[SURFACE]})"
    if verb == "approve":
        record = await asyncio.to_thread(control.approve, action_id, by=by)
    elif verb == "undo":
        record = await asyncio.to_thread(control.undo, action_id, by=by)
    else:
        body = await request.read()
        try:
            with decoding("rejection"):
                why = msgspec.json.decode(body, type=Rejection).why if body.strip() else ""
        except msgspec.DecodeError as err:
            raise BadRequestBody(f"bad rejection: {err}") from None
        record = await asyncio.to_thread(control.reject, action_id, by=by, why=why)
    return json_response(record)


_STATE = Query("state", {"type": "string", "pattern": "^[a-z,]*$"})

ACTION_ROUTES = (
    Route(
        "GET",
        ACTION_PATH,
        list_actions,
        "Actions (blocks, quarantines, notices...), newest last; ?state=pending,applied",
        returns=list[ActionRecord],
        errors=(400,),
        query=(_STATE,),
    ),
    Route(
        "GET",
        ACTION_PATH + "/{action_id}",
        get_action,
        "One action: what, why, its state and who decided",
        returns=ActionRecord,
        errors=(404,),
    ),
    Route(
        "POST",
        ACTION_PATH + "/{action_id}/{verb:approve|reject|undo}",
        decide,
        "Approve, reject (with an optional why) or undo an action",
        returns=ActionRecord,
        errors=(400, 403, 404, 409, 502),
    ),
)


def add_action_routes(app: web.Application, control: ActionControl, *, surface: str) -> None:
    """The actions API on ``app`` (the control socket's or the panel's)."""
    app[ACTIONS] = control
    app[SURFACE] = surface
    add_routes(app, ACTION_ROUTES)


# -- the panel's page -----------------------------------------------------------------------


async def approvals_page(request: web.Request) -> web.Response:
    records = await asyncio.to_thread(request.app[ACTIONS].records)
    pending = [r for r in records if r.state == "pending"]
    done = [r for r in reversed(records) if r.state != "pending"][:100]
    return render(
        request, "approvals.html", "Approvals", active="/approvals", pending=pending, done=done
    )


APPROVALS_PAGE = (Route("GET", "/approvals", approvals_page),)


__all__ = ["ACTIONS", "APPROVALS_PAGE", "ActionControl", "UnknownAction", "add_action_routes"]

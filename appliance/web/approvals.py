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
from appliance.web.auth import SESSION
from appliance.web.bodies import decoding
from appliance.web.errors import BadRequestBody
from appliance.web.layout import e, page, table
from appliance.web.routes import Query, Route, add_routes
from appliance.web.schedules import json_response, local_time

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
    body = (
        "<p>Blocks, quarantines and revocations wait here for your yes; one not approved "
        "before its deadline is not done. This page follows new requests as they come.</p>"
        f'<h2>Waiting for you ({len(pending)})</h2><div id="pending" data-poll="{ACTION_PATH}'
        f'?state=pending" data-ids="{e(",".join(r.id for r in pending))}">'
        + (_table(pending) if pending else "<p>Nothing waits for an approval.</p>")
        + "</div><h2>Decided</h2>"
        + (_table(done) if done else "<p>No actions yet.</p>")
    )
    return web.Response(
        text=page("Approvals", body, csrf=request[SESSION].csrf, active="/approvals"),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def _table(records: list[ActionRecord]) -> str:
    rows = []
    for r in records:
        buttons = ""
        path = f"{ACTION_PATH}/{r.id}"
        if r.state == "pending":
            buttons = _form(f"{path}/approve", "Approve", f"{r.what}: are you sure?") + _form(
                f"{path}/reject", "Reject", ""
            )
        elif r.state == "applied" and r.what.split()[0] != "notify":
            buttons = _form(f"{path}/undo", "Undo", f"Undo “{r.what}”?")
        decided = e(r.decided_by) if r.decided_by else f"due by {e(local_time(r.deadline))}"
        rows.append(
            [
                f"<code>{e(r.id)}</code>",
                e(r.what) + (f"<br><small>{e(r.action.reason)}</small>" if r.action.reason else ""),
                f'<span class="badge {e(r.state)}">{e(r.state)}</span>',
                decided + (f"<br><small>{e(r.detail)}</small>" if r.detail else ""),
                f'<a href="/jobs/{e(r.job_id)}">{e(r.job_id)}</a>',
                e(local_time(r.requested_at)),
                buttons,
            ]
        )
    return table(["Action", "What", "State", "Decided", "Job", "Asked", ""], rows, id_="actions")


def _form(api: str, button: str, confirm: str) -> str:
    ask = f' data-confirm="{e(confirm)}"' if confirm else ""
    return (
        f'<form class="inline" data-api="{e(api)}" data-method="POST" data-reload="1"{ask}>'
        f'<button type="submit">{e(button)}</button><output class="result"></output></form>'
    )


APPROVALS_PAGE = (Route("GET", "/approvals", approvals_page),)


__all__ = ["ACTIONS", "APPROVALS_PAGE", "ActionControl", "UnknownAction", "add_action_routes"]

"""The admin operations as JSON, panel only (they need a session): status, route preview,
restart an instance, scale a pool, cancel a job, reset a failed type, scope, password.

The control socket does not serve these: the CLI has no use for them yet, and keeping the
session-less surface small keeps what a local process can do without a password small.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import msgspec
from aiohttp import web

from appliance.errors import BadCommand
from appliance.web import actions
from appliance.web.api import Command, json_response, read_body
from appliance.web.errors import ActionRefused, WrongPassword
from appliance.web.keys import (
    ACTIVITY,
    CREDENTIALS,
    DEVICE,
    FAILED_EXTENSIONS,
    PLAN,
    ROUTE,
    ROUTER,
    RUNTIME,
    SCOPE,
    SESSION,
    SESSIONS,
    THROTTLE,
)
from appliance.web.overview import InstanceView, StatusView, build_status, instance_view
from appliance.web.passwords import MAX_PASSWORD_LEN
from appliance.web.routes import OBJECT, Route

log = logging.getLogger(__name__)

Network = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RouteRequest(msgspec.Struct, forbid_unknown_fields=True):
    command: Command


class PoolRequest(msgspec.Struct, forbid_unknown_fields=True):
    # JSON Schema counts 3.0 as an integer, so the API takes it; 3.5 is refused in the handler
    size: Annotated[int | float, msgspec.Meta(extra_json_schema={"type": "integer", "minimum": 0})]


class ScopeRequest(msgspec.Struct, forbid_unknown_fields=True):
    scope: Annotated[list[Network], msgspec.Meta(min_length=1, max_length=64)]
    confirm_large: bool = False  # the admin means a range past the size limit


class PasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    current: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LEN)]
    new: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LEN)]


class PoolView(msgspec.Struct, frozen=True):
    agent_type: str
    size: int


class CancelView(msgspec.Struct, frozen=True):
    job_id: str
    stopped: list[str]


class ScopeView(msgspec.Struct, frozen=True):
    scope: list[str]


async def get_status(request: web.Request) -> web.Response:
    app = request.app
    failed = app.get(FAILED_EXTENSIONS)
    return json_response(
        build_status(app[RUNTIME], app[ACTIVITY], app[ROUTER], app[DEVICE], failed)
    )


async def post_route(request: web.Request) -> web.Response:
    """The router's decision for a command, without starting anything."""
    body = await read_body(request, RouteRequest)
    if not body.command.strip():
        raise BadCommand("command is empty")
    route = request.app[ROUTE]
    if route is None:
        raise ActionRefused("this appliance has no router")
    return json_response(await route(body.command))


async def post_plan(request: web.Request) -> web.Response:
    """The planner's plan for a command, without starting anything (the submit page shows
    it, and asks before running a plan that is destructive, scheduled or uncertain)."""
    body = await read_body(request, RouteRequest)
    if not body.command.strip():
        raise BadCommand("command is empty")
    plan = request.app.get(PLAN)
    if plan is None:
        raise ActionRefused("this appliance has no planner")
    return json_response(await plan(body.command))


async def post_restart(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    info = actions.restart_instance(request.app[RUNTIME], task_id, "restarted by the admin")
    log.warning("panel: restarted %s/%s", info.ref.agent_type, task_id)
    return json_response(instance_view(info))


async def put_pool(request: web.Request) -> web.Response:
    agent_type = request.match_info["agent_type"]
    body = await read_body(request, PoolRequest)
    if body.size != int(body.size) or body.size < 0:
        raise BadCommand(f"size must be a whole number of instances, not {body.size}")
    size = actions.scale_pool(request.app[RUNTIME], agent_type, int(body.size))
    return json_response(PoolView(agent_type, size))


async def post_cancel(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    stopped = await actions.cancel_job(request.app[RUNTIME], job_id)
    log.warning("panel: cancelled job %s (%d tasks)", job_id, len(stopped))
    return json_response(CancelView(job_id, stopped))


async def post_reset_type(request: web.Request) -> web.Response:
    agent_type = request.match_info["agent_type"]
    actions.reset_type(request.app[RUNTIME], agent_type)
    return json_response(PoolView(agent_type, len(request.app[RUNTIME].pool_loads(agent_type))))


async def get_scope(request: web.Request) -> web.Response:
    scope = request.app[SCOPE]
    if scope is None:
        raise ActionRefused("this appliance has no configurable scope")
    return json_response(ScopeView(scope.get()))


async def put_scope(request: web.Request) -> web.Response:
    body = await read_body(request, ScopeRequest)
    scope = request.app[SCOPE]
    if scope is None:
        raise ActionRefused("this appliance has no configurable scope")
    # it writes config.toml
    applied = await asyncio.to_thread(scope.set, body.scope, confirm_large=body.confirm_large)
    log.warning("panel: scan scope set to %s", ", ".join(applied))
    return json_response(ScopeView(applied))


async def post_password(request: web.Request) -> web.Response:
    """Change the admin password: the current one is checked, slowed per session (never
    blocked by other clients' failures); every other session ends."""
    body = await read_body(request, PasswordRequest)
    app = request.app
    credentials, session = app[CREDENTIALS], request[SESSION]
    with app[THROTTLE].attempt("session", session.key) as attempt:  # TooManyAttempts: 429
        if await asyncio.to_thread(credentials.verify, body.current):
            attempt.succeeded()
    if not attempt.ok:
        raise WrongPassword("the current password is wrong")
    await asyncio.to_thread(credentials.set_password, body.new)  # WeakPassword: 400
    await app[SESSIONS].end_others(session.key)
    log.warning("panel: the admin password was changed from %s", request.remote or "?")
    return web.Response(status=204)


async def get_display_png(request: web.Request) -> web.Response:
    device = request.app[DEVICE]
    png = device.display_png() if device is not None else None
    if png is None:
        return json_response(
            {"error": "NoPicture", "message": "the display has no picture to show"}, 404
        )
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


OPS_ROUTES = (
    Route(
        "GET",
        "/api/v1/status",
        get_status,
        "Agent types, instances, health, pools, board, router",
        returns=StatusView,
    ),
    Route(
        "POST",
        "/api/v1/route",
        post_route,
        "The router's decision for a command, without running it",
        returns=OBJECT,
        errors=(400, 403, 409),
        body=RouteRequest,
    ),
    Route(
        "POST",
        "/api/v1/plan",
        post_plan,
        "The planner's plan for a command (steps, parameters, flags), without running it",
        returns=OBJECT,
        errors=(400, 403, 409, 422),
        body=RouteRequest,
    ),
    Route(
        "POST",
        "/api/v1/instances/{task_id}/restart",
        post_restart,
        "Restart a live instance from its last committed state",
        returns=InstanceView,
        errors=(403, 404),
    ),
    Route(
        "PUT",
        "/api/v1/pools/{agent_type}",
        put_pool,
        "Scale a type's pool to a size within its bounds",
        returns=PoolView,
        errors=(400, 403, 404),
        body=PoolRequest,
    ),
    Route(
        "POST",
        "/api/v1/jobs/{job_id}/cancel",
        post_cancel,
        "Cancel a job: stop every live task of it",
        returns=CancelView,
        errors=(403, 404, 409),
    ),
    Route(
        "POST",
        "/api/v1/agent-types/{agent_type}/reset",
        post_reset_type,
        "Take a type marked failed back into service",
        returns=PoolView,
        errors=(403, 404, 409),
    ),
    Route("GET", "/api/v1/scope", get_scope, "The scan scope", returns=ScopeView, errors=(409,)),
    Route(
        "PUT",
        "/api/v1/scope",
        put_scope,
        "Replace the scan scope (applied at once and saved)",
        returns=ScopeView,
        errors=(400, 403, 409),
        body=ScopeRequest,
    ),
    Route(
        "POST",
        "/api/v1/password",
        post_password,
        "Change the admin password; other sessions end",
        ok=204,
        errors=(400, 403, 429),
        body=PasswordRequest,
    ),
    Route(
        "GET",
        "/api/v1/device/display.png",
        get_display_png,
        "The display's latest picture",
        returns={"type": "string", "format": "binary"},
        errors=(404,),
        media=("image/png",),
    ),
)
"""The admin operations: the panel's alone."""

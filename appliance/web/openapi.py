"""The OpenAPI 3.1 document of the panel's JSON API, served at ``/api/v1/openapi.json``.

Request and response bodies that are Structs get their schemas from msgspec, the same types
that decode the requests, so the document cannot claim a field the server would refuse. The
tests run schemathesis against this document and the live server.
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance import __version__
from appliance.reports import FORMAT_NAMES, JobReport
from appliance.schedules.store import ScheduleRecord
from appliance.web.api import JobRequest
from appliance.web.capabilities import DeviceStatus
from appliance.web.ops import (
    CancelView,
    PasswordRequest,
    PoolRequest,
    PoolView,
    RouteRequest,
    ScopeRequest,
    ScopeView,
)
from appliance.web.overview import InstanceView, StatusView
from appliance.web.schedules import ScheduleDetail
from appliance.web.sessions import CSRF_HEADER, SESSION_COOKIE

_STRUCTS: tuple[type[msgspec.Struct], ...] = (
    JobRequest,
    RouteRequest,
    PoolRequest,
    ScopeRequest,
    PasswordRequest,
    StatusView,
    InstanceView,
    DeviceStatus,
    PoolView,
    CancelView,
    ScopeView,
    ScheduleRecord,
    ScheduleDetail,
    JobReport,
)
_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_OBJECT: dict[str, Any] = {"type": "object"}


def _ref(t: type[msgspec.Struct]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{t.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(
    ok: int, schema: dict[str, Any] | None, *errors: int, media: str = "application/json"
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if schema is None:
        out[str(ok)] = {"description": "done"}
    else:
        out[str(ok)] = {"description": "ok", "content": {media: {"schema": schema}}}
    for code in (401, *errors):
        out[str(code)] = {
            "description": _REASONS[code],
            **_json({"$ref": "#/components/schemas/Error"}),
        }
    return out


def _report_responses() -> dict[str, Any]:
    """The report's one 200 in each of its formats (JSON: the JobReport record)."""
    out = _responses(200, _ref(JobReport), 400, 404)
    text = {"schema": {"type": "string"}}
    out["200"]["content"] |= {"text/markdown": text, "text/csv": text, "text/html": text}
    return out


_REASONS = {
    400: "bad input: the message says what is wrong; nothing was written",
    401: "no session: sign in first",
    403: "CSRF token missing or wrong, request from another origin, or a wrong password",
    404: "no such job, task, agent type, schedule or picture",
    409: "the action cannot be done in the present state",
    422: "the input is well formed but refused (no confident route, event not accepted)",
    429: "too many failed attempts, or an inbox is full: retry later",
    503: "the runtime is not running",
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: type[msgspec.Struct] | None = None,
    params: list[str] | None = None,
    query: list[dict[str, Any]] | None = None,
    change: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    parameters = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "pattern": "^[A-Za-z0-9_.-]+$",
            },
        }
        for p in params or []
    ] + (query or [])
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, **_json(_ref(body))}
    if change:
        op["security"] = [{"session": [], "csrf": []}]
    return op


def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _STRUCTS, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR
    job = ["job_id"]
    schedule = ["schedule_id"]
    paths: dict[str, Any] = {
        "/api/v1/status": {
            "get": _op(
                "Agent types, instances, health, pools, board, router",
                _responses(200, _ref(StatusView)),
            )
        },
        "/api/v1/agents": {
            "get": _op(
                "Registered agent types and their live instances",
                _responses(200, {"type": "array", "items": _OBJECT}),
            )
        },
        "/api/v1/jobs": {
            "get": _op(
                "Recent jobs, newest first", _responses(200, {"type": "array", "items": _OBJECT})
            ),
            "post": _op(
                "Submit a command as a new job (the router picks the agent type unless named)",
                _responses(202, _OBJECT, 400, 403, 404, 422, 429, 503),
                body=JobRequest,
                change=True,
            ),
        },
        "/api/v1/jobs/{job_id}": {
            "get": _op(
                "A job and its root task's outcome; ?wait=S waits up to S s for the end",
                _responses(200, _OBJECT, 400, 404),
                params=job,
                query=[
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0, "maximum": 5},
                    }
                ],
            )
        },
        "/api/v1/jobs/{job_id}/tree": {
            "get": _op(
                "The job's task tree as data and text", _responses(200, _OBJECT, 404), params=job
            )
        },
        "/api/v1/jobs/{job_id}/tree.svg": {
            "get": _op(
                "The job's task tree as a picture",
                _responses(200, {"type": "string"}, 404, media="image/svg+xml"),
                params=job,
            )
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a job: stop every live task of it",
                _responses(200, _ref(CancelView), 403, 404, 409),
                params=job,
                change=True,
            )
        },
        "/api/v1/jobs/{job_id}/report": {
            "get": _op(
                "The job's findings report (worst first, new and resolved since the last job "
                "on the same targets, failed steps), as a download in the format asked",
                _report_responses(),
                params=job,
                query=[
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(FORMAT_NAMES)},
                    }
                ],
            )
        },
        "/api/v1/tasks/{task_id}/chain": {
            "get": _op(
                "A task and its ancestors back to the command",
                _responses(200, _OBJECT, 404),
                params=["task_id"],
            )
        },
        "/api/v1/instances/{task_id}/restart": {
            "post": _op(
                "Restart a live instance from its last committed state",
                _responses(200, _ref(InstanceView), 403, 404),
                params=["task_id"],
                change=True,
            )
        },
        "/api/v1/pools/{agent_type}": {
            "put": _op(
                "Scale a type's pool to a size within its bounds",
                _responses(200, _ref(PoolView), 400, 403, 404),
                body=PoolRequest,
                params=["agent_type"],
                change=True,
            )
        },
        "/api/v1/agent-types/{agent_type}/reset": {
            "post": _op(
                "Take a type marked failed back into service",
                _responses(200, _ref(PoolView), 403, 404, 409),
                params=["agent_type"],
                change=True,
            )
        },
        "/api/v1/route": {
            "post": _op(
                "The router's decision for a command, without running it",
                _responses(200, _OBJECT, 400, 403, 409),
                body=RouteRequest,
                change=True,
            )
        },
        "/api/v1/plan": {
            "post": _op(
                "The planner's plan for a command (steps, parameters, flags), without running it",
                _responses(200, _OBJECT, 400, 403, 409, 422),
                body=RouteRequest,
                change=True,
            )
        },
        "/api/v1/scope": {
            "get": _op("The scan scope", _responses(200, _ref(ScopeView), 409)),
            "put": _op(
                "Replace the scan scope (applied at once and saved)",
                _responses(200, _ref(ScopeView), 400, 403, 409),
                body=ScopeRequest,
                change=True,
            ),
        },
        "/api/v1/password": {
            "post": _op(
                "Change the admin password; other sessions end",
                _responses(204, None, 400, 403, 429),
                body=PasswordRequest,
                change=True,
            )
        },
        "/api/v1/schedules": {
            "get": _op(
                "Schedules: commands that run again on their own, oldest first",
                _responses(200, {"type": "array", "items": _ref(ScheduleRecord)}, 409),
            )
        },
        "/api/v1/schedules/{schedule_id}": {
            "get": _op(
                "A schedule and the jobs its firings started",
                _responses(200, _ref(ScheduleDetail), 404, 409),
                params=schedule,
            ),
            "delete": _op(
                "Delete a schedule (the jobs it started stay, linked to it in the graph)",
                _responses(204, None, 403, 404, 409),
                params=schedule,
                change=True,
            ),
        },
        "/api/v1/schedules/{schedule_id}/pause": {
            "post": _op(
                "Pause a schedule: no firing until it is resumed",
                _responses(200, _ref(ScheduleRecord), 403, 404, 409),
                params=schedule,
                change=True,
            )
        },
        "/api/v1/schedules/{schedule_id}/resume": {
            "post": _op(
                "Resume a schedule from its next firing after now (missed ones are skipped)",
                _responses(200, _ref(ScheduleRecord), 403, 404, 409),
                params=schedule,
                change=True,
            )
        },
        "/api/v1/device/display.png": {
            "get": _op(
                "The display's latest picture",
                _responses(200, {"type": "string", "format": "binary"}, 404, media="image/png"),
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qEY-0 appliance API",
            "version": __version__,
            "description": "Sign in through /login (or /setup the first time) to get the session "
            f"cookie; send the page's CSRF token in {CSRF_HEADER} with every change. Live "
            "events: a WebSocket at /api/v1/live?job_id=&agent_type=&task_id=&kinds=.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
        "security": [{"session": []}],
    }

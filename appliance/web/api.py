"""The JSON API under /api/v1/: jobs, their trees and events, tasks' chains, agents, raw events.

Served by ``app.py`` on the owner-only control socket (the CLI's way in: the socket's file
permission is its authentication), and by the panel behind a session (``panel.py`` adds the
admin operations of ``ops.py``). Bad input gets a JSON 4xx naming what is wrong, and nothing
is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from appliance.errors import (
    ActionFailed,
    ActionNotAllowed,
    ApplianceError,
    BadCommand,
    BadEvent,
    EventNotAccepted,
    EventNotAllowed,
    InboxFull,
    NoConfidentMatch,
    OutOfScope,
    RuntimeStopped,
    UnknownAction,
    UnknownAgentType,
    UnknownDevice,
    UnknownJob,
    UnknownSchedule,
    UnknownTask,
)
from appliance.events import Envelope, Event, TaskRef, TaskSpawned, TaskStatusChanged
from appliance.reports import FORMAT_NAMES, JobReport, outcome
from appliance.runtime import (
    JobTree,
    Runtime,
    accepted_kinds,
    render_chain,
    render_tree,
)
from appliance.templating import environment
from appliance.web.bodies import decoding
from appliance.web.errors import (
    ActionRefused,
    BadRequestBody,
    CsrfRejected,
    NotSignedIn,
    TooManyAttempts,
    WrongPassword,
)
from appliance.web.keys import RUNTIME, SUBMIT
from appliance.web.reports import get_report
from appliance.web.routes import JSON, OBJECT, OBJECTS, Query, Route, add_routes
from appliance.web.schedules import SCHEDULE_ROUTES, SCHEDULES, ScheduleControl
from appliance.web.submit import Submit
from appliance.web.treepicture import tree_picture
from appliance.web.views import JobAccepted, JobView

__all__ = ["API_ROUTES", "RUNTIME", "SUBMIT", "Submit", "errors_as_json", "make_api"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS: list[tuple[type[ApplianceError], int]] = [
    (NoConfidentMatch, 422),
    (BadEvent, 400),
    (BadCommand, 400),
    (UnknownJob, 404),
    (UnknownDevice, 404),
    (UnknownTask, 404),
    (UnknownSchedule, 404),
    (UnknownAction, 404),
    (ActionNotAllowed, 409),
    (ActionFailed, 502),
    (UnknownAgentType, 404),
    (OutOfScope, 403),
    (EventNotAllowed, 403),
    (EventNotAccepted, 422),
    (InboxFull, 429),
    (RuntimeStopped, 503),
    (NotSignedIn, 401),
    (CsrfRejected, 403),
    (BadRequestBody, 400),
    (WrongPassword, 403),
    (TooManyAttempts, 429),
    (ActionRefused, 409),
]


# "Has a character that is not a space", spelt so that Python's and ECMAScript's regexes
# (the schema's readers, schemathesis among them) agree: their ideas of \s differ.
Command = Annotated[
    str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"[^\s\x1c-\x1f\x85\ufeff]")
]
"""A command in plain words: something other than blanks (checked as it is decoded)."""


class JobRequest(msgspec.Struct, forbid_unknown_fields=True):
    command: Command
    agent_type: Annotated[str, msgspec.Meta(max_length=100)] | None = None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """ApplianceError becomes a JSON 4xx; anything else is a 500, logged once here."""
    try:
        return await handler(request)
    except ApplianceError as err:
        status = next((code for cls, code in _STATUS if isinstance(err, cls)), 400)
        response = json_response({"error": type(err).__name__, "message": str(err)}, status)
        if isinstance(err, TooManyAttempts):
            response.headers["Retry-After"] = str(err.retry_after)
        return response
    except web.HTTPClientError as err:  # aiohttp's own refusals (413, 404, 405) as JSON too
        response = json_response(
            {"error": type(err).__name__.removeprefix("HTTP"), "message": err.reason}, err.status
        )
        for name in ("Allow", "Retry-After"):
            if name in err.headers:
                response.headers[name] = err.headers[name]
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_response(
            {"error": "InternalError", "message": "internal error; see the log"}, 500
        )


async def read_body(request: web.Request, type_: type[T]) -> T:
    """The request body decoded to ``type_``, or BadEvent (400) saying what is wrong."""
    body = await request.read()
    try:
        with decoding("request body"):
            return msgspec.json.decode(body, type=type_)
    except msgspec.DecodeError as err:
        raise BadEvent(f"bad request body: {err}") from None


async def post_job(request: web.Request) -> web.Response:
    body: JobRequest = await read_body(request, JobRequest)
    if not body.command.strip():
        raise BadCommand("command is empty")
    submitted = await request.app[SUBMIT](body.command, body.agent_type)
    job, root, route = submitted
    await request.app[RUNTIME].commit()  # accepted means on disk: a power cut keeps the job
    plan = getattr(submitted, "plan", None)
    schedule = getattr(submitted, "schedule", None)
    accepted = JobAccepted(
        job_id=job.job_id,
        command_id=job.command_id,
        task_id=root.task_id,
        agent_type=root.agent_type,
        # the router's decision and the planner's plan (None when the agent type was named),
        # and any schedule made: their own Structs, as the JSON objects they encode to
        route=msgspec.to_builtins(route) if route is not None else None,
        plan=msgspec.to_builtins(plan) if plan is not None else None,
        schedule=schedule,
    )
    return json_response(accepted, 202)


async def list_jobs(request: web.Request) -> web.Response:
    return json_response(await request.app[RUNTIME].graph.jobs())


async def get_job(request: web.Request) -> web.Response:
    """The job and its root task's outcome; ``?wait=S`` waits up to S seconds for the end."""
    runtime = request.app[RUNTIME]
    job_id = request.match_info["job_id"]
    tree = await runtime.graph.tree(job_id)
    try:
        wait = min(float(request.query.get("wait", "0")), 3600.0)
    except ValueError:
        raise BadCommand("wait must be a number of seconds") from None
    roots = tree.roots
    if wait > 0 and roots and roots[0].status == "running":
        try:
            async with asyncio.timeout(wait):
                await runtime.wait_task(TaskRef(roots[0].agent_type, roots[0].task_id))
        except TimeoutError:
            pass
        tree = await runtime.graph.tree(job_id)
    return json_response(await job_view(runtime, tree))


async def job_view(runtime: Runtime, tree: JobTree) -> JobView:
    root = tree.roots[0] if tree.roots else None
    return JobView(
        job_id=tree.job_id,
        command=tree.command,
        autonomous=tree.autonomous,
        status=root.status if root else "running",
        outcome=outcome(tree),
        result=root.result if root else None,
        detail=root.detail if root else "",
        tasks=len(tree.tasks),
        triggered_by=await runtime.graph.trigger(tree.job_id) if tree.autonomous else None,
    )


async def get_tree(request: web.Request) -> web.Response:
    tree = await request.app[RUNTIME].graph.tree(request.match_info["job_id"])
    return json_response(
        {"text": render_tree(tree, with_status="status" in request.query), "tasks": tree.tasks}
    )


async def get_tree_svg(request: web.Request) -> web.Response:
    """The job's tree as a picture: one box per task, coloured by status, linked to it."""
    tree = await request.app[RUNTIME].graph.tree(request.match_info["job_id"])
    svg = environment().get_template("web/tree.svg").render(tree=tree, picture=tree_picture(tree))
    return web.Response(
        text=svg, content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


async def get_chain(request: web.Request) -> web.Response:
    """A task and every ancestor up to the command that caused it, the task first."""
    tree, chain = await request.app[RUNTIME].graph.chain(request.match_info["task_id"])
    return json_response(
        {
            "job_id": tree.job_id,
            "command": tree.command,
            "autonomous": tree.autonomous,
            "chain": chain,
            "text": render_chain(chain, tree.command),
        }
    )


async def job_events(request: web.Request) -> web.StreamResponse:
    """The job's events as NDJSON until its root task ends: first what the graph already
    holds (so a late client sees the whole job), then live events, each told once."""
    runtime = request.app[RUNTIME]
    job_id = request.match_info["job_id"]
    with runtime.watch(job_id=job_id) as watch:  # watch first: no event slips between
        tree = await runtime.graph.tree(job_id)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        told: set[tuple[str, str]] = set()
        for node in tree.tasks:
            for rec in node.records():
                told.add(_key(rec))
                await response.write(msgspec.json.encode(rec) + b"\n")
        root = tree.roots[0] if tree.roots else None
        if root is not None and root.status == "running":
            async for env in watch:
                ev = env.event
                if _key(ev) not in told:
                    await response.write(msgspec.json.encode(ev) + b"\n")
                if isinstance(ev, TaskStatusChanged) and ev.task_id == root.task_id:
                    break
    await response.write_eof()
    return response


def _key(ev: Event) -> tuple[str, str]:
    if isinstance(ev, TaskSpawned):
        return ("spawned", ev.task_id)
    if isinstance(ev, TaskStatusChanged):
        return ("ended", ev.task_id)
    return ("", "")


class HealthView(msgspec.Struct, frozen=True):
    health: str  # "ok", "degraded" (an instance is failing now), "failed" (a type stopped)


def overall_health(runtime: Runtime) -> str:
    if runtime.failed_types():
        return "failed"
    return "degraded" if any(i.fault for i in runtime.instances()) else "ok"


async def get_health(request: web.Request) -> web.Response:
    """One word, cheap: what the update's health gate polls before it commits a new slot."""
    return json_response(HealthView(overall_health(request.app[RUNTIME])))


async def list_agents(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return json_response(
        [
            {
                "name": cls.name,
                "description": cls.description,
                "capabilities": list(cls.capabilities),
                "accepts": accepted_kinds(cls),
                "instances": runtime.instances(cls.name),
            }
            for cls in runtime.agent_types
        ]
    )


async def post_event(request: web.Request) -> web.Response:
    """Deliver one typed event envelope; decoded by the runtime's one decoder, and only of
    a kind a client may send (``Runtime.client_kinds``)."""
    runtime = request.app[RUNTIME]
    body = await request.read()
    with decoding("event envelope"):
        envelope = runtime.decode_envelope(body)
    runtime.deliver(envelope)
    return json_response({"accepted": True}, 202)


_WAIT = Query("wait", {"type": "number", "minimum": 0, "maximum": 5})
_FORMAT = Query("format", {"type": "string", "enum": list(FORMAT_NAMES)})
_JOB = "/api/v1/jobs/{job_id}"

API_ROUTES = (
    Route(
        "POST",
        "/api/v1/jobs",
        post_job,
        "Submit a command as a new job (the router picks the agent type unless named)",
        ok=202,
        returns=JobAccepted,
        errors=(400, 403, 404, 422, 429, 503),
        body=JobRequest,
    ),
    Route("GET", "/api/v1/jobs", list_jobs, "Recent jobs, newest first", returns=OBJECTS),
    Route(
        "GET",
        _JOB,
        get_job,
        "A job, its root task's end and the job's outcome; ?wait=S waits up to S s for the end",
        returns=JobView,
        errors=(400, 404),
        query=(_WAIT,),
    ),
    Route(
        "GET",
        _JOB + "/tree",
        get_tree,
        "The job's task tree as data and text",
        returns=OBJECT,
        errors=(404,),
    ),
    Route(
        "GET",
        _JOB + "/tree.svg",
        get_tree_svg,
        "The job's task tree as a picture",
        returns={"type": "string"},
        errors=(404,),
        media=("image/svg+xml",),
    ),
    Route(
        "GET",
        _JOB + "/events",
        job_events,
        "The job's events, one JSON object a line, until its root task ends",
        returns={"type": "string"},
        errors=(404,),
        media=("application/x-ndjson",),
    ),
    Route(
        "GET",
        _JOB + "/report",
        get_report,
        "The job's findings report (worst first, new and resolved since the last job on the "
        "same targets, failed steps), as a download in the format asked",
        returns=JobReport,
        errors=(400, 404),
        query=(_FORMAT,),
        media=(JSON, "text/markdown", "text/csv", "text/html"),
    ),
    Route(
        "GET",
        "/api/v1/tasks/{task_id}/chain",
        get_chain,
        "A task and its ancestors back to the command",
        returns=OBJECT,
        errors=(404,),
    ),
    Route(
        "GET",
        "/api/v1/health",
        get_health,
        "The appliance's health in one word: ok, degraded (an instance is failing now) or "
        "failed (an agent type was stopped after repeated crashes)",
        returns=HealthView,
    ),
    Route(
        "GET",
        "/api/v1/agents",
        list_agents,
        "Registered agent types and their live instances",
        returns=OBJECTS,
    ),
    Route(
        "POST",
        "/api/v1/events",
        post_event,
        "Deliver one typed event envelope to an instance (only kinds a client may send)",
        ok=202,
        returns=OBJECT,
        errors=(400, 403, 404, 422, 429, 503),
        body=Envelope[dict[str, Any]],  # its event: of a kind some registered type accepts
    ),
)
"""The API both surfaces serve: the control socket and the panel."""


def make_api(
    runtime: Runtime, submit: Submit, schedules: ScheduleControl | None = None
) -> web.Application:
    """The control socket's app: the API with no session (the socket is owner-only)."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=1024 * 1024)
    app[SCHEDULES] = schedules
    app[RUNTIME] = runtime
    app[SUBMIT] = submit
    add_routes(app, API_ROUTES + SCHEDULE_ROUTES)
    return app

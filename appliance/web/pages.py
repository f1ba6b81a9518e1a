"""The panel's pages, rendered on the server from ``templates/``: overview, jobs, a job, a
task, submit, live events, settings. Actions on them are small forms that ``static/panel.js``
sends to the JSON API (with the CSRF token), so every operation has one implementation: the
API's."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from appliance.reports import FORMATS, JobReport, outcome
from appliance.reports.model import VERDICT_TEXT
from appliance.reports.render_json import render_json
from appliance.runtime import JobTree, render_tree
from appliance.web.home import job_row
from appliance.web.keys import ACTIVITY, DEVICE, FAILED_EXTENSIONS, ROUTER, RUNTIME, SCOPE
from appliance.web.overview import build_status
from appliance.web.render import render
from appliance.web.reports import job_report
from appliance.web.routes import Route
from appliance.web.schedules import SCHEDULES
from appliance.web.treepicture import tree_picture

JOBS_LISTED = 50
_LABELS = {"html": "HTML", "md": "Markdown", "csv": "CSV", "json": "JSON"}
DOWNLOADS = [(fmt, _LABELS[fmt]) for fmt in FORMATS]
EVENT_FILTERS = [
    ("job_id", "Job"),
    ("agent_type", "Agent type"),
    ("task_id", "Task"),
    ("kinds", "Kinds"),
]


async def system(request: web.Request) -> web.Response:
    """The internals: agent types, pools, instances, the board, the router."""
    app = request.app
    failed = app.get(FAILED_EXTENSIONS)
    status = build_status(app[RUNTIME], app[ACTIVITY], app[ROUTER], app[DEVICE], failed)
    return render(request, "system.html", "System", active="/system", s=status)


async def jobs(request: web.Request) -> web.Response:
    trees = await request.app[RUNTIME].graph.recent_trees(JOBS_LISTED)
    rows = [job_row(t) for t in trees]
    return render(request, "jobs.html", "Jobs", active="/jobs", jobs=rows)


async def job(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    tree = await runtime.graph.tree(request.match_info["job_id"])
    schedules = request.app.get(SCHEDULES)  # a schedule's firing: which, made by whom
    fired = await schedules.cause(tree.job_id) if schedules is not None else None
    # an agent started it on its own: which task, after what
    trigger = await runtime.graph.trigger(tree.job_id) if tree.autonomous else None
    root = tree.roots[0] if tree.roots else None
    return render(
        request,
        "job.html",
        f"Job {tree.job_id}",
        active="/jobs",
        tree=tree,
        job_status=root.status if root else "running",
        job_outcome=outcome(tree),
        fired=fired,
        trigger=trigger,
        slices=_slices(tree),
        picture=tree_picture(tree),
        tree_text=render_tree(tree, with_status=True),
        live_query=urlencode({"job_id": tree.job_id}),
        **_findings(await job_report(runtime, tree.job_id)),
    )


def _findings(report: JobReport) -> dict[str, Any]:
    return {
        "report": report,
        "counts": ", ".join(f"{n} {severity}" for severity, n in report.counts().items()),
        "downloads": DOWNLOADS,
        "verdict_text": VERDICT_TEXT[report.verdict],
        "report_json": render_json(report).decode(),
    }


def _slices(tree: JobTree) -> list[dict[str, Any]]:
    """How a large scan was split over the collectors' pool: per pool instance, the slices it
    took, their hosts and seconds (a scan's ``chunks``, as its result records them)."""
    scans = []
    for node in tree.tasks:
        chunks = node.result.get("chunks") if isinstance(node.result, dict) else None
        if not chunks:
            continue
        by_worker: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks:
            by_worker.setdefault(str(chunk["worker"]), []).append(chunk)
        workers = [
            {
                "worker": worker,
                "slices": len(done),
                "hosts": sum(c["hosts_probed"] for c in done),
                "seconds": sum(c["seconds"] for c in done),
            }
            for worker, done in sorted(by_worker.items(), key=lambda kv: -len(kv[1]))
        ]
        target = str(node.result.get("target", ""))
        scans.append(
            {
                "target": target,
                "count": len(chunks),
                "workers": workers,
                "agent_type": node.agent_type,
            }
        )
    return scans


async def task(request: web.Request) -> web.Response:
    tree, chain = await request.app[RUNTIME].graph.chain(request.match_info["task_id"])
    return render(
        request,
        "task.html",
        f"Task {chain[0].task_id}",
        active="/jobs",
        tree=tree,
        chain=chain,
        live_query=urlencode({"task_id": chain[0].task_id}),
    )


async def submit(request: web.Request) -> web.Response:
    types = request.app[RUNTIME].startable_types()
    return render(request, "submit.html", "Submit a command", active="/submit", types=types)


async def events(request: web.Request) -> web.Response:
    q = request.query
    kept = ("job_id", "agent_type", "task_id", "kinds", "traffic")
    query = urlencode([(k, v) for k, v in q.items() if k in kept and v])
    return render(
        request,
        "events.html",
        "Live events",
        active="/events",
        filters=EVENT_FILTERS,
        query=q,
        live_query=query,
    )


async def settings(request: web.Request) -> web.Response:
    scope = request.app[SCOPE]
    networks = scope.get() if scope is not None else None
    return render(request, "settings.html", "Settings", active="/settings", scope=networks)


PAGE_ROUTES = (
    Route("GET", "/system", system),
    Route("GET", "/jobs", jobs),
    Route("GET", "/jobs/{job_id}", job),
    Route("GET", "/tasks/{task_id}", task),
    Route("GET", "/submit", submit),
    Route("GET", "/events", events),
    Route("GET", "/settings", settings),
)

"""The panel's pages, rendered on the server: overview, jobs, a job, a task, submit, live
events, settings. Actions on them are small forms that ``static/panel.js`` sends to the JSON
API (with the CSRF token), so every operation has one implementation: the API's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from appliance.runtime import JobTree, TaskNode, render_tree
from appliance.web.auth import SESSION
from appliance.web.findings import findings_section
from appliance.web.keys import ACTIVITY, DEVICE, FAILED_EXTENSIONS, PROVIDER, RUNTIME, SCOPE
from appliance.web.layout import e, notice, page, table
from appliance.web.overview import StatusView, build_status
from appliance.web.reports import job_report
from appliance.web.routes import Route
from appliance.web.schedules import started_by
from appliance.web.treesvg import tree_svg


def _html(request: web.Request, title: str, body: str, active: str = "") -> web.Response:
    return web.Response(
        text=page(title, body, csrf=request[SESSION].csrf, active=active),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _badge(status: str) -> str:
    return f'<span class="badge {e(status)}">{e(status)}</span>'


def _task_link(task_id: str, text: str | None = None) -> str:
    return f'<a href="/tasks/{e(task_id)}">{e(text or task_id)}</a>'


def _job_link(job_id: str) -> str:
    return f'<a href="/jobs/{e(job_id)}">{e(job_id)}</a>'


def _api_form(
    api: str,
    fields: str,
    button: str,
    *,
    method: str = "POST",
    reload: bool = True,
    confirm: str = "",
    cls: str = "inline",
) -> str:
    """A form that panel.js sends to the JSON API; the page reloads to show the result."""
    extra = (' data-reload="1"' if reload else "") + (
        f' data-confirm="{e(confirm)}"' if confirm else ""
    )
    return (
        f'<form class="{cls}" data-api="{e(api)}" data-method="{e(method)}"{extra}>{fields}'
        f'<button type="submit">{e(button)}</button><output class="result"></output></form>'
    )


# -- overview -----------------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    app = request.app
    failed = app.get(FAILED_EXTENSIONS)
    status = build_status(app[RUNTIME], app[ACTIVITY], app[PROVIDER], app[DEVICE], failed)
    return _html(request, "Overview", _overview_body(status), "/")


def _overview_body(s: StatusView) -> str:
    facts = (
        f'<dl class="facts"><dt>Health</dt><dd id="health">{_badge(s.health)}</dd>'
        f"<dt>Runtime</dt><dd>{'busy' if s.busy else 'idle'} · {s.handled} events handled · "
        f"{s.crashed} handler crashes</dd>"
        f'<dt>Router</dt><dd id="router-provider">{e(s.router_provider)}</dd></dl>'
    )
    if s.failed_types:
        facts += notice(
            "Failed agent types: " + "; ".join(f"{k}: {v}" for k, v in s.failed_types.items())
        )
    if s.failed_extensions:  # the rest started; these did not (qey extension list)
        facts += notice(
            "Extensions that failed to load: "
            + "; ".join(f"{k}: {v}" for k, v in s.failed_extensions.items())
        )
    type_rows = [
        [
            e(t.name),
            _badge(t.health),
            str(t.instances),
            str(t.busy),
            _api_form(
                f"/api/v1/pools/{t.name}",
                f'<input type="number" name="size" value="{t.pool_size}" min="{t.pool_min}" '
                f'max="{t.pool_max}" aria-label="pool size of {e(t.name)}">',
                "Scale",
                method="PUT",
            )
            + f"<small>{t.pool_size} now ({t.pool_min}-{t.pool_max})</small>",
            str(t.restarts),
            str(t.crashes),
            (
                e(t.failed) + _api_form(f"/api/v1/agent-types/{t.name}/reset", "", "Reset")
                if t.failed
                else "—"
            ),
        ]
        for t in s.types
    ]
    types = table(
        ["Agent type", "Health", "Instances", "Busy", "Pool", "Restarts", "Crashes", "Failed"],
        type_rows,
        id_="types",
    )
    inst_rows = [
        [
            _task_link(i.task_id, f"{i.agent_type}/{i.task_id}"),
            _job_link(i.job_id),
            e(i.objective),
            _badge(i.status),
            f"{i.inflight} / {i.queued}",
            str(i.handled),
            str(i.generation),
            "pool" if i.pooled else "",
            _api_form(
                f"/api/v1/instances/{i.task_id}/restart",
                "",
                "Restart",
                confirm=f"Restart {i.agent_type}/{i.task_id}?",
            ),
        ]
        for i in s.instances
    ]
    instances = (
        table(
            [
                "Instance",
                "Job",
                "Objective",
                "Status",
                "In flight / queued",
                "Handled",
                "Restarts",
                "",
                "",
            ],
            inst_rows,
            id_="instances",
        )
        if inst_rows
        else "<p>No live instances.</p>"
    )
    return (
        facts
        + "<h2>Agent types</h2>"
        + types
        + "<h2>Instances</h2>"
        + instances
        + "<h2>Board</h2>"
        + _device(s)
    )


def _device(s: StatusView) -> str:
    d = s.device
    if d is None:
        return "<p>No board information.</p>"
    text = (
        "".join(f"<div>{e(line)}</div>" for line in d.display_text) or "<div>(nothing shown)</div>"
    )
    return (
        f'<dl class="facts" id="device"><dt>Board</dt><dd>{e(d.board)}'
        f"{' (simulated)' if d.simulated else ''}</dd>"
        f'<dt>Status LEDs</dt><dd><span class="led {e(d.leds)}"></span> {e(d.leds)} '
        f"(load {d.load})</dd>"
        f"<dt>Display</dt><dd>{'connected' if d.display_connected else 'not connected'} · "
        f"{d.display_frames_sent} frames sent</dd>"
        f"<dt>Storage</dt><dd>root {'read-only' if d.root_read_only else 'writable'} · "
        f"{d.data_free_bytes / 2**30:.1f} GiB free for data</dd></dl>"
        f'<div class="display" id="display-text">{text}</div>'
        '<img class="display-png" src="/api/v1/device/display.png" alt="" data-hide-on-error="1">'
    )


# -- jobs ---------------------------------------------------------------------------------


async def jobs(request: web.Request) -> web.Response:
    rows = [
        [
            _job_link(j["job_id"]),
            e(j["command"]) + (" <small>(autonomous)</small>" if j["autonomous"] else ""),
            e(_when(j["created_at"])),
        ]
        for j in await request.app[RUNTIME].graph.jobs(100)
    ]
    body = table(["Job", "Command", "Started"], rows, id_="jobs") if rows else "<p>No jobs yet.</p>"
    return _html(request, "Jobs", body, "/jobs")


async def job(request: web.Request) -> web.Response:
    tree = await request.app[RUNTIME].graph.tree(request.match_info["job_id"])
    cause = await started_by(request, tree.job_id)  # a schedule's firing: which, made by whom
    trigger = await request.app[RUNTIME].graph.trigger(tree.job_id) if tree.autonomous else None
    if trigger is not None:  # an agent started it on its own: which task, after what
        cause += (
            f'<p id="started-by">Started by {e(trigger.by_agent)} (job '
            f"{_job_link(trigger.by_job_id)}) after <code>{e(trigger.because)}</code>.</p>"
        )
    report = findings_section(await job_report(request.app[RUNTIME], tree.job_id))
    return _html(request, f"Job {tree.job_id}", cause + _job_body(tree, report), "/jobs")


def _job_body(tree: JobTree, report: str = "") -> str:
    root = tree.roots[0] if tree.roots else None
    status = root.status if root else "running"
    head = (
        f'<dl class="facts" data-job="{e(tree.job_id)}">'
        f"<dt>{'Trigger' if tree.autonomous else 'Command'}</dt>"
        f'<dd id="command">{e(tree.command)}</dd>'
        f'<dt>Status</dt><dd id="job-status">{_badge(status)}</dd>'
        f"<dt>Started</dt><dd>{e(_when(tree.created_at))}</dd></dl>"
    )
    if status == "running":
        head += _api_form(
            f"/api/v1/jobs/{tree.job_id}/cancel", "", "Cancel job", confirm="Cancel this job?"
        )
    rows = [
        [
            _task_link(n.task_id),
            e(n.agent_type),
            e(n.objective),
            _badge(n.status),
            e(n.detail),
            f"<code>{e(_summary(n.result))}</code>",
        ]
        for n in tree.tasks
    ]
    return (
        head
        + report
        + _slices(tree)
        + '<h2>Task tree</h2><div id="tree" class="tree-box" data-tree-src="/api/v1/jobs/'
        + e(tree.job_id)
        + '/tree.svg">'
        + tree_svg(tree)
        + "</div>"
        + '<details><summary>As text</summary><pre id="tree-text">'
        + e(render_tree(tree, with_status=True))
        + "</pre></details>"
        + "<h2>Tasks</h2>"
        + table(
            ["Task", "Agent type", "Objective", "Status", "Detail", "Result"], rows, id_="tasks"
        )
        + _live_box(urlencode({"job_id": tree.job_id}), follow_tree=True)
    )


def _slices(tree: JobTree) -> str:
    """How a large scan was split over the collectors' pool: per pool instance, the slices it
    took, their hosts and seconds (a scan's ``chunks``, as its result records them)."""
    sections = []
    for node in tree.tasks:
        chunks = node.result.get("chunks") if isinstance(node.result, dict) else None
        if not chunks:
            continue
        by_worker: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks:
            by_worker.setdefault(str(chunk["worker"]), []).append(chunk)
        rows = [
            [
                _task_link(worker),
                str(len(done)),
                f"{sum(c['hosts_probed'] for c in done):,}",
                f"{sum(c['seconds'] for c in done):.1f}",
            ]
            for worker, done in sorted(by_worker.items(), key=lambda kv: -len(kv[1]))
        ]
        sections.append(
            f"<p>{e(str(node.result.get('target', '')))}: {len(chunks)} slices over "
            f"{len(by_worker)} instances of the {e(node.agent_type)} pool.</p>"
            + table(["Pool instance", "Slices", "Hosts", "Seconds"], rows, id_="slices")
        )
    return "<h2>Scan slices</h2>" + "".join(sections) if sections else ""


def _summary(result: object, limit: int = 120) -> str:
    if result is None:
        return ""
    text = json.dumps(result, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _live_box(query: str, *, follow_tree: bool = False) -> str:
    attrs = f'data-live="{e(query)}"' + (' data-follow-tree="1"' if follow_tree else "")
    return (
        f'<h2>Live events</h2><p class="live-state" id="live-state">connecting…</p>'
        f'<ol class="events" id="events" {attrs}></ol>'
    )


async def task(request: web.Request) -> web.Response:
    tree, chain = await request.app[RUNTIME].graph.chain(request.match_info["task_id"])
    node = chain[0]
    return _html(request, f"Task {node.task_id}", _task_body(tree, chain), "/jobs")


def _task_body(tree: JobTree, chain: list[TaskNode]) -> str:
    node = chain[0]
    steps = "".join(
        f"<li>{_task_link(n.task_id, f'{n.agent_type} ({n.task_id})')} — {e(n.objective)} "
        f"{_badge(n.status)}</li>"
        for n in chain
    )
    cause = "Autonomous" if tree.autonomous else "User command"
    result = msgspec.json.format(msgspec.json.encode(node.result), indent=2).decode()
    return (
        f'<dl class="facts"><dt>Agent type</dt><dd>{e(node.agent_type)}</dd>'
        f"<dt>Job</dt><dd>{_job_link(tree.job_id)}</dd>"
        f"<dt>Objective</dt><dd>{e(node.objective)}</dd>"
        f'<dt>Status</dt><dd id="task-status">{_badge(node.status)}</dd>'
        f"<dt>Detail</dt><dd>{e(node.detail) or '—'}</dd>"
        f"<dt>Spawned</dt><dd>{e(_when(node.created_at))}</dd></dl>"
        f'<h2>Result and findings</h2><pre id="result">{e(result)}</pre>'
        f'<h2>Chain back to the command</h2><ol class="chain" id="chain">{steps}'
        f"<li>{e(cause)}: “{e(tree.command)}”</li></ol>"
        + _live_box(urlencode({"task_id": node.task_id}))
    )


# -- submit, live events, settings ----------------------------------------------------------


async def submit(request: web.Request) -> web.Response:
    types = "".join(
        f'<option value="{e(name)}">{e(name)}</option>'
        for name in request.app[RUNTIME].startable_types()
    )
    body = (
        '<form id="submit-form" class="wide" data-api="/api/v1/jobs" data-method="POST" '
        'data-then="job">'
        '<label>Command <input name="command" id="command-input" required maxlength="2000" '
        'placeholder="analyze network security posture of 127.0.0.1"></label>'
        '<label>Agent type <select name="agent_type" id="agent-type">'
        f'<option value="">let the router pick</option>{types}</select></label>'
        '<button type="submit" data-api="/api/v1/route" data-then="" id="preview">'
        "Preview route</button>"
        '<button type="submit" data-api="/api/v1/plan" data-then="" id="preview-plan">'
        "Preview plan</button>"
        '<button type="submit" id="run">Run</button>'
        '<output class="result" id="decision"></output></form>'
    )
    return _html(request, "Submit a command", body, "/submit")


async def events(request: web.Request) -> web.Response:
    q = request.query
    fields = "".join(
        f'<label>{label} <input name="{name}" value="{e(q.get(name, ""))}"></label>'
        for name, label in (
            ("job_id", "Job"),
            ("agent_type", "Agent type"),
            ("task_id", "Task"),
            ("kinds", "Kinds"),
        )
    )
    traffic = " checked" if q.get("traffic") else ""
    form = (
        f'<form method="get" action="/events" class="filters">{fields}'
        f'<label><input type="checkbox" name="traffic" value="1"{traffic}> '
        "every delivered event</label>"
        '<button type="submit">Filter</button></form>'
    )
    query = urlencode(
        [
            (k, v)
            for k, v in q.items()
            if k in ("job_id", "agent_type", "task_id", "kinds", "traffic") and v
        ]
    )
    return _html(request, "Live events", form + _live_box(query), "/events")


async def settings(request: web.Request) -> web.Response:
    scope = request.app[SCOPE]
    scope_form = (
        _api_form(
            "/api/v1/scope",
            f'<label>Networks (comma-separated) <input name="scope" data-list="1" id="scope-input" '
            f'value="{e(", ".join(scope.get()))}" required></label>'
            '<label><input type="checkbox" name="confirm_large" id="scope-confirm-large"> '
            "allow large ranges (more than a /16 of IPv4 or a /64 of IPv6)</label>",
            "Save scope",
            method="PUT",
            cls="wide",
        )
        if scope is not None
        else "<p>The scope is not configurable here.</p>"
    )
    password_form = _api_form(
        "/api/v1/password",
        '<label>Current password <input type="password" name="current" '
        'autocomplete="current-password" required></label>'
        '<label>New password <input type="password" name="new" '
        'autocomplete="new-password" required minlength="10"></label>',
        "Change password",
        reload=False,
        cls="wide",
    )
    body = (
        "<h2>Scan scope</h2><p>The only addresses the agents may touch. Saved to "
        "config.toml and applied at once.</p>"
        + scope_form
        + "<h2>Admin password</h2><p>Changing it signs out every other session.</p>"
        + password_form
    )
    return _html(request, "Settings", body, "/settings")


PAGE_ROUTES = (
    Route("GET", "/", overview),
    Route("GET", "/jobs", jobs),
    Route("GET", "/jobs/{job_id}", job),
    Route("GET", "/tasks/{task_id}", task),
    Route("GET", "/submit", submit),
    Route("GET", "/events", events),
    Route("GET", "/settings", settings),
)

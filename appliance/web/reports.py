"""``GET /api/v1/jobs/{job_id}/report?format=json|md|csv|html``: a job's findings report,
the one both ``qey report`` and the panel's downloads fetch. Every answer carries a
Content-Disposition naming its file, so a browser saves it instead of showing it (the
HTML file's inline style would be refused by the panel's CSP anyway, and is meant to be
opened from disk)."""

from __future__ import annotations

from aiohttp import web

from appliance.errors import BadCommand
from appliance.reports import FORMAT_NAMES, FORMATS, JobReport, file_name, gather_report
from appliance.runtime import Runtime
from appliance.web.keys import RUNTIME


async def job_report(runtime: Runtime, job_id: str) -> JobReport:
    """The job's report from the running runtime's graph and knowledge (UnknownJob: 404)."""
    return await gather_report(runtime.graph, runtime.knowledge, job_id)


async def get_report(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise BadCommand(f"format must be one of {', '.join(FORMAT_NAMES)}, not {fmt!r}")
    job_id = request.match_info["job_id"]
    report = await job_report(request.app[RUNTIME], job_id)
    chosen = FORMATS[fmt]
    return web.Response(
        body=chosen.render(report),
        content_type=chosen.media_type,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{file_name(report.job_id, fmt)}"',
            "Cache-Control": "no-store",
        },
    )

"""The job page's findings: what was found, worst first, new and resolved ones marked,
what failed, the downloads, and the report's raw JSON one click away. The table is the
HTML report's own (``reports.render_html``), so the page and the download agree; it sits
in a box that scrolls sideways on a phone instead of the page."""

from __future__ import annotations

from urllib.parse import quote

from appliance.reports import FORMATS, JobReport
from appliance.reports.render_html import findings_html
from appliance.reports.render_json import render_json
from appliance.web.layout import e

_LABELS = {"html": "HTML", "md": "Markdown", "csv": "CSV", "json": "JSON"}


def findings_section(report: JobReport) -> str:
    counts = ", ".join(f"{n} {severity}" for severity, n in report.counts().items())
    base = f"/api/v1/jobs/{quote(report.job_id, safe='')}/report"
    downloads = " · ".join(
        f'<a href="{e(base)}?format={fmt}" download data-format="{fmt}">{_LABELS[fmt]}</a>'
        for fmt in FORMATS
    )
    return (
        f'<section id="report" class="report"><h2>Findings{f" ({e(counts)})" if counts else ""}'
        f'</h2><p class="downloads" id="report-downloads">Download the report: {downloads}</p>'
        f"{findings_html(report)}"
        '<details id="report-raw"><summary>Raw JSON</summary><pre>'
        f"{e(render_json(report).decode())}</pre></details></section>"
    )

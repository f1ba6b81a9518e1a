"""The report as HTML, from the templates in ``templates/``: ``report.html`` is a whole
self-contained file, and its ``findings.html`` part is what the panel's job page shows too,
so the page and the download agree. Escaped by the templates' autoescape."""

from __future__ import annotations

from appliance.reports.model import VERDICT_TEXT, JobReport
from appliance.templating import environment


def render_html(report: JobReport) -> bytes:
    template = environment().get_template("report/report.html")
    return (
        template.render(report=report, verdict_text=VERDICT_TEXT[report.verdict]) + "\n"
    ).encode()

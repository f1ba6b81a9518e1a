"""The report as CSV: one row per finding, the resolved ones too, for a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` or a tab would be read as a formula by
spreadsheet programs; such cells get a leading apostrophe (OWASP's advice), since a title
or a host name is text the appliance did not write itself.
"""

from __future__ import annotations

import csv
import io

from appliance.reports.model import JobReport, ReportFinding

COLUMNS = ["change", "severity", "host", "port", "service", "title", "advice", "recorded", "job_id"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: JobReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for f in report.findings:
        writer.writerow(_row(report, f, "new" if f.new else ""))
    for f in report.resolved:
        writer.writerow(_row(report, f, "resolved"))
    return out.getvalue().encode()


def _row(report: JobReport, f: ReportFinding, change: str) -> list[str]:
    cells = [
        change,
        f.severity,
        f.host,
        str(f.port),
        f.service,
        f.title,
        f.advice,
        "yes" if f.recorded else "",
        report.job_id,
    ]
    return [_safe(c) for c in cells]


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell

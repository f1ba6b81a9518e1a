"""The report as HTML: ``findings_html`` is the part the panel's job page shows too, and
``render_html`` a whole self-contained file (its style inline, nothing fetched from
anywhere: it is opened from disk, mailed, archived). Every text is escaped."""

from __future__ import annotations

from html import escape

from appliance.reports.model import VERDICT_TEXT, JobReport, ReportFinding, StepIssue
from appliance.reports.when import when

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1rem; color: #0f172a; max-width: 70rem; }
h1 { font-size: 1.3rem; overflow-wrap: anywhere; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.table-scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #cbd5e1; padding: .35rem .5rem; text-align: left;
         vertical-align: top; }
td.why, td.todo { min-width: 12rem; }
.sev { font-weight: 600; border-radius: .3rem; padding: 0 .35rem; white-space: nowrap; }
.sev-critical { background: #7f1d1d; color: #fff; } .sev-high { background: #dc2626; color: #fff; }
.sev-medium { background: #f59e0b; color: #111; } .sev-low { background: #e2e8f0; color: #111; }
.sev-info { background: #f1f5f9; color: #334155; }
.mark { font-size: .8em; font-weight: 700; border-radius: .3rem; padding: 0 .3rem; }
.mark-new { background: #dbeafe; color: #1e3a8a; }
.mark-resolved { background: #dcfce7; color: #14532d; }
.verdict-done { color: #166534; } .verdict-partial, .verdict-running { color: #92400e; }
.verdict-failed { color: #991b1b; }
"""


def render_html(report: JobReport) -> bytes:
    title = f"Findings report: {report.job_id}"
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>"
        f"{_facts(report)}{findings_html(report)}</body></html>\n"
    ).encode()


def _facts(report: JobReport) -> str:
    targets = ", ".join(report.targets) or "(none named)"
    return (
        f'<dl class="facts"><dt>{"Trigger" if report.autonomous else "Command"}</dt>'
        f"<dd>{_e(report.command)}</dd><dt>Started</dt><dd>{_e(when(report.created_at))}</dd>"
        f"<dt>Targets</dt><dd>{_e(targets)}</dd></dl>"
    )


def findings_html(report: JobReport) -> str:
    """The outcome, what failed, the findings worst first (new ones marked), what was
    resolved since the baseline, and what was skipped: escaped, classed for a style sheet."""
    parts = [
        f'<p class="verdict verdict-{_e(report.verdict)}" id="report-verdict">'
        f"{_e(VERDICT_TEXT[report.verdict])}</p>"
    ]
    parts.append(_issues("Steps that did not do what was asked", report.problems, "problems"))
    if report.baseline is not None:
        parts.append(
            f'<p class="baseline">Compared with {_e(report.baseline.job_id)} of '
            f"{_e(when(report.baseline.created_at))}: "
            f"{sum(f.new for f in report.findings)} new, {len(report.resolved)} resolved.</p>"
        )
    parts += [f'<p class="note">{_e(note)}</p>' for note in report.notes]
    if report.findings:
        parts.append(_table(report.findings, "findings", new_marks=report.baseline is not None))
    else:
        parts.append('<p id="findings-none">Nothing found.</p>')
    if report.resolved:
        parts.append("<h3>Resolved since the earlier job</h3>")
        parts.append(_table(report.resolved, "resolved", resolved=True))
    parts.append(_issues("Skipped steps", report.skipped, "skipped"))
    return "".join(parts)


def _table(
    findings: list[ReportFinding], id_: str, *, new_marks: bool = False, resolved: bool = False
) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("Severity", "Host", "Port", "Service", "Why", "What to do")
    )
    rows = "".join(_row(f, new_marks=new_marks, resolved=resolved) for f in findings)
    return (
        f'<div class="table-scroll"><table class="findings" id="{_e(id_)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _row(f: ReportFinding, *, new_marks: bool, resolved: bool) -> str:
    mark = ""
    if resolved:
        mark = ' <span class="mark mark-resolved">resolved</span>'
    elif new_marks and f.new:
        mark = ' <span class="mark mark-new">new</span>'
    change = "resolved" if resolved else "new" if new_marks and f.new else ""
    return (
        f'<tr class="finding" data-severity="{_e(f.severity)}" data-change="{change}">'
        f'<td><span class="sev sev-{_e(f.severity)}">{_e(f.severity)}</span>{mark}</td>'
        f"<td>{_e(f.host)}</td><td>{f.port}</td><td>{_e(f.service)}</td>"
        f'<td class="why">{_e(f.title)}</td><td class="todo">{_e(f.advice)}</td></tr>'
    )


def _issues(heading: str, issues: list[StepIssue], id_: str) -> str:
    if not issues:
        return ""
    items = "".join(
        f'<li><span class="status">{_e(i.status)}</span>: {_e(i.what)}: {_e(i.reason)}</li>'
        for i in issues
    )
    return f'<h3>{_e(heading)}</h3><ul class="issues" id="{_e(id_)}">{items}</ul>'


def _e(value: object) -> str:
    return escape(str(value), quote=True)

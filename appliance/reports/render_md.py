"""The report as Markdown: readable as plain text, and a table wherever it is rendered."""

from __future__ import annotations

from appliance.reports.model import VERDICT_TEXT, JobReport, ReportFinding, StepIssue
from appliance.templating import utc_time as when


def render_markdown(report: JobReport) -> bytes:
    lines = [
        f"# Findings report: {_md(report.job_id)}",
        "",
        f"- **{'Trigger' if report.autonomous else 'Command'}:** {_md(report.command)}",
        f"- **Started:** {when(report.created_at)}",
        f"- **Targets:** {_md(', '.join(report.targets)) or '(none named)'}",
        f"- **Outcome:** {VERDICT_TEXT[report.verdict]}",
    ]
    if report.baseline is not None:
        lines.append(
            f"- **Compared with:** {_md(report.baseline.job_id)} of "
            f"{when(report.baseline.created_at)}"
        )
    lines += [f"- {_md(note)}" for note in report.notes]
    lines += _issues("Steps that did not do what was asked", report.problems)
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts().items())
    lines += ["", f"## Findings ({counts or 'none'})", ""]
    lines += _table(report.findings, marks=report.baseline is not None) or ["Nothing found."]
    if report.resolved:
        lines += ["", "## Resolved since the earlier job", ""]
        lines += _table(report.resolved, marks=False)
    lines += _issues("Skipped steps", report.skipped)
    return ("\n".join(lines) + "\n").encode()


def _table(findings: list[ReportFinding], *, marks: bool) -> list[str]:
    if not findings:
        return []
    rows = [
        "| Severity | Host | Port | Service | Why | What to do |",
        "|---|---|---|---|---|---|",
    ]
    for f in findings:
        severity = f.severity + (" (new)" if marks and f.new else "")
        rows.append(
            f"| {severity} | {_md(f.host)} | {f.port} | {_md(f.service)} | {_md(f.title)} "
            f"| {_md(f.advice)} |"
        )
    return rows


def _issues(heading: str, issues: list[StepIssue]) -> list[str]:
    if not issues:
        return []
    return ["", f"## {heading}", ""] + [
        f"- **{i.status}:** {_md(i.what)}: {_md(i.reason)}" for i in issues
    ]


def _md(text: str) -> str:
    """Text that stays text: table pipes, emphasis and HTML characters escaped, one line."""
    out = " ".join(text.split())
    for ch in "\\`*_[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return out

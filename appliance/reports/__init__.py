"""A job's findings report: gathered from the graph into one typed record (``model``), and
rendered as Markdown, CSV, JSON or a self-contained HTML file. Depends on the runtime only."""

from appliance.reports.formats import FORMAT_NAMES, FORMATS, ReportFormat, file_name
from appliance.reports.gather import KnowledgeReader, gather_report, outcome
from appliance.reports.model import (
    Baseline,
    JobOutcome,
    JobReport,
    ReportFinding,
    StepIssue,
    Verdict,
)
from appliance.reports.render_json import decode_report

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "Baseline",
    "JobOutcome",
    "JobReport",
    "KnowledgeReader",
    "ReportFinding",
    "ReportFormat",
    "StepIssue",
    "Verdict",
    "decode_report",
    "file_name",
    "gather_report",
    "outcome",
]

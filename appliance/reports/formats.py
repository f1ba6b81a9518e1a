"""The report's formats by name: what the API's ``?format=`` and ``qey report --format`` take,
each with its media type and file extension (for the download's file name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias, get_args

import msgspec

from appliance.reports.model import JobReport
from appliance.reports.render_csv import render_csv
from appliance.reports.render_html import render_html
from appliance.reports.render_json import render_json
from appliance.reports.render_md import render_markdown

ReportFormat: TypeAlias = Literal["json", "md", "csv", "html"]
FORMAT_NAMES: tuple[str, ...] = get_args(ReportFormat)


class Format(msgspec.Struct, frozen=True):
    render: Callable[[JobReport], bytes]
    media_type: str
    extension: str


FORMATS: dict[str, Format] = {
    "json": Format(render_json, "application/json", "json"),
    "md": Format(render_markdown, "text/markdown", "md"),
    "csv": Format(render_csv, "text/csv", "csv"),
    "html": Format(render_html, "text/html", "html"),
}


def file_name(job_id: str, fmt: str) -> str:
    """The download's name: ``qey-report-JOB.EXT`` (job ids are letters, digits and ``-``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)
    return f"qey-report-{safe}.{FORMATS[fmt].extension}"

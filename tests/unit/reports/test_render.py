"""Each renderer on one report whose texts are hostile: CSV parses back, JSON decodes into
the typed record, HTML fetches nothing and escapes markup, Markdown keeps its table."""

from __future__ import annotations

import csv
import io
import re

import pytest

from appliance.reports import FORMATS, Baseline, JobReport, ReportFinding, StepIssue, file_name
from appliance.reports.render_csv import COLUMNS, render_csv
from appliance.reports.render_html import render_html
from appliance.reports.render_json import decode_report, render_json
from appliance.reports.render_md import render_markdown

pytestmark = pytest.mark.unit

HOSTILE = "<script>alert('x')</script> | *bold*"


@pytest.fixture
def report() -> JobReport:
    return JobReport(
        job_id="job-2",
        command="analyze network security posture of 127.0.0.1 & <b>",
        autonomous=False,
        created_at=1_700_000_000.0,
        status="done",
        verdict="partial",
        targets=["127.0.0.1", "127.0.0.0/16"],
        findings=[
            ReportFinding(
                severity="critical",
                host="127.0.0.1",
                port=23,
                service="telnet",
                title=HOSTILE,
                advice='=HYPERLINK("http://evil")',
                new=True,
                recorded=True,
            ),
            ReportFinding(
                severity="low",
                host="127.0.0.1",
                port=8080,
                service="unknown",
                title="Unexpected open port",
                advice="Close it.",
            ),
        ],
        resolved=[
            ReportFinding(
                severity="high",
                host="127.0.0.1",
                port=21,
                service="ftp",
                title="FTP sends credentials in clear text",
                advice="Replace FTP with SFTP.",
            )
        ],
        baseline=Baseline(job_id="job-1", command="same", created_at=1_699_990_000.0),
        problems=[
            StepIssue(
                what="data_collector: 127.0.0.0/16",
                status="refused",
                reason="refused: wider than allowed",
                task_id="t2",
            )
        ],
    )


def test_csv_parses_back_row_for_row(report: JobReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report).decode())))
    assert list(rows[0]) == COLUMNS
    assert [(r["change"], r["severity"], r["port"]) for r in rows] == [
        ("new", "critical", "23"),
        ("", "low", "8080"),
        ("resolved", "high", "21"),
    ]
    assert rows[0]["title"] == HOSTILE and rows[0]["recorded"] == "yes"
    assert rows[0]["advice"] == '\'=HYPERLINK("http://evil")'  # never a formula
    assert {r["job_id"] for r in rows} == {"job-2"}


def test_json_decodes_into_the_typed_report(report: JobReport) -> None:
    assert decode_report(render_json(report)) == report


def test_html_is_self_contained_and_escapes_every_text(report: JobReport) -> None:
    html = render_html(report).decode()
    assert html.startswith("<!doctype html>")
    assert not re.search(r"(?i)\b(src|href)\s*=|url\(|@import|<link|<script", html)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&amp; &lt;b&gt;" in html  # the command too
    assert html.count('class="finding"') == 3
    assert 'data-change="new"' in html and 'data-change="resolved"' in html
    assert "refused: wider than allowed" in html and "Partial" in html


def test_markdown_keeps_one_table_row_per_finding(report: JobReport) -> None:
    md = render_markdown(report).decode()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2 + 1 + 1  # two headers, two findings, one resolved
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 7 for row in rows)  # a | in a title is text
    assert "| critical (new) | 127.0.0.1 | 23 | telnet |" in md
    assert "\\<script\\>" in md and "<script>" not in md
    assert "**refused:** data\\_collector: 127.0.0.0/16" in md
    assert "Compared with:** job-2" not in md and "job-1" in md


def test_every_format_names_its_media_type_and_file(report: JobReport) -> None:
    assert sorted(FORMATS) == ["csv", "html", "json", "md"]
    assert file_name("job-2", "md") == "qey-report-job-2.md"
    assert file_name('job"\r\n', "csv") == "qey-report-job___.csv"
    for fmt in FORMATS.values():
        assert fmt.render(report)

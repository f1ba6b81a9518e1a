"""The findings report through the panel: the API's formats and refusals, and the job page's
findings table, escaped, worst first, with its downloads and the raw JSON."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.reports import decode_report
from appliance.runtime import Store
from tests.unit.reports.graphjobs import Jobs, finding

pytestmark = pytest.mark.unit

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
async def job_id(store: Store) -> str:
    jobs = Jobs(store)
    jobs.posture_job(
        "job-r1",
        100.0,
        ["127.0.0.1"],
        [finding("127.0.0.1", 22, "info"), finding("127.0.0.1", 23, "critical", HOSTILE)],
    )
    await store.flush()
    return "job-r1"


async def test_the_report_comes_in_each_format_as_a_download(
    client: TestClient[Any, Any], job_id: str
) -> None:
    resp = await client.get(f"/api/v1/jobs/{job_id}/report")
    assert resp.status == 200 and resp.content_type == "application/json"
    report = decode_report(await resp.read())
    assert [f.port for f in report.findings] == [23, 22]
    for fmt, media in (("md", "text/markdown"), ("csv", "text/csv"), ("html", "text/html")):
        resp = await client.get(f"/api/v1/jobs/{job_id}/report", params={"format": fmt})
        assert (resp.status, resp.content_type) == (200, media), fmt
        assert resp.headers["Content-Disposition"] == (
            f'attachment; filename="qey-report-{job_id}.{fmt}"'
        )


async def test_a_bad_format_or_an_unknown_job_is_refused(client: TestClient[Any, Any]) -> None:
    bad = await client.get("/api/v1/jobs/job-r1/report", params={"format": "pdf"})
    assert bad.status == 400 and "format must be one of json, md, csv, html" in await bad.text()
    missing = await client.get("/api/v1/jobs/job-nope/report")
    assert missing.status == 404 and (await missing.json())["error"] == "UnknownJob"


async def test_the_job_page_shows_the_findings_table_escaped(
    client: TestClient[Any, Any], job_id: str
) -> None:
    html = await (await client.get(f"/jobs/{job_id}")).text()
    table = html[
        html.index('<table class="findings"') : html.index("</table>", html.index('id="findings"'))
    ]
    assert table.index("critical") < table.index("info")  # worst first
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert f'href="/api/v1/jobs/{job_id}/report?format=csv" download' in html
    assert '<details id="report-raw"><summary>Raw JSON</summary>' in html
    assert '<div class="table-scroll">' in html

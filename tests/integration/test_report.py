"""The findings report of real posture jobs, against loopback ports this test opened: through
the running appliance's API and ``qey report``, and from the data directory once it stopped."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket

import aiohttp
import pytest

from appliance.reports import JobReport, decode_report
from appliance.settings import Settings
from tests.integration.processes import running_appliance
from tests.integration.test_cli import _write_config, qey

pytestmark = pytest.mark.integration


async def _fetch(settings: Settings, job_id: str, fmt: str) -> tuple[int, dict[str, str], bytes]:
    connector = aiohttp.UnixConnector(path=str(settings.control_socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://qey/api/v1/jobs/{job_id}/report", params={"format": fmt}) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def _posture(settings: Settings, ports: list[int]) -> str:
    command = f"analyze network security posture of 127.0.0.1 ports {','.join(map(str, ports))}"
    done = qey(settings, "submit", "--wait", "--json", command)
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "done", done.stderr
    return str(outcome["job_id"])


def test_a_second_scan_reports_what_is_new_and_what_was_resolved(
    settings: Settings, open_ports: list[int]
) -> None:
    high, other, _ = open_ports  # the settings' rules rate the first one high, the rest low
    closing = socket.socket()
    closing.bind(("127.0.0.1", 0))
    closing.listen()
    gone = closing.getsockname()[1]
    _write_config(settings)
    with running_appliance(settings):
        first = _posture(settings, [high, gone])
        closing.close()  # fixed before the second scan
        second = _posture(settings, [high, gone, other])

        status, headers, body = asyncio.run(_fetch(settings, second, "json"))
        assert status == 200, body
        assert headers["Content-Disposition"] == f'attachment; filename="qey-report-{second}.json"'
        report = decode_report(body)

        printed = qey(settings, "report", second, "--format", "json")
        assert printed.returncode == 0, printed.stderr
        assert decode_report(printed.stdout.encode()) == report

        out = settings.data_dir.parent / "report.csv"
        saved = qey(settings, "report", second, "--format", "csv", "--output", str(out))
        assert saved.returncode == 0, saved.stderr
        assert (out.stat().st_mode & 0o077) == 0

        missing = qey(settings, "report", "job-nope")
        assert missing.returncode == 1 and "no job 'job-nope'" in missing.stderr

    _check(report, first, high=high, other=other, gone=gone)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["change"], r["port"]) for r in rows] == [
        ("", str(high)),
        ("new", str(other)),
        ("resolved", str(gone)),
    ]
    offline = qey(settings, "report", second)  # no appliance now: read from the data directory
    assert offline.returncode == 0, offline.stderr
    assert f"- **Compared with:** {first}" in offline.stdout
    assert f"| low (new) | 127.0.0.1 | {other} |" in offline.stdout


def _check(report: JobReport, first: str, *, high: int, other: int, gone: int) -> None:
    assert report.verdict == "done" and report.problems == []
    assert report.targets == ["127.0.0.1"]
    assert report.baseline is not None and report.baseline.job_id == first
    assert [(f.port, f.severity, f.new) for f in report.findings] == [
        (high, "high", False),
        (other, "low", True),
    ]
    assert report.findings[0].recorded  # rated high: an executor put it in the job's report
    assert [(f.port, f.severity) for f in report.resolved] == [(gone, "low")]

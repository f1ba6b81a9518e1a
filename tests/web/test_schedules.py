"""Schedules on the panel: the API lists, pauses, resumes and deletes them (with the session's
CSRF token), and the Schedules page shows them escaped, with its buttons."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from appliance.events import ScheduleFired
from appliance.runtime import FakeClock, Runtime
from appliance.schedules.cadence import Daily, Every
from appliance.schedules.store import ScheduleRecord, Schedules
from appliance.web.credentials import Credentials
from appliance.web.schedules import ScheduleDetail
from appliance.web.sessions import CSRF_HEADER
from tests.web.conftest import PASSWORD, make_test_panel, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def schedules(runtime: Runtime, clock: FakeClock) -> Schedules:
    return Schedules(runtime.store, clock)


@pytest.fixture
async def panel(
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    schedules: Schedules,
    aiohttp_client: Any,
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(
        make_test_panel(runtime, credentials, clock, schedules=schedules)
    )
    assert await sign_in(client, PASSWORD) == 303
    return client


def _csrf(client: TestClient[Any, Any]) -> dict[str, str]:
    return {CSRF_HEADER: client.csrf}  # type: ignore[attr-defined]


async def test_the_list_reads_back_into_the_records(
    panel: TestClient[Any, Any], schedules: Schedules
) -> None:
    schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-a")
    schedules.add("check the nas", Daily(hour=2), job_id="job-b")
    resp = await panel.get("/api/v1/schedules")
    assert resp.status == 200
    listed = msgspec.json.decode(await resp.read(), type=list[ScheduleRecord])
    assert listed == schedules.list()
    assert [r.when for r in listed] == ["every hour", "daily at 02:00"]


async def test_pause_resume_and_delete(panel: TestClient[Any, Any], schedules: Schedules) -> None:
    made = schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-a")
    path = f"/api/v1/schedules/{made.id}"
    paused = await panel.post(f"{path}/pause", headers=_csrf(panel))
    assert paused.status == 200
    assert msgspec.json.decode(await paused.read(), type=ScheduleRecord).paused
    assert schedules.get(made.id).paused
    resumed = await panel.post(f"{path}/resume", headers=_csrf(panel))
    assert not msgspec.json.decode(await resumed.read(), type=ScheduleRecord).paused
    deleted = await panel.delete(path, headers=_csrf(panel))
    assert deleted.status == 204 and schedules.list() == []
    gone = await panel.get(path)
    assert gone.status == 404
    assert (await gone.json())["error"] == "UnknownSchedule"


async def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(
    panel: TestClient[Any, Any], schedules: Schedules
) -> None:
    made = schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-a")
    for method, path in (
        ("POST", f"/api/v1/schedules/{made.id}/pause"),
        ("DELETE", f"/api/v1/schedules/{made.id}"),
    ):
        resp = await panel.request(method, path)
        assert resp.status == 403, path
    assert schedules.list() == [made]


async def test_signed_out_sees_no_schedules(
    anon: TestClient[Any, Any], schedules: Schedules
) -> None:
    resp = await anon.get("/api/v1/schedules")
    assert resp.status == 401


async def test_an_unknown_schedule_is_404_for_every_action(panel: TestClient[Any, Any]) -> None:
    for method, path in (
        ("GET", "/api/v1/schedules/sched-00000000"),
        ("POST", "/api/v1/schedules/sched-00000000/pause"),
        ("POST", "/api/v1/schedules/sched-00000000/resume"),
        ("DELETE", "/api/v1/schedules/sched-00000000"),
    ):
        resp = await panel.request(method, path, headers=_csrf(panel))
        assert resp.status == 404, (method, path)
        assert (await resp.json())["error"] == "UnknownSchedule"


async def test_a_schedule_shows_the_jobs_its_firings_started(
    panel: TestClient[Any, Any], schedules: Schedules, runtime: Runtime
) -> None:
    made = schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-a")
    job, root = runtime.submit("scan 127.0.0.1", "echo", autonomous=True)
    runtime.record(
        ScheduleFired(
            job_id=job.job_id,
            task_id=root.task_id,
            agent_type=root.agent_type,
            schedule_id=made.id,
            created_by="job-a",
            command="scan 127.0.0.1",
        )
    )
    resp = await panel.get(f"/api/v1/schedules/{made.id}")
    detail = msgspec.json.decode(await resp.read(), type=ScheduleDetail)
    assert detail.schedule == made
    assert [(f.job_id, f.created_by) for f in detail.firings] == [(job.job_id, "job-a")]

    page = await (await panel.get(f"/jobs/{job.job_id}")).text()
    assert f'Started by schedule <a href="/schedules"><code>{made.id}</code>' in page
    assert 'made by job <a href="/jobs/job-a">job-a</a>' in page
    other, _ = runtime.submit("scan 127.0.0.1", "echo")
    assert "Started by schedule" not in await (await panel.get(f"/jobs/{other.job_id}")).text()


async def test_the_page_lists_schedules_escaped_with_their_buttons(
    panel: TestClient[Any, Any], schedules: Schedules
) -> None:
    made = schedules.add("scan <script>x</script>", Daily(hour=2), job_id="job-a")
    schedules.pause(made.id)
    html = await (await panel.get("/schedules")).text()
    assert "scan &lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert 'href="/schedules"' in html  # in the navigation
    assert f'data-api="/api/v1/schedules/{made.id}/resume"' in html  # paused: resume it
    assert 'data-method="DELETE"' in html and "daily at 02:00" in html


async def test_without_a_schedule_table_the_api_says_so(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/schedules")
    assert resp.status == 409
    assert "keeps no schedules" in (await resp.json())["message"]

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from appliance.events import Envelope, JobContext
from appliance.runtime import Runtime
from appliance.web.api import make_api
from tests.support import Add, Get

pytestmark = pytest.mark.unit


@pytest.fixture
async def client(runtime: Runtime, aiohttp_client: Any) -> TestClient[Any, Any]:
    async def submit(command: str, agent_type: str | None) -> Any:
        return (*runtime.submit(command, agent_type or "echo"), None)

    client: TestClient[Any, Any] = await aiohttp_client(make_api(runtime, submit))
    return client


async def test_a_job_is_submitted_and_its_outcome_read(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/v1/jobs", json={"command": "hello there"})
    assert resp.status == 202
    job = await resp.json()
    done = await (await client.get(f"/api/v1/jobs/{job['job_id']}?wait=5")).json()
    assert (done["status"], done["result"]) == ("done", "HELLO THERE")
    tree = await (await client.get(f"/api/v1/jobs/{job['job_id']}/tree")).json()
    assert tree["text"].startswith('User Command: "hello there"')


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "BadEvent"),
        (b'{"command": 3}', 400, "BadEvent"),
        (b'{"command": "x", "extra": 1}', 400, "BadEvent"),
        (b'{"command": "   "}', 400, "BadEvent"),  # refused as it is decoded
        (b'{"command": "x", "agent_type": "nope"}', 404, "UnknownAgentType"),
    ],
)
async def test_bad_job_requests_get_a_json_4xx_and_write_nothing(
    client: TestClient[Any, Any], runtime: Runtime, body: bytes, status: int, error: str
) -> None:
    resp = await client.post("/api/v1/jobs", data=body)
    assert resp.status == status
    assert (await resp.json())["error"] == error
    assert await runtime.graph.jobs() == []


async def test_typed_events_are_decoded_and_delivered(
    client: TestClient[Any, Any], runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    wire = msgspec.json.encode(Envelope(event=Add(by=3), job=job, target=ref))
    assert (await client.post("/api/v1/events", data=wire)).status == 202
    assert await runtime.request(ref, Get(), job=job) == 3


async def test_an_event_the_target_refuses_is_a_422(
    client: TestClient[Any, Any], runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("echo", job, "x")
    wire = msgspec.json.encode(Envelope(event=Add(by=3), job=job, target=ref))
    resp = await client.post("/api/v1/events", data=wire)
    assert resp.status == 422
    assert "does not accept 'test.add'" in (await resp.json())["message"]


async def test_unknown_job_is_a_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/jobs/job-nope")
    assert resp.status == 404 and (await resp.json())["error"] == "UnknownJob"

"""The admin operations through the JSON API, against the real runtime: status, route,
submit and follow a job, restart, scale, cancel, scope; bad input writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from appliance.events import JobContext
from appliance.runtime import Runtime
from appliance.web.openapi import openapi_document
from appliance.web.panel import PANEL_ROUTES
from tests.web.conftest import FakeScope

pytestmark = pytest.mark.unit


def h(client: TestClient[Any, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


async def test_status_shows_types_pools_health_board_and_router(
    client: TestClient[Any, Any], runtime: Runtime, job: JobContext
) -> None:
    runtime.add_to_pool("counter", job)
    status = await (await client.get("/api/v1/status")).json()
    assert status["router_provider"] == "CPUExecutionProvider"
    assert status["device"]["leds"] == "ready" and status["device"]["board"] == "sim"
    counter = next(t for t in status["types"] if t["name"] == "counter")
    assert (counter["pool_size"], counter["instances"], counter["health"]) == (1, 1, "ok")
    assert status["instances"][0]["agent_type"] == "counter"
    assert status["health"] == "ok" and status["failed_types"] == {}


async def test_a_route_preview_starts_nothing(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    resp = await client.post("/api/v1/route", json={"command": "say hi"}, headers=h(client))
    assert resp.status == 200
    assert (await resp.json())["agent_type"] == "echo"
    assert await runtime.graph.jobs() == []


async def test_a_submitted_job_is_drawn_and_chained(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/jobs", json={"command": "a b", "agent_type": "parent"}, headers=h(client)
    )
    job = await resp.json()
    done = await (await client.get(f"/api/v1/jobs/{job['job_id']}?wait=5")).json()
    assert done["status"] == "done" and done["result"] == ["A", "B"]
    svg = await (await client.get(f"/api/v1/jobs/{job['job_id']}/tree.svg")).text()
    assert svg.startswith("<svg") and svg.count('class="node"') == 3
    tree = await (await client.get(f"/api/v1/jobs/{job['job_id']}/tree")).json()
    leaf = next(t for t in tree["tasks"] if t["parent_task_id"])
    chain = await (await client.get(f"/api/v1/tasks/{leaf['task_id']}/chain")).json()
    assert [n["agent_type"] for n in chain["chain"]] == ["echo", "parent"]
    assert chain["command"] == "a b" and "User Command" in chain["text"]
    page = await (await client.get(f"/jobs/{job['job_id']}")).text()
    assert "<svg" in page and "Parent-1" in page
    task_page = await (await client.get(f"/tasks/{leaf['task_id']}")).text()
    assert "Chain back to the command" in task_page and "a b" in task_page


async def test_restart_an_instance(
    client: TestClient[Any, Any], runtime: Runtime, job: JobContext
) -> None:
    ref = runtime.spawn("counter", job, "count")
    before = runtime.instances("counter")[0].generation
    resp = await client.post(f"/api/v1/instances/{ref.task_id}/restart", headers=h(client))
    assert resp.status == 200 and (await resp.json())["generation"] == before + 1
    missing = await client.post("/api/v1/instances/task-nope/restart", headers=h(client))
    assert missing.status == 404


async def test_scale_a_pool_within_its_bounds(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    resp = await client.put("/api/v1/pools/counter", json={"size": 3}, headers=h(client))
    assert resp.status == 200 and (await resp.json())["size"] == 3
    assert len(runtime.pool_loads("counter")) == 3
    down = await client.put("/api/v1/pools/counter", json={"size": 1}, headers=h(client))
    assert (await down.json())["size"] == 1
    for body, status in (({"size": 99}, 400), ({"size": "2"}, 400), ({}, 400)):
        bad = await client.put("/api/v1/pools/counter", json=body, headers=h(client))
        assert bad.status == status, body
    assert len(runtime.pool_loads("counter")) == 1
    unknown = await client.put("/api/v1/pools/nope", json={"size": 2}, headers=h(client))
    assert unknown.status == 404


async def test_cancel_a_running_job(client: TestClient[Any, Any], runtime: Runtime) -> None:
    # a counter root has no start handler: the job runs until something stops it
    job = await (
        await client.post(
            "/api/v1/jobs", json={"command": "count", "agent_type": "counter"}, headers=h(client)
        )
    ).json()
    resp = await client.post(f"/api/v1/jobs/{job['job_id']}/cancel", headers=h(client))
    assert resp.status == 200 and (await resp.json())["stopped"] == [job["task_id"]]
    state = await (await client.get(f"/api/v1/jobs/{job['job_id']}")).json()
    assert state["status"] == "cancelled"
    again = await client.post(f"/api/v1/jobs/{job['job_id']}/cancel", headers=h(client))
    assert again.status == 409
    unknown = await client.post("/api/v1/jobs/job-nope/cancel", headers=h(client))
    assert unknown.status == 404


async def test_change_the_scope(client: TestClient[Any, Any], scope: FakeScope) -> None:
    assert (await (await client.get("/api/v1/scope")).json())["scope"] == ["127.0.0.1/32"]
    resp = await client.put("/api/v1/scope", json={"scope": ["127.0.0.0/29"]}, headers=h(client))
    assert (await resp.json())["scope"] == ["127.0.0.0/29"]
    for body in ({"scope": ["not a network"]}, {"scope": []}, {"scope": "127.0.0.1"}, b"{"):
        kw = {"data": body} if isinstance(body, bytes) else {"json": body}
        bad = await client.put("/api/v1/scope", headers=h(client), **kw)
        assert bad.status == 400, body
    assert scope.networks == ["127.0.0.0/29"]  # the bad ones changed nothing


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("0.0.0.0/0", "this host"),
        ("::/0", "unspecified"),
        ("0.0.0.0/32", "this host"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
    ],
)
async def test_a_scope_of_addresses_that_are_not_hosts_is_refused(
    client: TestClient[Any, Any], scope: FakeScope, entry: str, why: str
) -> None:
    body = {"scope": ["127.0.0.1", entry], "confirm_large": True}
    resp = await client.put("/api/v1/scope", json=body, headers=h(client))
    assert resp.status == 400
    refusal = await resp.json()
    assert refusal["error"] == "BadCommand"
    assert repr(entry) in refusal["message"] and why in refusal["message"]
    assert scope.networks == ["127.0.0.1/32"]


async def test_a_large_scope_needs_confirming_and_duplicates_collapse(
    client: TestClient[Any, Any], scope: FakeScope
) -> None:
    wide = {"scope": ["127.0.0.1", "10.0.0.0/8", "127.0.0.1/32"]}
    refused = await client.put("/api/v1/scope", json=wide, headers=h(client))
    assert refused.status == 400 and "confirm_large" in (await refused.json())["message"]
    assert scope.networks == ["127.0.0.1/32"]
    resp = await client.put("/api/v1/scope", json=wide | {"confirm_large": True}, headers=h(client))
    assert resp.status == 200 and (await resp.json())["scope"] == ["127.0.0.1/32", "10.0.0.0/8"]
    page = await (await client.get("/settings")).text()
    assert 'type="checkbox" name="confirm_large"' in page


async def test_live_events_follow_one_job(client: TestClient[Any, Any]) -> None:
    async with client.ws_connect("/api/v1/live?agent_type=echo") as ws:
        first = await (
            await client.post(
                "/api/v1/jobs", json={"command": "x y", "agent_type": "parent"}, headers=h(client)
            )
        ).json()
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while sum(1 for e in seen if e["event"]["kind"] == "task.status") < 2:
                msg = await ws.receive()
                assert msg.type == WSMsgType.TEXT
                seen.extend(msg.json()["events"])
    assert {e["event"]["agent_type"] for e in seen} == {"echo"}  # filtered by agent type
    assert {e["job_id"] for e in seen} == {first["job_id"]}
    kinds = {e["event"]["kind"] for e in seen}
    assert {"task.spawned", "task.status"} <= kinds


async def test_a_late_live_view_gets_the_backlog_first(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    job = await (
        await client.post(
            "/api/v1/jobs", json={"command": "x y", "agent_type": "parent"}, headers=h(client)
        )
    ).json()
    await client.get(f"/api/v1/jobs/{job['job_id']}?wait=5")
    await runtime.commit()
    async with client.ws_connect(f"/api/v1/live?job_id={job['job_id']}&backlog=50") as ws:
        async with asyncio.timeout(5):
            first = (await ws.receive()).json()
    assert first["backlog"] is True
    events = [e["event"] for e in first["events"]]
    assert [e["kind"] for e in events].count("task.spawned") == 3  # parent and two echoes
    assert [e["kind"] for e in events].count("task.status") == 3
    assert all("result" not in e for e in events)  # that a task ended, not its whole result
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)  # oldest first
    refused = await client.get("/api/v1/live?backlog=lots")
    assert refused.status == 400 and "backlog" in (await refused.json())["message"]


async def test_live_events_filter_by_job(client: TestClient[Any, Any]) -> None:
    one = await (
        await client.post(
            "/api/v1/jobs", json={"command": "count", "agent_type": "counter"}, headers=h(client)
        )
    ).json()
    async with client.ws_connect(f"/api/v1/live?job_id={one['job_id']}") as ws:
        await client.post("/api/v1/jobs", json={"command": "other job"}, headers=h(client))
        await client.post(f"/api/v1/jobs/{one['job_id']}/cancel", headers=h(client))
        async with asyncio.timeout(5):
            msg = await ws.receive()
    events = msg.json()["events"]
    assert [e["event"]["kind"] for e in events] == ["task.status"]
    assert events[0]["event"]["status"] == "cancelled" and events[0]["job_id"] == one["job_id"]


async def test_the_openapi_document_covers_every_api_route(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc == openapi_document(PANEL_ROUTES) and doc["openapi"].startswith("3.")
    undocumented = {"/api/v1/live", "/api/v1/openapi.json"}  # a WebSocket; the document
    served = set()
    for route in client.server.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") and path not in undocumented and route.method != "HEAD":
            served.add((route.method.lower(), path))
            assert route.method.lower() in doc["paths"][path], (route.method, path)
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == served


async def test_pages_render_for_a_session(
    client: TestClient[Any, Any], runtime: Runtime, job: JobContext
) -> None:
    runtime.spawn("counter", job, "count <b>bold</b>")
    for path in ("/", "/jobs", "/submit", "/events?job_id=x", "/settings"):
        resp = await client.get(path)
        assert resp.status == 200, path
        text = await resp.text()
        assert "<b>bold</b>" not in text  # escaped everywhere
    missing = await client.get("/jobs/job-nope")
    assert missing.status == 404 and "no job" in await missing.text()

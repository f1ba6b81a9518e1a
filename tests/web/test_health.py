"""Health on the status endpoint says how the agents are now: bad input is a refusal, not a
crash; a scaled pool is idle members, not failed tasks; once what failed is gone (scaled
away or restarted) health is "ok" again, the counts keeping the history."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.agents.coordinator import Coordinator
from appliance.runtime import Runtime
from appliance.scope import Scope
from appliance.supervisor import Supervisor

pytestmark = pytest.mark.unit


def h(client: TestClient[Any, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


async def _status(client: TestClient[Any, Any]) -> dict[str, Any]:
    status: dict[str, Any] = await (await client.get("/api/v1/status")).json()
    return status


def _type(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in status["types"] if t["name"] == name)
    return found


@pytest.fixture
def supervised(runtime: Runtime) -> Runtime:
    """The runtime with the appliance's supervisor and the real coordinator, as app.py has."""
    Supervisor(runtime)
    runtime.register(Coordinator, lambda: Coordinator(Scope(["127.0.0.1"]), [22]))
    return runtime


async def test_a_mistyped_command_is_refused_and_health_stays_ok(
    client: TestClient[Any, Any], supervised: Runtime
) -> None:
    mistyped = {"command": "analyse netwrk posture 127.0.0.1", "agent_type": "coordinator"}
    resp = await client.post("/api/v1/jobs", json=mistyped, headers=h(client))
    assert resp.status == 400
    refusal = await resp.json()
    assert refusal["error"] == "BadCommand" and "posture of" in refusal["message"]
    await supervised.commit()
    assert await supervised.graph.jobs() == []  # refused before anything was recorded

    # bad input found by a handler (echo refuses "fail" with a ValueError): refused, no crash
    job = await (
        await client.post(
            "/api/v1/jobs", json={"command": "please fail", "agent_type": "echo"}, headers=h(client)
        )
    ).json()
    done = await (await client.get(f"/api/v1/jobs/{job['job_id']}?wait=5")).json()
    assert done["status"] == "failed" and done["detail"].startswith("refused: ValueError")
    status = await _status(client)
    assert (status["health"], status["crashed"]) == ("ok", 0)
    assert (_type(status, "echo")["health"], _type(status, "echo")["crashes"]) == ("ok", 0)


async def test_scaling_the_coordinator_pool_adds_idle_healthy_members(
    client: TestClient[Any, Any], supervised: Runtime
) -> None:
    resp = await client.put("/api/v1/pools/coordinator", json={"size": 3}, headers=h(client))
    assert resp.status == 200 and (await resp.json())["size"] == 3
    assert await supervised.wait_idle(5)
    status = await _status(client)
    coordinator = _type(status, "coordinator")
    assert (coordinator["pool_size"], coordinator["crashes"], coordinator["health"]) == (3, 0, "ok")
    members = [i for i in status["instances"] if i["agent_type"] == "coordinator"]
    assert [(i["status"], i["handled"], i["pooled"]) for i in members] == [("running", 0, True)] * 3
    assert status["health"] == "ok"
    down = await client.put("/api/v1/pools/coordinator", json={"size": 1}, headers=h(client))
    assert (await down.json())["size"] == 1
    assert (await _status(client))["health"] == "ok"


async def test_health_recovers_once_the_failed_instance_is_restarted_or_scaled_away(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    await client.put("/api/v1/pools/counter", json={"size": 3}, headers=h(client))
    members = [i.ref for i in runtime.instances("counter")]
    for victim, cure in ((members[-1], "restart"), (members[-1], "scale down")):
        crash = {
            "event": {"kind": "test.crash", "message": "boom"},
            "job": {"job_id": "job-x", "command_id": "cmd-x"},
            "target": {"to": "task", "agent_type": "counter", "task_id": victim.task_id},
        }
        assert (await client.post("/api/v1/events", json=crash, headers=h(client))).status == 202
        assert await runtime.wait_idle(5)
        degraded = await _status(client)
        assert degraded["health"] == "degraded" and _type(degraded, "counter")["failing"] == 1
        [failing] = [i for i in degraded["instances"] if i["fault"] is not None]
        assert (failing["task_id"], failing["fault"]) == (victim.task_id, "RuntimeError: boom")
        if cure == "restart":
            resp = await client.post(
                f"/api/v1/instances/{victim.task_id}/restart", headers=h(client)
            )
        else:
            resp = await client.put("/api/v1/pools/counter", json={"size": 1}, headers=h(client))
        assert resp.status == 200
        healthy = await _status(client)
        assert healthy["health"] == "ok" and _type(healthy, "counter")["failing"] == 0
    assert runtime.crashed == 2  # the history stays where it is counted


async def test_the_one_word_health_agrees_with_the_status_page(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    """What the update's gate polls (/api/v1/health, also on the control socket) says what
    the status endpoint says overall."""
    word = await (await client.get("/api/v1/health")).json()
    assert word == {"health": (await _status(client))["health"]} == {"health": "ok"}
    runtime.fail_type(runtime.agent_types[0].name, "crashed five times in a minute")
    word = await (await client.get("/api/v1/health")).json()
    assert word == {"health": (await _status(client))["health"]} == {"health": "failed"}

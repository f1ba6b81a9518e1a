"""The appliance's own agent types (the network watcher, the vote tracker) and the events only
it sends (hardware events, votes) are out of a client's reach: the API refuses them with a
4xx naming what is allowed, and records nothing."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from appliance.agents.netwatch import NetworkWatcher, start_watching
from appliance.events import Envelope, JobContext, TopicRef, TypeRef, VoteCast
from appliance.hal.hotplug import HOTPLUG_TOPIC, DeviceChanged
from appliance.runtime import Runtime
from appliance.scope import Scope
from appliance.supervisor import ConsensusTracker
from tests.support import Add

pytestmark = pytest.mark.unit


def h(client: TestClient[Any, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


@pytest.fixture
def watched(runtime: Runtime) -> JobContext:
    """The internal types registered as app.py does; the watcher's standing job started."""
    runtime.register(ConsensusTracker)
    scope = Scope(["127.0.0.1"])
    runtime.register(
        NetworkWatcher,
        lambda: NetworkWatcher(scope, runtime.submit, runtime.record, rescan_agent="echo"),
    )
    start_watching(runtime)
    [watcher] = runtime.instances("network_watcher")
    return JobContext(watcher.job_id, "")


async def _jobs(runtime: Runtime) -> list[str]:
    await runtime.commit()
    return [j["command"] for j in await runtime.graph.jobs()]


@pytest.mark.parametrize("agent_type", ["network_watcher", "consensus"])
async def test_an_internal_type_cannot_be_started_as_a_job(
    client: TestClient[Any, Any], runtime: Runtime, watched: JobContext, agent_type: str
) -> None:
    before = await _jobs(runtime)
    resp = await client.post(
        "/api/v1/jobs",
        json={"command": "watch everything", "agent_type": agent_type},
        headers=h(client),
    )
    assert resp.status == 400
    refusal = await resp.json()
    assert refusal["error"] == "InternalAgentType"
    assert f"'{agent_type}' is internal" in refusal["message"]
    assert "counter, echo, parent" in refusal["message"]  # the types a command can go to
    assert await _jobs(runtime) == before
    assert len(runtime.instances(agent_type)) == (1 if agent_type == "network_watcher" else 0)


async def test_a_pool_of_an_internal_type_cannot_be_sized(
    client: TestClient[Any, Any], runtime: Runtime, watched: JobContext
) -> None:
    resp = await client.put("/api/v1/pools/network_watcher", json={"size": 3}, headers=h(client))
    assert resp.status == 400 and (await resp.json())["error"] == "InternalAgentType"
    assert len(runtime.instances("network_watcher")) == 1


async def test_a_posted_hardware_event_is_refused_and_starts_no_rescan(
    client: TestClient[Any, Any], runtime: Runtime, watched: JobContext
) -> None:
    before = await _jobs(runtime)
    plugged = DeviceChanged(action="add", subsystem="net", sys_name="eth9")
    for target in (TopicRef(HOTPLUG_TOPIC), TypeRef("network_watcher")):
        wire = msgspec.json.encode(Envelope(event=plugged, job=watched, target=target))
        resp = await client.post("/api/v1/events", data=wire, headers=h(client))
        assert resp.status == 403, target
        refusal = await resp.json()
        assert refusal["error"] == "EventNotAllowed"
        assert "'device.changed'" in refusal["message"] and "test.add" in refusal["message"]
    assert await runtime.wait_idle(5)
    assert await _jobs(runtime) == before  # no rescan job, nothing recorded
    assert len(runtime.instances("network_watcher")) == 1


async def test_a_posted_vote_is_refused_and_client_events_still_pass(
    client: TestClient[Any, Any], runtime: Runtime, watched: JobContext, job: JobContext
) -> None:
    vote = VoteCast(vote_id="vote-1", voter="someone", accept=True)
    wire = msgspec.json.encode(Envelope(event=vote, job=job, target=TypeRef("consensus")))
    resp = await client.post("/api/v1/events", data=wire, headers=h(client))
    assert resp.status == 403 and (await resp.json())["error"] == "EventNotAllowed"
    assert runtime.instances("consensus") == []
    ref = runtime.spawn("counter", job, "count")
    add = msgspec.json.encode(Envelope(event=Add(by=2), job=job, target=ref))
    assert (await client.post("/api/v1/events", data=add, headers=h(client))).status == 202


async def test_a_job_the_watcher_started_links_to_it_and_the_device_event(
    client: TestClient[Any, Any], runtime: Runtime, watched: JobContext
) -> None:
    """From the hardware layer (inside the appliance), a new interface: the rescan job's API
    and page say which task started it and after what, from the graph's link."""
    with runtime.watch(kinds=["job.submitted"]) as jobs:
        runtime.publish_nowait(
            TopicRef(HOTPLUG_TOPIC),
            DeviceChanged(action="add", subsystem="net", sys_name="eth1"),
            job=watched,
        )
        submitted = (await jobs.next()).event
    await runtime.commit()
    got = await (await client.get(f"/api/v1/jobs/{submitted.job_id}")).json()
    assert got["autonomous"] and got["triggered_by"]["by_agent"] == "network_watcher"
    assert got["triggered_by"]["by_job_id"] == watched.job_id
    assert got["triggered_by"]["because"] == "device.changed net eth1 add"
    page = await (await client.get(f"/jobs/{submitted.job_id}")).text()
    assert "Started by network_watcher" in page and watched.job_id in page

"""A whole posture job through the real agents, scanning only ports this test opened."""

from __future__ import annotations

import asyncio

import pytest

from appliance.agents.executor import ReportEntry
from appliance.agents.messages import PostureReport
from appliance.app import in_process
from appliance.errors import BadCommand
from appliance.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_posture_job_runs_coordinator_collectors_analyzers_executors(
    settings: Settings, open_ports: list[int]
) -> None:
    ports = ",".join(map(str, open_ports))
    async with asyncio.timeout(30), in_process(settings) as appliance:
        job, root, _ = await appliance.submit(
            f"analyze network security posture of 127.0.0.1, 127.0.0.2 ports {ports}"
        )
        outcome = await appliance.runtime.wait_task(root)
        assert outcome.status == "done", outcome.detail
        report = outcome.result_as(PostureReport)
        tree = await appliance.runtime.graph.tree(job.job_id)
        entries = appliance.runtime.knowledge.get(report.report_key, list[ReportEntry], [])

    assert report.hosts_probed == 2
    assert [(h.host, h.open_ports) for h in report.open] == [("127.0.0.1", open_ports)]
    assert {f.severity for f in report.findings} == {"high", "low"}
    assert [(e.finding.port, e.finding.severity) for e in entries] == [(open_ports[0], "high")]

    kids = tree.children()
    [coordinator] = tree.roots
    collectors = kids[coordinator.task_id]
    assert coordinator.agent_type == "coordinator"
    assert sorted(c.objective for c in collectors) == ["127.0.0.1", "127.0.0.2"]
    scanned = next(c for c in collectors if c.objective == "127.0.0.1")
    [analyzer] = kids[scanned.task_id]
    [executor] = kids[analyzer.task_id]
    assert (analyzer.agent_type, executor.agent_type) == ("analyzer", "executor")
    assert all(n.status == "done" for n in tree.tasks)
    idle = next(c for c in collectors if c.objective == "127.0.0.2")
    assert kids.get(idle.task_id, []) == []  # nothing open there: no analysis


async def test_a_target_outside_the_scope_fails_the_job_before_any_scan(
    settings: Settings,
) -> None:
    async with asyncio.timeout(60), in_process(settings) as appliance:
        job, root, _ = await appliance.submit(
            "analyze network security posture of 127.0.0.1, 10.1.2.3"
        )
        outcome = await appliance.runtime.wait_task(root)
        tree = await appliance.runtime.graph.tree(job.job_id)
    assert outcome.status == "failed"
    assert "10.1.2.3 is outside the configured scope" in outcome.detail
    assert [n.agent_type for n in tree.tasks] == ["coordinator"]


async def test_a_command_the_coordinator_cannot_parse_is_refused_clearly(
    settings: Settings,
) -> None:
    async with asyncio.timeout(60), in_process(settings) as appliance:
        with pytest.raises(BadCommand, match="posture of"):  # a refusal, before any job
            await appliance.submit("make me a sandwich", "coordinator")
        await appliance.runtime.commit()
        assert await appliance.runtime.graph.jobs() == []

"""Plans run end to end: each step a child task, typed results passed on, conditions
evaluated, earlier jobs' results read; on loopback ports the test itself opens."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import msgspec
import pytest

from appliance.agents.collector import DataCollector
from appliance.agents.messages import Facts, PlanReport, ReviewReport, ScanReport, ScanRequested
from appliance.app import Appliance, in_process
from appliance.errors import BadCommand, OutOfScope
from appliance.events import Started
from appliance.router.router import phrases_of
from appliance.runtime import Agent, Context, NoState
from appliance.scope import Scope
from appliance.settings import Settings
from appliance.web.api import make_api
from appliance.web.credentials import Credentials
from appliance.web.panel import make_panel
from tests.web.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.integration


def as_facts(result: Any) -> Facts:
    return msgspec.convert(msgspec.to_builtins(result), Facts)


def as_review(result: Any) -> ReviewReport:
    return msgspec.convert(msgspec.to_builtins(result), ReviewReport)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_scan_then_analyze_runs_both_steps_in_order(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        job, root, route = await appliance.submit(
            f"scan 127.0.0.1 ports {open_ports[0]} then analyze the results"
        )
        outcome = await appliance.runtime.wait_task(root)
        tree = await appliance.runtime.graph.tree(job.job_id)
    assert route is not None and route.reason == "multi-step"
    assert outcome.status == "done", outcome.detail
    report = outcome.result_as(PlanReport)
    assert report.ran == ["s1", "s2"] and report.skipped == []
    scan, review = report.steps
    assert scan.agent_type == "data_collector" and review.agent_type == "analyzer"
    assert [f.port for f in as_review(review.result).findings] == [open_ports[0]]
    kids = tree.children()[root.task_id]
    assert [k.agent_type for k in kids] == ["data_collector", "analyzer"]
    assert [k.objective for k in kids] == [
        f"s1: scan 127.0.0.1 ports {open_ports[0]}",
        "s2: analyze the results (after s1)",  # the dependency, in the graph
    ]
    assert kids[0].created_at <= kids[1].created_at


async def test_a_conditional_step_runs_when_its_condition_holds(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        _, root, _ = await appliance.submit(
            f"if port {open_ports[0]} is open on 127.0.0.1, record it"
        )
        outcome = await appliance.runtime.wait_task(root)
    report = outcome.result_as(PlanReport)
    assert report.ran == ["s1", "s2"], report.steps
    assert report.steps[1].agent_type == "executor"
    assert [f.port for f in report.findings] == [open_ports[0]]


async def test_a_conditional_step_is_skipped_with_its_reason(
    settings: Settings, open_ports: list[int]
) -> None:
    port = closed_port()
    async with asyncio.timeout(30), in_process(settings) as appliance:
        _, root, _ = await appliance.submit(f"if port {port} is open on 127.0.0.1, record it")
        outcome = await appliance.runtime.wait_task(root)
    report = outcome.result_as(PlanReport)
    assert report.ran == ["s1"] and report.skipped == ["s2"]
    assert report.steps[1].reason == f"condition not met: if port {port} on 127.0.0.1 is open"


async def test_a_step_reads_an_earlier_jobs_results(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        _, scan_root, _ = await appliance.submit(f"scan 127.0.0.1 ports {open_ports[1]}")
        scanned = await appliance.runtime.wait_task(scan_root)
        await appliance.runtime.commit()
        _, root, route = await appliance.submit("analyze the results of the last scan")
        outcome = await appliance.runtime.wait_task(root)
        _, today_root, _ = await appliance.submit("analyze the scan results from today")
        today = await appliance.runtime.wait_task(today_root)
    assert scanned.result_as(ScanReport).open[0].open_ports == [open_ports[1]]
    assert route is not None and route.agent_type == "coordinator"
    for done in (outcome, today):
        report = done.result_as(PlanReport)
        assert report.ran == ["s1"], report.steps
        review = as_review(report.steps[0].result)
        assert [(f.host, f.port) for f in review.findings] == [("127.0.0.1", open_ports[1])]


async def test_a_reference_with_nothing_earlier_is_skipped_not_failed(
    settings: Settings,
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        _, root, _ = await appliance.submit("analyze the scan results from this morning")
        outcome = await appliance.runtime.wait_task(root)
    report = outcome.result_as(PlanReport)
    assert outcome.status == "done" and report.skipped == ["s1"]
    assert "no finished job's results from this morning" in report.steps[0].reason


async def test_an_out_of_scope_target_refuses_the_plan_before_anything_runs(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        with pytest.raises(OutOfScope, match=r"10\.1\.2\.3"):
            await appliance.submit(f"scan 127.0.0.1 ports {open_ports[0]} then scan 10.1.2.3")
        await appliance.runtime.commit()
        assert await appliance.runtime.graph.jobs() == []


async def test_the_api_returns_the_plan_with_the_job(
    settings: Settings, open_ports: list[int], aiohttp_client: Any
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        client = await aiohttp_client(make_api(appliance.runtime, appliance.submit))
        resp = await client.post(
            "/api/v1/jobs",
            json={"command": f"scan 127.0.0.1 ports {open_ports[0]} then analyze the results"},
        )
        body = await resp.json()
        done = await (await client.get(f"/api/v1/jobs/{body['job_id']}?wait=20")).json()
    assert resp.status == 202 and body["agent_type"] == "coordinator"
    assert [s["agent_type"] for s in body["plan"]["steps"]] == ["data_collector", "analyzer"]
    assert body["plan"]["steps"][1]["after"] == ["s1"]
    assert done["status"] == "done"


async def test_a_scheduled_command_makes_a_schedule_instead_of_running_now(
    settings: Settings, open_ports: list[int], aiohttp_client: Any
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        client = await aiohttp_client(
            make_api(appliance.runtime, appliance.submit, appliance.schedules)
        )
        resp = await client.post(
            "/api/v1/jobs",
            json={"command": f"scan 127.0.0.1 ports {open_ports[0]} then analyze it every hour"},
        )
        body = await resp.json()
        done = await (await client.get(f"/api/v1/jobs/{body['job_id']}?wait=20")).json()
        [schedule] = appliance.schedules.list()
        tree = await appliance.runtime.graph.tree(body["job_id"])
    assert resp.status == 202 and body["plan"]["scheduled"] is True
    assert body["schedule"]["id"] == schedule.id
    assert schedule.command == f"scan 127.0.0.1 ports {open_ports[0]} then analyze it"
    assert schedule.created_by == body["job_id"]
    report = msgspec.convert(done["result"], PlanReport)
    assert report.ran == [] and report.skipped == ["s1", "s2"]
    assert report.steps[0].reason.startswith("scheduled every hour")
    assert [n.agent_type for n in tree.tasks] == ["coordinator"]  # nothing ran now


async def test_a_firing_runs_the_plan_as_an_autonomous_job(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        job, root, _ = await appliance.submit(
            f"scan 127.0.0.1 ports {open_ports[0]} then analyze the results", autonomous=True
        )
        outcome = await appliance.runtime.wait_task(root)
        tree = await appliance.runtime.graph.tree(job.job_id)
        assert appliance.schedules.list() == []
    assert tree.autonomous and outcome.result_as(PlanReport).ran == ["s1", "s2"]


async def test_a_command_its_type_refuses_at_run_time_goes_to_the_next_candidate(
    settings: Settings, open_ports: list[int]
) -> None:
    class RefusingCollector(DataCollector):
        """Wins the route (an example matches word for word), then refuses in its handler."""

        name = "refusing_collector"
        examples = (*DataCollector.examples, "scan 127.0.0.1 ports 22")

        async def on_scan(self, event: ScanRequested, ctx: Context[NoState]) -> ScanReport:
            raise BadCommand("refusing it at run time (test)")

    async with asyncio.timeout(30), in_process(settings) as appliance:
        scope = Scope(settings.scope)
        appliance.runtime.register(RefusingCollector, lambda: RefusingCollector(scope, settings))
        job, root, _ = await appliance.submit(f"scan 127.0.0.1 ports {open_ports[2]}")
        outcome = await appliance.runtime.wait_task(root)
        tree = await appliance.runtime.graph.tree(job.job_id)
    assert root.agent_type == "refusing_collector"
    assert outcome.status == "done", outcome.detail
    assert "data_collector took it after refusing_collector refused it" in outcome.detail
    assert outcome.result_as(ScanReport).open[0].open_ports == [open_ports[2]]
    assert [n.agent_type for n in tree.children()[root.task_id]] == ["data_collector"]


async def test_parallel_targets_run_as_sibling_steps(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        job, root, _ = await appliance.submit(
            f"scan 127.0.0.1 and 127.0.0.2 ports {open_ports[0]} in parallel"
        )
        outcome = await appliance.runtime.wait_task(root)
        tree = await appliance.runtime.graph.tree(job.job_id)
    report = outcome.result_as(PlanReport)
    assert report.ran == ["s1", "s2"]
    kids = tree.children()[root.task_id]
    assert sorted(k.agent_type for k in kids) == ["data_collector", "data_collector"]
    assert [(h.host, h.open_ports) for h in report.open] == [("127.0.0.1", [open_ports[0]])]


class CertChecker(Agent):
    """A type registered at run time; it takes its step's words as they are."""

    name = "cert_checker"
    description = "Checks TLS certificates: when a certificate expires, who issued it."
    capabilities = ("check when an ssl certificate expires", "tls certificate expiry")
    examples = ("when does the ssl cert of 10.0.0.1 expire", "is the https certificate valid")

    async def on_start(self, event: Started, ctx: Context[NoState]) -> str:
        return f"checked: {event.objective}"


async def test_a_type_registered_at_run_time_runs_as_a_plan_step(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        appliance.runtime.register(CertChecker)
        _, root, _ = await appliance.submit(
            f"scan 127.0.0.1 ports {open_ports[0]} then check when the tls certificate of "
            "127.0.0.1 expires"
        )
        outcome = await appliance.runtime.wait_task(root)
    report = outcome.result_as(PlanReport)
    assert [s.agent_type for s in report.steps] == ["data_collector", "cert_checker"]
    assert report.steps[1].result == "checked: check when the tls certificate of 127.0.0.1 expires"


async def test_the_panel_previews_a_plan_without_running_it(
    settings: Settings, open_ports: list[int], aiohttp_client: Any
) -> None:

    async with asyncio.timeout(30), in_process(settings) as appliance:
        credentials = Credentials(settings.data_dir)
        credentials.set_password(PASSWORD)
        app = make_panel(
            appliance.runtime, appliance.submit, credentials, plan=appliance.planner.plan
        )
        client = await aiohttp_client(app)
        assert await sign_in(client, PASSWORD) == 303
        headers = {"X-CSRF-Token": client.csrf}
        ok = await client.post(
            "/api/v1/plan",
            json={"command": f"scan 127.0.0.1 ports {open_ports[0]} every night"},
            headers=headers,
        )
        plan = await ok.json()
        refused = await client.post(
            "/api/v1/plan", json={"command": "make me a sandwich"}, headers=headers
        )
        page = await (await client.get("/submit")).text()
        await appliance.runtime.commit()
        assert await appliance.runtime.graph.jobs() == []  # a preview runs nothing
        assert appliance.schedules.list() == []
    assert ok.status == 200 and plan["scheduled"] is True
    assert plan["runs"] == f"scan 127.0.0.1 ports {open_ports[0]}"
    assert [s["agent_type"] for s in plan["steps"]] == ["data_collector"]
    assert refused.status == 422 and (await refused.json())["error"] == "NoConfidentMatch"
    assert 'id="preview-plan"' in page


async def test_a_one_step_command_keeps_the_routers_own_decision(
    settings: Settings, open_ports: list[int]
) -> None:
    command = f"scan 127.0.0.1 ports {open_ports[0]}"
    async with asyncio.timeout(30), in_process(settings) as appliance:
        decision = await appliance.router.route(command)
        _, root, route = await appliance.submit(command)
        await appliance.runtime.wait_task(root)
    assert route == decision  # confidences and runners-up as the router gave them
    assert root.agent_type == decision.agent_type == "data_collector"


async def test_a_type_whose_step_hook_breaks_fails_its_step_not_the_plan(
    settings: Settings, open_ports: list[int]
) -> None:
    class BrokenChecker(CertChecker):
        name = "broken_checker"

        @classmethod
        def start_for_step(cls, step_text: str, params: Any, inputs: Any) -> Started:
            raise KeyError("a bug in a type added at run time")

    async with asyncio.timeout(30), in_process(settings) as appliance:
        appliance.runtime.register(BrokenChecker)
        report = await scan_then_check_the_certificate(appliance, open_ports[0])
    assert report.ran == ["s1"] and report.failed == ["s2"]
    assert "KeyError" in report.steps[1].reason


async def scan_then_check_the_certificate(appliance: Appliance, port: int) -> PlanReport:
    """A two-step plan whose second step wants a certificate checker: its report (the plan
    itself done, whatever its steps did)."""
    _, root, _ = await appliance.submit(
        f"scan 127.0.0.1 ports {port} then check when the tls certificate of 127.0.0.1 expires"
    )
    outcome = await appliance.runtime.wait_task(root)
    assert outcome.status == "done", outcome.detail
    return outcome.result_as(PlanReport)


async def test_then_scan_them_scans_each_host_found_before(
    settings: Settings, open_ports: list[int]
) -> None:
    """The first step finds two hosts with open ports; "scan them" runs once per host."""
    extra = socket.socket()
    extra.bind(("127.0.0.2", 0))
    extra.listen()
    port2 = extra.getsockname()[1]
    try:
        async with asyncio.timeout(30), in_process(settings) as appliance:
            job, root, _ = await appliance.submit(
                f"first scan 127.0.0.0/30 ports {open_ports[0]},{port2}, "
                f"then scan them on ports {open_ports[0]},{port2}"
            )
            outcome = await appliance.runtime.wait_task(root)
            tree = await appliance.runtime.graph.tree(job.job_id)
    finally:
        extra.close()
    report = outcome.result_as(PlanReport)
    assert report.ran == ["s1", "s2"], report.steps
    second = [k for k in tree.children()[root.task_id] if k.objective.startswith("s2:")]
    assert len(second) == 2  # one scan per host found
    hosts = {h.host for h in as_facts(report.steps[1].result).open}
    assert hosts == {"127.0.0.1", "127.0.0.2"}


async def test_a_step_for_a_type_no_device_runs_fails_saying_so(
    settings: Settings, open_ports: list[int]
) -> None:
    """The router may know a type by its phrases alone (a fleet device's card) after the
    last device running it has gone: the step fails naming it, the others run."""
    async with asyncio.timeout(30), in_process(settings) as appliance:
        appliance.router.add_phrases("cert_checker", phrases_of(CertChecker))
        report = await scan_then_check_the_certificate(appliance, open_ports[0])
    assert report.ran == ["s1"] and report.failed == ["s2"]
    assert "no agent type 'cert_checker'" in report.steps[1].reason

"""Gathering a job's report from a real graph (SQLite store): order, what is new and what is
resolved against the last job on the same targets, and failed steps said, not hidden."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.errors import UnknownJob
from appliance.reports import gather_report, outcome
from appliance.runtime import FakeClock, KnowledgeStore, Store
from tests.unit.reports.graphjobs import Jobs, finding, posture

pytestmark = pytest.mark.unit


@pytest.fixture
def jobs(store: Store) -> Jobs:
    return Jobs(store)


async def test_findings_come_worst_first_with_new_and_resolved_against_the_same_targets(
    jobs: Jobs,
) -> None:
    jobs.posture_job(
        "j1",
        100.0,
        ["127.0.0.1"],
        [finding("127.0.0.1", 23, "critical"), finding("127.0.0.1", 8080, "low")],
    )
    jobs.posture_job("j2", 200.0, ["127.0.0.2"], [finding("127.0.0.2", 21, "high")])
    jobs.posture_job(
        "j3",
        300.0,
        ["127.0.0.1"],
        [
            finding("127.0.0.1", 22, "info"),
            finding("127.0.0.1", 80, "medium"),
            finding("127.0.0.1", 23, "critical"),
            finding("127.0.0.1", 445, "high"),
        ],
    )
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j3")

    assert [(f.port, f.severity) for f in report.findings] == [
        (23, "critical"),
        (445, "high"),
        (80, "medium"),
        (22, "info"),
    ]
    assert report.baseline is not None and report.baseline.job_id == "j1"  # not j2: other target
    assert [f.port for f in report.findings if f.new] == [445, 80, 22]
    assert [(f.port, f.severity) for f in report.resolved] == [(8080, "low")]
    assert (report.verdict, report.targets, report.problems) == ("done", ["127.0.0.1"], [])


async def test_the_first_job_on_its_targets_marks_nothing_new_and_says_why(jobs: Jobs) -> None:
    jobs.posture_job("j1", 100.0, ["127.0.0.1"], [finding("127.0.0.1", 23, "critical")])
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j1")

    assert report.baseline is None and report.resolved == []
    assert not any(f.new for f in report.findings)
    assert any("No earlier job" in n for n in report.notes)


async def test_a_job_with_a_failed_scan_is_partial_and_names_the_step(jobs: Jobs) -> None:
    jobs.posture_job("j1", 100.0, ["127.0.0.1", "127.0.0.0/16"], [finding("127.0.0.1", 23, "high")])
    jobs.job("j2", 200.0)
    jobs.task(
        "j2",
        "root",
        "coordinator",
        at=200.0,
        result=posture(["127.0.0.1", "127.0.0.0/16"], [], failed=("127.0.0.0/16",)),
    )
    jobs.task("j2", "c1", "data_collector", at=201.0, parent="root", objective="127.0.0.1")
    jobs.task(
        "j2",
        "c2",
        "data_collector",
        at=201.0,
        parent="root",
        objective="127.0.0.0/16",
        status="failed",
        detail="refused: 127.0.0.0/16 is wider than a /24 scan allows",
    )
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j2")

    assert report.status == "done" and report.verdict == "partial"
    [problem] = report.problems  # the failed target is the failed task: listed once
    assert (problem.status, problem.task_id) == ("refused", "c2")
    assert "127.0.0.0/16" in problem.what and "wider than a /24" in problem.reason
    assert report.resolved == []  # what it missed must not read as fixed
    assert any("did not finish all it was asked" in n for n in report.notes)


async def test_a_failed_root_fails_the_report_with_what_its_tasks_found(jobs: Jobs) -> None:
    jobs.job("j1", 100.0)
    jobs.task("j1", "root", "coordinator", at=100.0, status="failed", detail="handler timed out")
    scan = {
        "target": "127.0.0.1",
        "hosts_probed": 1,
        "open": [],
        "findings": [finding("127.0.0.1", 23, "critical")],
    }
    jobs.task("j1", "c1", "data_collector", at=101.0, parent="root", result=scan)
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j1")

    assert report.verdict == "failed"
    assert [p.reason for p in report.problems] == ["handler timed out"]
    assert [f.port for f in report.findings] == [23] and report.targets == ["127.0.0.1"]


async def test_a_plan_lists_its_refused_and_skipped_steps(jobs: Jobs) -> None:
    jobs.job("j1", 100.0, "scan 127.0.0.1 then block it unless nothing is found")
    plan = {
        "steps": [
            {"id": "s1", "agent_type": "data_collector", "status": "done", "task_id": "c1"},
            {
                "id": "s2",
                "agent_type": "executor",
                "status": "failed",
                "reason": "executor: can't block",
            },
            {
                "id": "s3",
                "agent_type": "analyzer",
                "status": "skipped",
                "reason": "s2 did not finish",
            },
        ],
        "ran": ["s1"],
        "skipped": ["s3"],
        "failed": ["s2"],
        "findings": [finding("127.0.0.1", 80, "medium")],
    }
    jobs.task("j1", "root", "coordinator", at=100.0, result=plan)
    scan = {"target": "127.0.0.1", "hosts_probed": 1, "open": [], "findings": []}
    jobs.task("j1", "c1", "data_collector", at=101.0, parent="root", result=scan)
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j1")

    assert report.verdict == "partial"
    assert [(p.what, p.status, p.reason) for p in report.problems] == [
        ("step s2 (executor)", "refused", "executor: can't block")
    ]
    assert [(s.what, s.reason) for s in report.skipped] == [
        ("step s3 (analyzer)", "s2 did not finish")
    ]
    assert report.targets == ["127.0.0.1"]


async def test_a_partial_job_is_no_baseline(jobs: Jobs) -> None:
    jobs.posture_job("j1", 100.0, ["127.0.0.1"], [finding("127.0.0.1", 23, "critical")])
    jobs.job("j2", 200.0)
    jobs.task(
        "j2", "root", "coordinator", at=200.0, result=posture(["127.0.0.1"], [], ("127.0.0.1",))
    )
    jobs.posture_job("j3", 300.0, ["127.0.0.1"], [])
    await jobs.store.flush()

    report = await gather_report(jobs.graph, None, "j3")

    assert report.baseline is not None and report.baseline.job_id == "j1"
    assert [f.port for f in report.resolved] == [23]


async def test_findings_the_executor_recorded_are_marked(jobs: Jobs, store: Store) -> None:
    jobs.posture_job(
        "j1",
        100.0,
        ["127.0.0.1"],
        [finding("127.0.0.1", 23, "critical"), finding("127.0.0.1", 22, "info")],
    )
    knowledge = KnowledgeStore(store, FakeClock())
    entry = {
        "finding": finding("127.0.0.1", 23, "critical"),
        "recorded_by": "e1",
        "recorded_at": 1.0,
    }
    knowledge.update("report/j1", lambda old: [*old, entry], type=list[Any], default=[])
    await jobs.store.flush()

    report = await gather_report(jobs.graph, knowledge, "j1")

    assert [(f.port, f.recorded) for f in report.findings] == [(23, True), (22, False)]


async def test_an_unknown_job_is_an_error(jobs: Jobs) -> None:
    with pytest.raises(UnknownJob):
        await gather_report(jobs.graph, None, "job-nope")


async def test_a_job_that_ran_nothing_because_it_was_refused_is_refused_not_failed(
    jobs: Jobs,
) -> None:
    jobs.job("j1", 100.0, "analyze network security posture of 10.1.2.3")
    jobs.task(
        "j1",
        "r1",
        "coordinator",
        at=100.0,
        status="failed",
        detail="refused: BadCommand: 10.1.2.3 is outside the configured scope",
    )
    jobs.job("j2", 200.0, "block it")
    plan = {
        "steps": [{"id": "s1", "agent_type": "executor", "status": "failed", "reason": "no"}],
        "ran": [],
        "skipped": [],
        "failed": ["s1"],
    }
    jobs.task("j2", "r2", "coordinator", at=200.0, result=plan)
    jobs.job("j3", 300.0, "crashes")
    jobs.task("j3", "r3", "coordinator", at=300.0, status="failed", detail="handler crashed")
    await jobs.store.flush()

    refused = await gather_report(jobs.graph, None, "j1")
    assert (
        refused.verdict == "refused"
        and "outside the configured scope" in refused.problems[0].reason
    )
    assert (await gather_report(jobs.graph, None, "j2")).verdict == "refused"
    assert (await gather_report(jobs.graph, None, "j3")).verdict == "failed"  # not a refusal
    ended = outcome(await jobs.graph.tree("j1"))
    assert (ended.verdict, ended.findings, ended.worst) == ("refused", 0, None)
    assert ended.reason.startswith("refused: BadCommand: 10.1.2.3 is outside")

"""Approval by a vote (approval = "vote"): "scan ... then analyze the results then block the
high ones" runs a scan of a loopback port the test opens, an analysis that rates it high, and
a block that waits while fresh analyzer instances rate the finding again on their own; a
quorum approves it, and the graph shows the vote under the executor. With rules under which
the voters rate it lower, the block is rejected, and nothing reaches the firewall. (The
firewall here is a recorder: the real nft is tested in a namespace, test_action_firewall.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from appliance.actions import firewall
from appliance.actions.model import Block
from appliance.agents.messages import ActRequested, Finding
from appliance.app import in_process
from appliance.settings import Settings

pytestmark = pytest.mark.integration


def _voting(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, approval="vote", approval_voters=3, approval_quorum=2, approval_deadline_s=10
    )


async def _block_after_analysis(
    settings: Settings, port: int, loaded: list[firewall.Entries]
) -> tuple[str, list[str]]:
    async with asyncio.timeout(60), in_process(settings, load_firewall=loaded.append) as app:
        started = time.monotonic()
        job, root, _ = await app.submit(
            f"scan 127.0.0.1 ports {port} then analyze the results then block the high ones"
        )
        outcome = await app.runtime.wait_task(root)
        assert outcome.status == "done", outcome.detail
        (action,) = app.actions.records()
        tree = await app.runtime.graph.tree(job.job_id)
        elapsed = time.monotonic() - started
    kinds = sorted(f"{n.agent_type}: {n.objective}" for n in tree.tasks)
    print(f"finding to decided block: {elapsed:.2f} s ({action.state}, {action.decided_by})")
    return f"{action.state}|{action.decided_by}|{action.detail}", kinds


async def test_a_quorum_of_analyzers_approves_the_block(
    settings: Settings, open_ports: list[int]
) -> None:
    loaded: list[firewall.Entries] = []
    decided, kinds = await _block_after_analysis(_voting(settings), open_ports[0], loaded)
    state, by, _ = decided.split("|")
    assert state == "applied" and by.startswith("vote vote-act-") and "2 of 3 analyzers" in by
    assert loaded == [firewall.Entries(blocked=("127.0.0.1",))]
    voters = [k for k in kinds if k.startswith("analyzer: rate 127.0.0.1:")]
    assert len(voters) == 3 and any(k.startswith("consensus: vote: block") for k in kinds), kinds


async def test_voters_who_rate_it_lower_reject_the_block(
    settings: Settings, tmp_path: Path
) -> None:
    """A block asked on a finding rated high, while this appliance's analyzers (the voters)
    rate every port low by their rules: no quorum, no block, and the vote says why."""
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        '[default]\nservice = "unknown"\nseverity = "low"\ntitle = "Open port"\n'
        'advice = "Check it."\n'
    )
    voting = msgspec.structs.replace(_voting(settings), rules_file=lenient)
    high = Finding(
        host="127.0.0.1", port=5432, service="db", severity="high", title="t", advice="a"
    )
    loaded: list[firewall.Entries] = []
    async with asyncio.timeout(60), in_process(voting, load_firewall=loaded.append) as app:
        _, root = app.runtime.submit(
            "block 127.0.0.1",
            "executor",
            start=ActRequested(
                actions=[Block(address="127.0.0.1", reason="high: t")], findings=[high]
            ),
        )
        outcome = await app.runtime.wait_task(root)
        (action,) = app.actions.records()
    assert outcome.status == "done", outcome.detail
    assert action.state == "rejected" and "0 of 3 analyzers" in action.decided_by
    assert "quorum impossible" in action.detail and loaded == []


def test_a_quorum_above_the_voters_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'approval = "vote"\napproval_voters = 2\napproval_quorum = 3\n'
    )
    with pytest.raises(ValueError, match=r"approval_quorum \(3\) is more than approval_voters"):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})


async def test_a_condition_that_holds_asks_for_the_action_on_the_host_it_checked(
    settings: Settings, open_ports: list[int]
) -> None:
    """ "if port P is open on 127.0.0.1, quarantine it": the probe sees the port open, and the
    quarantine (an admin's to approve: approval is "admin" here) names the probed host."""
    loaded: list[firewall.Entries] = []
    async with asyncio.timeout(60), in_process(settings, load_firewall=loaded.append) as app:
        _, root, _ = await app.submit(
            f"if port {open_ports[0]} is open on 127.0.0.1, quarantine it"
        )
        outcome = await app.runtime.wait_task(root)
        (action,) = app.actions.records()
    assert outcome.status == "done", outcome.detail
    assert (action.what, action.state, action.approval) == (
        "quarantine 127.0.0.1",
        "pending",
        "admin",
    )
    assert loaded == []

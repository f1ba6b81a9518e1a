"""qey plan: the plan a command would run, as a tree or JSON, and nothing runs."""

from __future__ import annotations

import msgspec
import pytest

from appliance.planner.plan import decode_plan
from appliance.schedules.cadence import Daily
from appliance.settings import Settings
from tests.integration.test_cli import qey

pytestmark = pytest.mark.integration


def test_qey_plan_prints_the_tree_and_runs_nothing(settings: Settings) -> None:
    done = qey(settings, "plan", "scan 127.0.0.1 ports 23 then if telnet is open record it")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == 'Plan: "scan 127.0.0.1 ports 23 then if telnet is open record it"'
    assert "└── s1 data_collector" in lines[1] and "ports 23" in lines[1]
    assert "└── s2 executor" in lines[2] and "if port 23 is open" in lines[2]
    assert not settings.db_path.exists()  # nothing recorded: nothing ran


def test_qey_plan_json_decodes_into_the_plan(settings: Settings) -> None:
    done = qey(settings, "plan", "--json", "scan 127.0.0.1 every night at 02:00")
    assert done.returncode == 0, done.stderr
    plan = decode_plan(done.stdout)
    assert plan.schedule == Daily(hour=2) and plan.runs == "scan 127.0.0.1"
    assert [s.agent_type for s in plan.steps] == ["data_collector"]
    assert msgspec.json.decode(done.stdout)["scheduled"] is True


def test_qey_plan_refuses_clearly(settings: Settings) -> None:
    done = qey(settings, "plan", "scan 127.0.0.1 then make me a sandwich")
    assert done.returncode == 1 and done.stdout == ""
    assert "Not understood: 'make me a sandwich'" in done.stderr
    out = qey(settings, "plan", "scan 127.0.0.1 then scan 10.9.9.9")
    assert out.returncode == 1 and "10.9.9.9 is outside the configured scope" in out.stderr


def test_qey_submit_wait_describes_a_plans_steps(settings: Settings, open_ports: list[int]) -> None:
    command = f"scan 127.0.0.1 ports {open_ports[0]} then record it only if port 23 is open"
    done = qey(settings, "submit", "--wait", command, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(" done: 2 step(s): 1 ran, 1 skipped, 0 failed, 1 finding(s)")
    assert lines[1] == "  s1 data_collector: done"
    assert lines[2] == "  s2 executor: skipped (condition not met: if port 23 is open)"
    assert lines[3] == f"  [low] 127.0.0.1:{open_ports[0]} Unexpected open port"

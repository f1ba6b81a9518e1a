"""The qey command as a user runs it: a real process, real data dir, loopback ports only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.settings import Settings
from tests.integration.processes import running_appliance

pytestmark = pytest.mark.integration

SUBCOMMANDS = [
    [],
    ["run"],
    ["submit"],
    ["jobs"],
    ["tasks"],
    ["tasks", "tree"],
    ["tasks", "chain"],
    ["agents"],
    ["passwd"],
    ["report"],
    ["approvals"],
    ["actions"],
    ["undo"],
]


def qey(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QEY_DATA_DIR": str(settings.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _write_config(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "config.toml").write_text(
        f"scope = {settings.scope!r}\nports = []\nrules_file = '{settings.rules_file}'\n".replace(
            "'", '"'
        )
    )


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=lambda s: " ".join(s) or "qey")
def test_every_subcommand_has_help(settings: Settings, sub: list[str]) -> None:
    result = qey(settings, *sub, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: qey")


def test_submit_runs_in_process_when_no_appliance_runs(
    settings: Settings, open_ports: list[int]
) -> None:
    _write_config(settings)
    ports = ",".join(map(str, open_ports))
    done = qey(
        settings, "submit", "--wait", f"analyze network security posture of 127.0.0.1 ports {ports}"
    )
    assert done.returncode == 0, done.stderr
    job_id, status = done.stdout.split()[:2]
    assert job_id.startswith("job-") and status == "done:"
    assert "3 open port(s)" in done.stdout
    assert "scanning 127.0.0.1" in done.stderr  # progress while it ran

    tree = qey(settings, "tasks", "tree", job_id, "--status")
    lines = tree.stdout.splitlines()
    assert (
        lines[0] == f'User Command: "analyze network security posture of 127.0.0.1 ports {ports}"'
    )
    assert lines[1].startswith("  └── Coordinator (task-") and lines[1].endswith("[done]")
    assert "DataCollector-1" in lines[2] and "Analyzer-1" in lines[3] and "Executor-1" in lines[4]

    executor_task = lines[4].split("(")[1].split(",")[0]
    chain = qey(settings, "tasks", "chain", executor_task)
    assert chain.stdout.count("←") == 4 and "User Command" in chain.stdout

    handed = qey(settings, "events", job_id)  # the audit trail: what each handler was handed
    assert handed.returncode == 0, handed.stderr
    kinds = [line.split()[2] for line in handed.stdout.splitlines()]
    assert kinds.count("task.start") == 1 and "scan.requested" in kinds
    assert "analysis.requested" in kinds and all(
        line.split()[3] == "done" for line in handed.stdout.splitlines()
    )
    only = qey(settings, "events", job_id, "--task", executor_task, "--json")
    assert [json.loads(line)["task_id"] for line in only.stdout.splitlines()] == [executor_task]
    none = qey(settings, "events", "job-nope")
    assert none.returncode == 1 and "no handled events recorded for job 'job-nope'" in none.stderr


def test_bad_input_gets_a_clear_error_and_exit_status(settings: Settings) -> None:
    _write_config(settings)
    out_of_scope = qey(settings, "submit", "--wait", "analyze network security posture of 8.8.8.8")
    assert out_of_scope.returncode == 1
    assert "outside the configured scope" in out_of_scope.stdout
    missing = qey(settings, "tasks", "tree", "job-nope")
    assert missing.returncode == 1 and "no job 'job-nope'" in missing.stderr
    _not_understood(settings)


def _not_understood(settings: Settings) -> None:
    """A command nobody takes: the refusal in words, then what a CLI user can do about it
    (the API's message stays free of CLI flags: the panel shows it too)."""
    said = qey(settings, "submit", "make me a sandwich")
    assert said.returncode == 1 and "no agent type is a confident match" in said.stderr
    assert "--agent" not in said.stderr.splitlines()[0]
    assert said.stderr.splitlines()[-1] == "qey: or name the agent type: --agent TYPE (qey agents)"


def test_an_internal_type_cannot_be_submitted_to(settings: Settings) -> None:
    _write_config(settings)
    for agent_type in ("network_watcher", "consensus"):
        refused = qey(settings, "submit", "--agent", agent_type, "watch the network")
        assert refused.returncode == 1
        assert f"agent type '{agent_type}' is internal" in refused.stderr
        assert "commands go to: analyzer, coordinator, data_collector, executor" in refused.stderr
    assert "watch the network" not in qey(settings, "jobs").stdout


def test_submit_talks_to_the_running_appliance(settings: Settings, open_ports: list[int]) -> None:
    _write_config(settings)
    with running_appliance(settings) as appliance:
        sock = settings.control_socket
        assert sock.exists() and (sock.stat().st_mode & 0o077) == 0  # owner only

        submitted = qey(
            settings,
            "submit",
            "--json",
            f"analyze network security posture of 127.0.0.1 ports {open_ports[0]}",
        )
        job = json.loads(submitted.stdout)
        assert job["status"] == "submitted"  # only the running appliance answers like this

        waited = qey(
            settings,
            "submit",
            "--wait",
            "--json",
            f"analyze network security posture of 127.0.0.1 ports {open_ports[1]}",
        )
        outcome = json.loads(waited.stdout)
        assert outcome["status"] == "done", waited.stderr
        ended = {"verdict": "done", "reason": "", "findings": 1, "worst": "low"}
        assert outcome["outcome"] == ended
        assert outcome["result"]["open"] == [{"host": "127.0.0.1", "open_ports": [open_ports[1]]}]
        assert "+ data_collector" in waited.stderr  # live events streamed from the appliance
        _not_understood(settings)  # refused by the running appliance's API: the same words
    assert appliance.stdout is not None
    assert "qey stopped: store closed" in appliance.stdout.read()  # the graceful path, to its end
    assert not Path(sock).exists()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        jobs = qey(settings, "jobs").stdout
        if job["job_id"] in jobs:
            break
    assert job["job_id"] in jobs

"""``qey schedules`` as a user runs it, with and without a running appliance; and a schedule
missed while the appliance was off fires once when it starts, as an autonomous job linked to
its schedule."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from appliance.runtime import Store, SystemClock
from appliance.schedules.cadence import Every, Once
from appliance.schedules.store import ScheduleRecord, Schedules
from appliance.settings import Settings
from tests.integration.processes import running_appliance
from tests.integration.test_cli import _write_config, qey

pytestmark = pytest.mark.integration


def _add(settings: Settings, command: str, cadence: Every | Once) -> ScheduleRecord:
    """A schedule made on the data directory, as the appliance's submit would make it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(settings.db_path)
    try:
        return Schedules(store, SystemClock()).add(command, cadence, job_id="job-maker")
    finally:
        store.close()


def _listed(settings: Settings) -> list[ScheduleRecord]:
    shown = qey(settings, "schedules", "--json")
    assert shown.returncode == 0, shown.stderr
    return msgspec.json.decode(shown.stdout, type=list[ScheduleRecord])


def test_schedules_without_a_running_appliance(settings: Settings) -> None:
    _write_config(settings)
    assert "no schedules" in qey(settings, "schedules").stdout
    made = _add(settings, "scan 127.0.0.1", Every(count=1, unit="hour"))

    listed = qey(settings, "schedules")
    assert listed.returncode == 0, listed.stderr
    assert made.id in listed.stdout and "every hour" in listed.stdout
    assert "scan 127.0.0.1" in listed.stdout and "active" in listed.stdout

    paused = qey(settings, "schedules", "pause", made.id)
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert [s.paused for s in _listed(settings)] == [True]
    assert qey(settings, "schedules", "resume", made.id).returncode == 0
    assert [s.paused for s in _listed(settings)] == [False]

    unknown = qey(settings, "schedules", "delete", "sched-00000000")
    assert unknown.returncode == 1 and "no schedule 'sched-00000000'" in unknown.stderr
    missing = qey(settings, "schedules", "pause")
    assert missing.returncode == 1 and "needs a schedule id" in missing.stderr
    assert [s.id for s in _listed(settings)] == [made.id]  # nothing lost on bad input

    assert qey(settings, "schedules", "delete", made.id).returncode == 0
    assert _listed(settings) == []


def test_a_missed_firing_runs_once_at_start_and_the_cli_talks_to_the_appliance(
    settings: Settings, open_ports: list[int]
) -> None:
    _write_config(settings)
    command = f"analyze network security posture of 127.0.0.1 ports {open_ports[0]}"
    # far enough ahead that adding it is never late, even on a loaded machine
    soon = datetime.now().replace(microsecond=0) + timedelta(seconds=5)
    once = _add(settings, command, Once(at=soon))
    hourly = _add(settings, "scan 127.0.0.1", Every(count=1, unit="hour"))
    time.sleep(max(0.0, (soon - datetime.now()).total_seconds()) + 0.5)  # it is missed

    with running_appliance(settings):
        deadline = time.monotonic() + 30
        fired: ScheduleRecord | None = None
        while time.monotonic() < deadline:
            fired = next(s for s in _listed(settings) if s.id == once.id)
            if fired.last_job is not None or fired.last_error:
                break
            time.sleep(0.2)
        assert fired is not None and fired.last_job is not None, fired
        assert fired.next_fire is None and fired.last_error == ""  # a one-off: done

        paused = qey(settings, "schedules", "pause", hourly.id)  # over the control socket
        assert paused.returncode == 0, paused.stderr
        assert next(s for s in _listed(settings) if s.id == hourly.id).paused
        assert qey(settings, "schedules", "delete", hourly.id).returncode == 0
        assert [s.id for s in _listed(settings)] == [once.id]
        refused = qey(settings, "schedules", "resume", hourly.id)
        assert refused.returncode == 1 and f"no schedule '{hourly.id}'" in refused.stderr

    jobs = qey(settings, "jobs").stdout.splitlines()
    firings = [line for line in jobs if command in line]
    assert firings == [f"{fired.last_job}  {command} (autonomous)"]  # once, not once a miss
    store = Store(settings.db_path)
    try:
        rows = store.read_now(
            lambda db: db.execute(
                "SELECT body FROM journal WHERE kind = 'schedule.fired' AND job_id = ?",
                [fired.last_job],
            ).fetchall()
        )
    finally:
        store.close()
    link = json.loads(rows[0][0])
    assert (link["schedule_id"], link["created_by"]) == (once.id, "job-maker")


def test_schedules_has_help(settings: Settings) -> None:
    shown = qey(settings, "schedules", "--help")
    assert shown.returncode == 0 and "pause" in shown.stdout
    assert Path(settings.data_dir).exists() is False  # help touches nothing

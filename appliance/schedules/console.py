"""``qey schedules``: list, pause, resume and delete schedules from a shell.

Through the running appliance's control socket (so its scheduler hears of the change at
once); when no appliance runs, straight on the data directory's database, holding the data
directory's lock meanwhile so that no appliance starts beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import msgspec

from appliance.columns import columns
from appliance.schedules.store import ScheduleRecord, Schedules
from appliance.settings import Settings

ACTIONS = ("list", "pause", "resume", "delete")


def render(records: Sequence[ScheduleRecord]) -> str:
    """One line per schedule: id, state, when, next firing (device time), command."""
    if not records:
        return "no schedules (submit a command with a schedule in it, e.g. 'every night')"
    rows = [("ID", "STATE", "WHEN", "NEXT", "LAST JOB", "COMMAND")]
    for r in records:
        state = "paused" if r.paused else ("done" if r.next_fire is None else "active")
        rows.append((r.id, state, r.when, _local(r.next_fire), r.last_job or "-", r.command))
    return columns(rows)


def _local(at: float | None) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def run(settings: Settings, action: str, schedule_id: str | None, *, as_json: bool) -> int:
    """Do ``action`` and print the result; errors are ApplianceError (the CLI's one line)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action != "list" and not schedule_id:
        raise ValueError(f"'qey schedules {action}' needs a schedule id (see 'qey schedules')")
    result = asyncio.run(_through_appliance(settings, action, schedule_id))
    if isinstance(result, _NoAppliance):
        result = _on_disk(settings, action, schedule_id)
    if as_json:
        print(msgspec.json.encode(result).decode())
    elif action == "list":
        assert isinstance(result, list)
        print(render(result))
    elif action == "delete":
        print(f"deleted {schedule_id}")
    else:
        assert isinstance(result, ScheduleRecord)
        print(render([result]))
    return 0


class _NoAppliance:
    pass


Result = list[ScheduleRecord] | ScheduleRecord | None


async def _through_appliance(
    settings: Settings, action: str, schedule_id: str | None
) -> Result | _NoAppliance:
    from appliance.client import ControlClient, NotRunning

    try:
        async with ControlClient(settings.control_socket) as client:
            if action == "list":
                return await client.schedules()
            assert schedule_id is not None
            return await client.change_schedule(schedule_id, action)
    except NotRunning:
        return _NoAppliance()


def _on_disk(settings: Settings, action: str, schedule_id: str | None) -> Result:
    """No appliance answers: hold its lock (DataDirInUse if one holds it but does not
    answer) and use the database directly."""
    from appliance.datadir import DataDirLock
    from appliance.runtime import Store, SystemClock

    if not settings.db_path.exists():
        return [] if action == "list" else _unknown(schedule_id)
    lock = DataDirLock.acquire(settings.data_dir)
    try:
        store = Store(settings.db_path)
        try:
            schedules = Schedules(store, SystemClock())
            if action == "list":
                return schedules.list()
            assert schedule_id is not None
            if action == "delete":
                schedules.delete(schedule_id)
                return None
            change = schedules.pause if action == "pause" else schedules.resume
            return change(schedule_id)
        finally:
            store.close()
    finally:
        lock.release()


def _unknown(schedule_id: str | None) -> Result:
    from appliance.errors import UnknownSchedule

    raise UnknownSchedule(f"no schedule {schedule_id!r}")

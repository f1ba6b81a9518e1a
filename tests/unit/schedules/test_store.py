"""The schedule table: what is added stays, across a new Store on the same file, and changes
say what happened to them."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from appliance.errors import BadCommand, UnknownSchedule
from appliance.runtime import FakeClock, Store
from appliance.schedules.cadence import Daily, Every, Once, Weekly
from appliance.schedules.store import Schedules, following, wall_time

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 10, 17).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


def test_added_schedule_is_listed_with_its_next_firing(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    added = schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-1")
    assert schedules.list() == [added]
    assert added.command == "scan 127.0.0.1"
    assert (added.created_by, added.when) == ("job-1", "every hour")
    assert wall_time(added.next_fire or 0) == datetime(2026, 11, 29, 11, 0)
    assert added.created_at == START and not added.paused and added.last_job is None


def test_schedule_survives_an_unclosed_store(tmp_path: Path, clock: FakeClock) -> None:
    """A power cut: the first store is never closed; a new one on the file has the schedule."""
    crashed = Store(tmp_path / "qey.db")
    try:
        added = Schedules(crashed, clock).add("scan 127.0.0.1", Daily(hour=2), job_id="job-1")
        again = Store(tmp_path / "qey.db")
        try:
            assert Schedules(again, clock).list() == [added]
        finally:
            again.close()
    finally:
        crashed.close()


def test_database_files_stay_owner_only(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(tmp_path / "qey.db")
    try:
        Schedules(store, clock).add("scan 127.0.0.1", Daily(hour=2), job_id="job-1")
        for path in tmp_path.iterdir():
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
    finally:
        store.close()


async def test_pause_resume_delete(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    added = schedules.add("scan 127.0.0.1", Every(count=15, unit="minute"), job_id="job-1")
    assert schedules.pause(added.id).paused
    assert schedules.due(START + 86400) == [] and schedules.earliest() is None
    await clock.advance(3 * 3600)  # time moves on while it is paused
    resumed = schedules.resume(added.id)
    assert not resumed.paused
    assert wall_time(resumed.next_fire or 0) == datetime(2026, 11, 29, 13, 30)
    schedules.delete(added.id)
    assert schedules.list() == []
    for change in (schedules.pause, schedules.resume, schedules.delete, schedules.get):
        with pytest.raises(UnknownSchedule):
            change(added.id)


def test_claim_moves_past_now_once_however_many_firings_were_missed(
    store: Store, clock: FakeClock
) -> None:
    schedules = Schedules(store, clock)
    added = schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-1")
    later = START + 10 * 3600 + 60  # ten firings missed
    [due] = schedules.due(later)
    upcoming = schedules.claim(due, later)
    assert upcoming is not None and wall_time(upcoming) == datetime(2026, 11, 29, 21, 0)
    assert schedules.due(later) == []
    with pytest.raises(UnknownSchedule):  # a second claim of the same firing fails
        schedules.claim(due, later)
    assert schedules.get(added.id).last_fired == later


def test_claim_of_a_paused_schedule_fails(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    added = schedules.add("scan 127.0.0.1", Daily(hour=11), job_id="job-1")
    [due] = schedules.due(START + 3600)
    schedules.pause(added.id)
    with pytest.raises(UnknownSchedule):
        schedules.claim(due, START + 3600)


def test_a_one_off_fires_then_never_again(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    schedules.add("scan 127.0.0.1", Once(at=datetime(2026, 11, 29, 12, 0)), job_id="job-1")
    [due] = schedules.due(START + 7200)
    assert schedules.claim(due, START + 7200) is None
    assert schedules.earliest() is None and schedules.list()[0].next_fire is None


def test_bad_schedules_are_refused_and_nothing_is_kept(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    with pytest.raises(BadCommand, match="already passed"):
        schedules.add("scan", Once(at=datetime(2026, 11, 29, 9, 0)), job_id="job-1")
    with pytest.raises(BadCommand, match="needs a command"):
        schedules.add("  ", Daily(hour=2), job_id="job-1")
    assert schedules.list() == []


def test_listeners_hear_each_change(store: Store, clock: FakeClock) -> None:
    schedules = Schedules(store, clock)
    heard: list[str] = []
    stop = schedules.subscribe(lambda: heard.append("changed"))
    added = schedules.add("scan 127.0.0.1", Weekly(weekdays=(0,), hour=9), job_id="job-1")
    schedules.pause(added.id)
    stop()
    schedules.delete(added.id)
    assert heard == ["changed", "changed"]


def test_following_is_strictly_after(clock: FakeClock) -> None:
    at = datetime(2026, 11, 29, 11, 0).timestamp()
    assert following(Every(count=1, unit="hour"), at) == at + 3600
    assert following(Daily(hour=11), at) == datetime(2026, 11, 30, 11, 0).timestamp()


@pytest.fixture
def berlin() -> Iterator[None]:
    """The device's local time is Europe/Berlin (CET/CEST) for one test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.usefixtures("berlin")
def test_daily_fires_once_a_day_through_both_dst_changes() -> None:
    """02:30 does not exist on 29 March 2026 (it runs at 03:30) and occurs twice on
    25 October (it runs once); every other day it runs at 02:30."""
    at = datetime(2026, 3, 1).timestamp()
    days = []
    for _ in range(300):
        upcoming = following(Daily(hour=2, minute=30), at)
        assert upcoming is not None and upcoming > at
        local = wall_time(upcoming)
        days.append(local.date())
        expected = (3, 30) if local.date() == datetime(2026, 3, 29).date() else (2, 30)
        assert (local.hour, local.minute) == expected
        at = upcoming
    assert len(set(days)) == len(days) == 300  # one firing a day, none lost or repeated


@pytest.mark.usefixtures("berlin")
def test_hourly_does_not_repeat_the_hour_autumn_repeats() -> None:
    at = datetime(2026, 10, 25, 0, 30).timestamp()
    fired = []
    for _ in range(5):
        upcoming = following(Every(count=1, unit="hour"), at)
        assert upcoming is not None
        fired.append(wall_time(upcoming).hour)
        at = upcoming
    assert fired == [1, 2, 3, 4, 5]


def test_a_clock_set_back_brings_next_firings_back(store: Store) -> None:
    """Made while the clock was a day ahead; once it is right, "every hour" fires within the
    hour, not in 25 hours. While the clock only goes forward, realign moves nothing."""
    ahead = Schedules(store, FakeClock(start=START + 86400))
    hourly = ahead.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-1")
    later = ahead.add("scan later", Every(count=7, unit="hour"), job_id="job-1")
    assert ahead.realign(START + 86400) == 0
    right = Schedules(store, FakeClock(start=START))
    assert right.realign(START) == 2
    assert wall_time(right.get(hourly.id).next_fire or 0) == datetime(2026, 11, 29, 11, 0)
    assert right.get(later.id).next_fire == START + 7 * 3600
    assert right.realign(START + 60) == 0

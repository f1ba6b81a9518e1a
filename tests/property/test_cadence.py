"""next_fire on generated cadences and instants: always after, never skipping a firing.

Cadences are naive local wall time (see appliance/schedules/cadence.py): the arithmetic has
no UTC offset, so a DST change cannot move a firing; only the scheduler maps wall time to
instants. These properties hold for every wall time, including those a DST change skips or
repeats."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.schedules.cadence import (
    UNIT_SECONDS,
    AnyCadence,
    Daily,
    Every,
    Monthly,
    Once,
    Weekly,
    decode_cadence,
    encode_cadence,
    next_fire,
)

pytestmark = pytest.mark.property

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1))
cadences: st.SearchStrategy[AnyCadence] = st.one_of(
    st.builds(
        Every,
        count=st.integers(1, 200),
        unit=st.sampled_from(["minute", "hour", "day", "week"]),
    ),
    st.builds(Daily, hour=st.integers(0, 23), minute=st.integers(0, 59)),
    st.builds(
        Weekly,
        weekdays=st.lists(st.integers(0, 6), min_size=1, max_size=7).map(tuple),
        hour=st.integers(0, 23),
        minute=st.integers(0, 59),
    ),
    st.builds(
        Monthly,
        day=st.integers(1, 31),
        hour=st.integers(0, 23),
        minute=st.integers(0, 59),
        months=st.sampled_from([1, 2, 3, 4, 6, 12]),
    ),
    st.builds(Once, at=instants.map(lambda d: d.replace(microsecond=0))),
)


def _period(cadence: AnyCadence) -> timedelta:
    if isinstance(cadence, Every):
        return timedelta(seconds=cadence.count * UNIT_SECONDS[cadence.unit])
    if isinstance(cadence, Monthly):  # its months, each at most 31 days, plus a day's slack
        return timedelta(days=31 * cadence.months + 1)
    return timedelta(days=1 if isinstance(cadence, Daily) else 7)


@given(cadences, instants)
def test_next_fire_is_strictly_after_and_within_one_period(
    cadence: AnyCadence, after: datetime
) -> None:
    fire = next_fire(cadence, after)
    if isinstance(cadence, Once):
        assert fire == (cadence.at if cadence.at > after else None)
        return
    assert fire is not None and fire > after
    assert fire - after <= _period(cadence)
    if isinstance(cadence, Daily | Weekly):
        assert (fire.hour, fire.minute, fire.second) == (cadence.hour, cadence.minute, 0)
    if isinstance(cadence, Weekly):
        assert fire.weekday() in cadence.weekdays
    if isinstance(cadence, Monthly):
        assert (fire.hour, fire.minute, fire.second) == (cadence.hour, cadence.minute, 0)
        assert (fire.month - 1) % cadence.months == 0
        month_end = (fire.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        assert fire.day == min(cadence.day, month_end.day)


@given(cadences, instants, st.floats(0.0, 1.0))
def test_asking_again_before_the_firing_gives_the_same_firing(
    cadence: AnyCadence, after: datetime, fraction: float
) -> None:
    """No firing is skipped: any instant between ``after`` and the next firing leads to it."""
    fire = next_fire(cadence, after)
    if fire is None or (
        isinstance(cadence, Every) and 86400 % int(_period(cadence).total_seconds())
    ):
        return  # an interval off the day's grid counts from the previous firing, by design
    between = after + (fire - after) * fraction
    if between < fire:
        assert next_fire(cadence, between) == fire


@given(cadences, instants)
def test_firings_advance_and_survive_storage(cadence: AnyCadence, after: datetime) -> None:
    stored = decode_cadence(encode_cadence(cadence))
    assert stored == cadence
    fire = next_fire(stored, after)
    for _ in range(5):
        if fire is None:
            break
        following = next_fire(stored, fire)
        assert following is None or following > fire
        fire = following

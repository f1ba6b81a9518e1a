"""Schedule phrases as people say them, and what each becomes."""

from __future__ import annotations

from datetime import datetime

import msgspec
import pytest

from appliance.schedules.cadence import (
    AnyCadence,
    CadenceMatch,
    Daily,
    Every,
    Monthly,
    Once,
    Weekly,
    decode_cadence,
    describe,
    encode_cadence,
    find_cadence,
    next_fire,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 20, 0)  # a Sunday evening
WEEKDAYS = (0, 1, 2, 3, 4)

PHRASES: list[tuple[str, str, AnyCadence]] = [
    ("scan 127.0.0.1 every hour", "every hour", Every(count=1, unit="hour")),
    ("hourly scan of 10.0.0.0/24", "hourly", Every(count=1, unit="hour")),
    ("scan the nas every 15 minutes", "every 15 minutes", Every(count=15, unit="minute")),
    ("check it every 2 hrs", "every 2 hrs", Every(count=2, unit="hour")),
    ("every half hour ping the printer", "every half hour", Every(count=30, unit="minute")),
    ("scan every other day", "every other day", Every(count=2, unit="day")),
    ("twice a day scan the lan", "twice a day", Every(count=12, unit="hour")),
    ("fortnightly audit", "fortnightly", Every(count=2, unit="week")),
    ("scan 127.0.0.1 every night", "every night", Daily(hour=23)),
    ("nightly scan of the lan", "nightly", Daily(hour=23)),
    ("each morning check the nas", "each morning", Daily(hour=8)),
    ("every evening at 7 report", "every evening at 7", Daily(hour=19)),
    ("every night at 2 scan", "every night at 2", Daily(hour=2)),
    ("daily at 02:00 scan 10.0.0.0/24", "daily at 02:00", Daily(hour=2)),
    ("scan 10.0.0.1 at 9.30 every day", "at 9.30 every day", Daily(hour=9, minute=30)),
    ("scan 192.168.1.10 every day", "every day", Daily(hour=0)),
    ("at noon daily send the report", "at noon daily", Daily(hour=12)),
    ("once a day scan", "once a day", Daily(hour=0)),
    ("weekly scan of the lan", "weekly", Weekly(weekdays=(6,), hour=0)),
    ("scan every sunday night", "every sunday night", Weekly(weekdays=(6,), hour=23)),
    ("on weekdays at 9 scan", "on weekdays at 9", Weekly(weekdays=WEEKDAYS, hour=9)),
    ("scan every weekday", "every weekday", Weekly(weekdays=WEEKDAYS, hour=0)),
    ("scan mon-fri at 8pm", "mon-fri at 8pm", Weekly(weekdays=WEEKDAYS, hour=20)),
    ("sundays at 3pm scan", "sundays at 3pm", Weekly(weekdays=(6,), hour=15)),
    ("on weekends at 10am scan", "on weekends at 10am", Weekly(weekdays=(5, 6), hour=10)),
    (
        "every monday and thursday at 18:30 scan",
        "every monday and thursday at 18:30",
        Weekly(weekdays=(0, 3), hour=18, minute=30),
    ),
    ("every weekday morning scan", "every weekday morning", Weekly(weekdays=WEEKDAYS, hour=8)),
    ("weeknights scan the nas", "weeknights", Weekly(weekdays=WEEKDAYS, hour=23)),
    ("every 2nd day audit", "every 2nd day", Every(count=2, unit="day")),
    ("every 12h check", "every 12h", Every(count=12, unit="hour")),
    ("every hour on the hour scan", "every hour on the hour", Every(count=1, unit="hour")),
    ("scan at 0200 daily", "at 0200 daily", Daily(hour=2)),
    ("tomorrow at 9:00 scan", "tomorrow at 9:00", Once(at=datetime(2026, 11, 30, 9, 0))),
    ("scan at 2am", "at 2am", Once(at=datetime(2026, 11, 30, 2, 0))),
    ("scan at 02:00", "at 02:00", Once(at=datetime(2026, 11, 30, 2, 0))),
    ("scan at 21:15", "at 21:15", Once(at=datetime(2026, 11, 29, 21, 15))),
    ("scan tonight", "tonight", Once(at=datetime(2026, 11, 29, 23, 0))),
    ("in 2 hours scan", "in 2 hours", Once(at=datetime(2026, 11, 29, 22, 0))),
    ("scan the nas in the morning", "in the morning", Once(at=datetime(2026, 11, 30, 8, 0))),
    ("next friday at 6pm scan", "next friday at 6pm", Once(at=datetime(2026, 12, 4, 18, 0))),
    ("scan the nas monthly", "monthly", Monthly()),
    ("every month scan", "every month", Monthly()),
    ("scan once a month at 3am", "once a month at 3am", Monthly(hour=3)),
    (
        "scan on the 15th of every month at 02:00",
        "on the 15th of every month at 02:00",
        Monthly(day=15, hour=2),
    ),
    ("monthly on the 3rd, scan", "monthly on the 3rd", Monthly(day=3)),
    ("on the last day of the month scan", "on the last day of the month", Monthly(day=31)),
    ("every first of the month at noon scan", "every first of the month at noon", Monthly(hour=12)),
    ("scan every 2 months", "every 2 months", Monthly(months=2)),
    ("quarterly on the 2nd audit", "quarterly on the 2nd", Monthly(day=2, months=3)),
    ("scan 127.0.0.1 yearly", "yearly", Monthly(months=12)),
]


@pytest.mark.parametrize(("text", "phrase", "cadence"), PHRASES)
def test_phrase_becomes_its_cadence_and_span(text: str, phrase: str, cadence: AnyCadence) -> None:
    match = find_cadence(text, NOW)
    assert match is not None
    assert (match.cadence, match.phrase) == (cadence, phrase)
    assert text[match.span[0] : match.span[1]] == phrase


@pytest.mark.parametrize(
    "text",
    [
        "if port 23 is open on 127.0.0.1, tell me",
        "scan 127.0.0.1 then analyze the results",
        "analyze the scan results from this morning",
        "look at 10.0.0.1 and 192.168.1.10",
        "scan ports 20-25 on 10.0.0.0/24",
        "compare with last week",
        "what did the scan find today",
        "alert if more than 100 logins per hour",
        "scan port 8080 at 8080",
        "scan every 13 months",
        "scan 127.0.0.1 on the 15th",
        "report in 2 months",
    ],
)
def test_commands_without_a_schedule_have_no_cadence(text: str) -> None:
    assert find_cadence(text, NOW) is None


def test_a_recurrence_wins_over_a_one_off_time_elsewhere() -> None:
    match = find_cadence("at 5pm scan the nas, and do it every hour", NOW)
    assert match is not None and match.cadence == Every(count=1, unit="hour")


def test_a_past_time_today_is_not_a_schedule() -> None:
    assert find_cadence("the scan today at 08:00", NOW) is None


@pytest.mark.parametrize(
    ("cadence", "text"),
    [
        (Every(count=1, unit="hour"), "every hour"),
        (Every(count=15, unit="minute"), "every 15 minutes"),
        (Daily(hour=2), "daily at 02:00"),
        (Weekly(weekdays=(3, 0), hour=18, minute=30), "every Monday and Thursday at 18:30"),
        (Weekly(weekdays=WEEKDAYS, hour=9), "every weekday at 09:00"),
        (Once(at=datetime(2026, 11, 30, 9, 0)), "once at 2026-11-30 09:00"),
        (Monthly(day=15, hour=2), "monthly on the 15th at 02:00"),
        (Monthly(day=31, hour=23, minute=30), "monthly on the last day at 23:30"),
        (Monthly(day=2, months=3), "quarterly on the 2nd at 00:00"),
        (Monthly(months=12), "yearly on the 1st of January at 00:00"),
    ],
)
def test_describe(cadence: AnyCadence, text: str) -> None:
    assert describe(cadence) == text


def test_cadence_round_trips_through_json_with_its_tag() -> None:
    for _, _, cadence in PHRASES:
        encoded = encode_cadence(cadence)
        assert decode_cadence(encoded) == cadence
    assert b'"kind":"weekly"' in encode_cadence(Weekly(weekdays=(0,), hour=1))
    match = CadenceMatch(cadence=Daily(hour=2), span=(0, 5), phrase="daily")
    assert msgspec.json.decode(msgspec.json.encode(match), type=CadenceMatch) == match


def test_bad_stored_cadence_is_refused_on_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_cadence(b'{"kind":"daily","hour":25}')
    with pytest.raises(msgspec.ValidationError):
        decode_cadence(b'{"kind":"weekly","weekdays":[],"hour":1}')
    with pytest.raises(msgspec.ValidationError):
        decode_cadence(b'{"kind":"every","count":0,"unit":"hour"}')
    with pytest.raises(msgspec.ValidationError):
        decode_cadence(b'{"kind":"monthly","day":32}')


def test_next_fire_examples() -> None:
    at = datetime(2026, 11, 29, 10, 17, 30)
    assert next_fire(Every(count=1, unit="hour"), at) == datetime(2026, 11, 29, 11, 0)
    assert next_fire(Every(count=15, unit="minute"), at) == datetime(2026, 11, 29, 10, 30)
    assert next_fire(Every(count=7, unit="hour"), at) == datetime(2026, 11, 29, 17, 17, 30)
    assert next_fire(Daily(hour=2), at) == datetime(2026, 11, 30, 2, 0)
    assert next_fire(Daily(hour=10, minute=17), datetime(2026, 11, 29, 10, 17)) == datetime(
        2026, 11, 30, 10, 17
    )
    assert next_fire(Weekly(weekdays=(0, 3), hour=18, minute=30), at) == datetime(
        2026, 11, 30, 18, 30
    )
    once = Once(at=datetime(2026, 11, 30, 9, 0))
    assert next_fire(once, at) == datetime(2026, 11, 30, 9, 0)
    assert next_fire(once, datetime(2026, 11, 30, 9, 0)) is None


def test_monthly_runs_on_the_last_day_of_a_month_too_short_for_its_day() -> None:
    last = Monthly(day=31, hour=1)
    fires = [datetime(2027, 1, 1)]
    for _ in range(4):
        nxt = next_fire(last, fires[-1])
        assert nxt is not None
        fires.append(nxt)
    assert fires[1:] == [
        datetime(2027, 1, 31, 1, 0),
        datetime(2027, 2, 28, 1, 0),
        datetime(2027, 3, 31, 1, 0),
        datetime(2027, 4, 30, 1, 0),
    ]
    leap = next_fire(Monthly(day=30), datetime(2028, 2, 1))
    assert leap == datetime(2028, 2, 29)


def test_every_n_months_is_on_the_years_grid() -> None:
    quarterly = Monthly(day=1, months=3)
    assert next_fire(quarterly, datetime(2026, 11, 29)) == datetime(2027, 1, 1)
    assert next_fire(quarterly, datetime(2027, 1, 1)) == datetime(2027, 4, 1)
    assert next_fire(Monthly(months=12), datetime(2026, 12, 31, 23, 59)) == datetime(2027, 1, 1)

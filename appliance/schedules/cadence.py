"""When a scheduled command runs: the cadence types, the phrases people use for them, and the
next firing time.

A cadence is data (a tagged msgspec Struct, so a stored schedule outlives class names) and the
arithmetic on it is pure: ``next_fire(cadence, after)`` is the first firing strictly after
``after``. Times are the device's *naive local wall time*: "daily at 02:00" means 02:00 on the
clock on the wall, whatever the UTC offset is that day. The arithmetic never sees a UTC
offset, so it has no DST cases of its own; the scheduler turns a naive local time into an
instant with the platform's local-time rules (a wall time skipped by a spring-forward runs at
the first instant after the gap, one that occurs twice in autumn runs once, at its first
occurrence), so a DST change neither loses nor repeats a firing.

Defaults, when the phrase names no time (cron's conventions, where there is one):
"daily"/"every day" 00:00, "weekly"/"every week" Sunday 00:00, "monthly"/"every month" the
1st at 00:00; parts of the day: morning 08:00,
noon 12:00, afternoon 14:00, evening 19:00, night 23:00, midnight 00:00. A one-off day with no
time ("tomorrow", "on friday") keeps the current time of day. A bare time ("at 2am") with no
recurrence word is one firing, at its next occurrence.

Fields that hold a cadence should be annotated ``AnyCadence`` (the union of the variants):
``Cadence`` is their common base, which msgspec cannot decode into a variant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal, TypeAlias

import msgspec

Hour = Annotated[int, msgspec.Meta(ge=0, le=23)]
Minute = Annotated[int, msgspec.Meta(ge=0, le=59)]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]  # 0 is Monday, as datetime.weekday()
Unit = Literal["minute", "hour", "day", "week"]

UNIT_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Cadence(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of the cadence variants; annotate fields with ``AnyCadence``."""


class Every(Cadence, frozen=True, kw_only=True, tag="every"):
    """Every ``count`` ``unit``s. An interval that divides a day runs on the day's grid
    ("every 15 minutes" at :00, :15, :30, :45; "every 6 hours" at 00:00, 06:00, ...);
    any other runs ``count`` units after the previous firing."""

    count: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    unit: Unit


class Daily(Cadence, frozen=True, kw_only=True, tag="daily"):
    """Every day at ``hour``:``minute`` local time."""

    hour: Hour
    minute: Minute = 0


class Weekly(Cadence, frozen=True, kw_only=True, tag="weekly"):
    """On each of ``weekdays`` (0 = Monday) at ``hour``:``minute`` local time."""

    weekdays: Annotated[tuple[Weekday, ...], msgspec.Meta(min_length=1, max_length=7)]
    hour: Hour
    minute: Minute = 0

    def __post_init__(self) -> None:
        # One canonical form, so equal schedules compare (and encode) equal.
        canonical = tuple(sorted(set(self.weekdays)))
        if canonical != self.weekdays:
            msgspec.structs.force_setattr(self, "weekdays", canonical)


class Monthly(Cadence, frozen=True, kw_only=True, tag="monthly"):
    """On day ``day`` of every month at ``hour``:``minute`` local time. A month too short for
    ``day`` runs on its last day ("the 31st" is the last day of every month): skipping it, as
    cron does, would leave a check meant for every month out of February altogether."""

    day: Annotated[int, msgspec.Meta(ge=1, le=31)] = 1
    hour: Hour = 0
    minute: Minute = 0
    # every ``months``-th month, on the year's grid: 3 is January, April, July and October
    months: Annotated[int, msgspec.Meta(ge=1, le=12)] = 1


class Once(Cadence, frozen=True, kw_only=True, tag="once"):
    """A single firing at ``at`` (naive local time, whole seconds)."""

    at: datetime


AnyCadence: TypeAlias = Every | Daily | Weekly | Monthly | Once

encode_cadence = msgspec.json.Encoder().encode
decode_cadence: Callable[[bytes | str], AnyCadence] = msgspec.json.Decoder(AnyCadence).decode


class CadenceMatch(msgspec.Struct, frozen=True):
    """A schedule phrase found in a command."""

    cadence: AnyCadence
    span: tuple[int, int]  # where the phrase is in the text (the planner cuts it out)
    phrase: str  # the words it matched, as written


# ---------------------------------------------------------------------------------------------
# next_fire


def next_fire(cadence: Cadence, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (naive local time); None: never again."""
    after = after.replace(tzinfo=None)
    if isinstance(cadence, Every):
        return _next_every(cadence, after)
    if isinstance(cadence, Daily):
        candidate = datetime.combine(after.date(), time(cadence.hour, cadence.minute))
        return candidate if candidate > after else candidate + timedelta(days=1)
    if isinstance(cadence, Weekly):
        at = time(cadence.hour, cadence.minute)
        for offset in range(8):
            day = after.date() + timedelta(days=offset)
            candidate = datetime.combine(day, at)
            if day.weekday() in cadence.weekdays and candidate > after:
                return candidate
        raise AssertionError("unreachable: a week holds every weekday")
    if isinstance(cadence, Monthly):
        year, month = after.year, after.month
        while True:
            import calendar  # here, not at the top: a start does not need it

            last = calendar.monthrange(year, month)[1]
            candidate = datetime(year, month, min(cadence.day, last), cadence.hour, cadence.minute)
            if candidate > after and (month - 1) % cadence.months == 0:
                return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if isinstance(cadence, Once):
        once = cadence.at.replace(tzinfo=None)
        return once if once > after else None
    raise TypeError(f"not a cadence: {cadence!r}")


def _next_every(cadence: Every, after: datetime) -> datetime:
    step = cadence.count * UNIT_SECONDS[cadence.unit]
    if 86400 % step == 0:  # on the day's grid, counted from local midnight
        midnight = datetime.combine(after.date(), time())
        into_day = (after - midnight).total_seconds()
        return midnight + timedelta(seconds=(int(into_day // step) + 1) * step)
    return after.replace(microsecond=0) + timedelta(seconds=step)


# ---------------------------------------------------------------------------------------------
# describe


def describe(cadence: Cadence) -> str:
    """A short phrase for people: "every hour", "daily at 02:00", "every Monday at 18:30"."""
    if isinstance(cadence, Every):
        if cadence.count == 1:
            return f"every {cadence.unit}"
        return f"every {cadence.count} {cadence.unit}s"
    if isinstance(cadence, Daily):
        return f"daily at {cadence.hour:02d}:{cadence.minute:02d}"
    if isinstance(cadence, Weekly):
        at = f"{cadence.hour:02d}:{cadence.minute:02d}"
        days = set(cadence.weekdays)
        if days == set(range(7)):
            return f"daily at {at}"
        if days == set(range(5)):
            return f"every weekday at {at}"
        if days == {5, 6}:
            return f"every Saturday and Sunday at {at}"
        names = [DAY_NAMES[d] for d in cadence.weekdays]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"every {listed} at {at}"
    if isinstance(cadence, Monthly):
        day = "the last day" if cadence.day == 31 else f"the {_ordinal(cadence.day)}"
        if cadence.months == 12:
            return f"yearly on {day} of January at {cadence.hour:02d}:{cadence.minute:02d}"
        every = {1: "monthly", 3: "quarterly"}.get(cadence.months, f"every {cadence.months} months")
        return f"{every} on {day} at {cadence.hour:02d}:{cadence.minute:02d}"
    if isinstance(cadence, Once):
        return f"once at {cadence.at:%Y-%m-%d %H:%M}"
    raise TypeError(f"not a cadence: {cadence!r}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ---------------------------------------------------------------------------------------------
# find_cadence: pieces of a schedule phrase, found separately, then joined where adjacent

PARTS: dict[str, tuple[int, int]] = {
    "morning": (8, 0),
    "noon": (12, 0),
    "midday": (12, 0),
    "afternoon": (14, 0),
    "evening": (19, 0),
    "night": (23, 0),
    "midnight": (0, 0),
}
_DAY_RE = {
    0: r"mon(?:day)?",
    1: r"tue(?:s(?:day)?)?",
    2: r"wed(?:nesday)?",
    3: r"thu(?:r(?:s(?:day)?)?)?",
    4: r"fri(?:day)?",
    5: r"sat(?:urday)?",
    6: r"sun(?:day)?",
}
_DAY = "|".join(f"(?:{p})" for p in _DAY_RE.values())
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty-five": 45,
    "other": 2,
}
_NUM = r"\d{1,4}(?:st|nd|rd|th)?|" + "|".join(sorted(_NUMBERS, key=len, reverse=True))
_UNIT = r"(?P<unit>min(?:ute)?s?|mins?|m|h(?:ou)?rs?|hours?|h|days?|weeks?|fortnights?|months?)"
_END = r"(?![\w:]|\.\d)"  # a word ends here, and it is not the start of an address or time


@dataclass(slots=True)
class _Piece:
    """One recognised part of a schedule phrase, with what it says."""

    start: int
    end: int
    every: Every | None = None  # an interval
    weekdays: frozenset[int] | None = None  # a recurrence on these days (all 7: daily)
    day: date | None = None  # a one-off day
    delta: timedelta | None = None  # "in 2 hours"
    at: tuple[int, int] | None = None  # a time of day
    part: str | None = None  # a part of the day, which also reads a bare hour
    explicit_at: bool = False  # the time was introduced by "at"/"@" or has am/pm
    ampm: str | None = None
    monthly: bool = False  # "monthly", "every month"
    months: int = 1  # "every 3 months", "quarterly"
    monthday: int | None = None  # "the 15th", "the last day" (of the month)


@dataclass(slots=True)
class _Finder:
    text: str
    now: datetime
    pieces: list[_Piece] = field(default_factory=list)

    def add(self, pattern: str, build: Callable[[re.Match[str]], _Piece | None]) -> None:
        for m in re.finditer(pattern, self.text, re.IGNORECASE):
            piece = build(m)
            if piece is not None:
                self.pieces.append(piece)


def _weekday_of(word: str) -> int:
    for number, pattern in _DAY_RE.items():
        if re.fullmatch(pattern + "s?", word, re.IGNORECASE):
            return number
    raise ValueError(word)


def _count(word: str | None) -> int:
    if not word:
        return 1
    word = word.lower()
    digits = word.rstrip("stndrh")  # "2nd day" is every second day
    return int(digits) if digits.isdigit() else _NUMBERS[word]


def _unit(word: str) -> tuple[int, Unit]:
    word = word.lower()
    if word.startswith("fortnight"):
        return 2, "week"
    if word.startswith("month"):
        raise ValueError("a month is not a fixed interval")
    if word.startswith("m"):
        return 1, "minute"
    if word.startswith("h"):
        return 1, "hour"
    if word.startswith("d"):
        return 1, "day"
    return 1, "week"


def _interval(m: re.Match[str]) -> _Piece | None:
    if m["unit"].lower().startswith("month"):  # "every month": a calendar month, not 30 days
        months = _count(m["num"])
        return _Piece(m.start(), m.end(), monthly=True, months=months) if months <= 12 else None
    scale, unit = _unit(m["unit"])
    count = _count(m["num"]) * scale
    if count < 1 or count > 10_000:
        return None
    if unit == "day" and count == 1:  # "every day" can take a time: it is daily
        return _Piece(m.start(), m.end(), weekdays=frozenset(range(7)))
    if unit == "week" and count == 1:
        return _Piece(m.start(), m.end(), weekdays=frozenset({6}), at=None)
    return _Piece(m.start(), m.end(), every=Every(count=count, unit=unit))


def _pieces(text: str, now: datetime) -> list[_Piece]:
    f = _Finder(text, now)
    every = r"\b(?:every|each|once\s+(?:an?|per))"
    # Intervals: "every 15 minutes", "every other day", "every hour", "once a week", "hourly".
    f.add(
        rf"{every}\s+(?:(?P<num>{_NUM})\s*-?\s*)?{_UNIT}(?:\s+on\s+the\s+hour)?{_END}",
        _interval,
    )
    f.add(
        r"\b(?:every\s+half\s+(?:an\s+)?hour|half[- ]hourly)" + _END,
        lambda m: _Piece(m.start(), m.end(), every=Every(count=30, unit="minute")),
    )
    f.add(
        r"\b(?P<n>twice|two\s+times|three\s+times|four\s+times)\s+(?:a|an|per)\s+(?P<u>day|hour)"
        + _END,
        lambda m: _Piece(
            m.start(),
            m.end(),
            every=Every(
                count=(24 if m["u"].lower() == "day" else 60)
                // {"twice": 2, "two": 2, "three": 3, "four": 4}[m["n"].split()[0].lower()],
                unit="hour" if m["u"].lower() == "day" else "minute",
            ),
        ),
    )
    f.add(
        r"\bhourly(?:\s+on\s+the\s+hour)?" + _END,
        lambda m: _Piece(m.start(), m.end(), every=Every(count=1, unit="hour")),
    )
    f.add(
        r"\b(?:daily|everyday|every\s+single\s+day|each\s+and\s+every\s+day|day\s+by\s+day)" + _END,
        lambda m: _Piece(m.start(), m.end(), weekdays=frozenset(range(7))),
    )
    f.add(
        r"\bweekly" + _END,
        lambda m: _Piece(m.start(), m.end(), weekdays=frozenset({6})),
    )
    f.add(
        r"\b(?P<w>monthly|quarterly|half-?yearly|twice\s+a\s+year|yearly|annually|every\s+year)"
        + _END,
        lambda m: _Piece(m.start(), m.end(), monthly=True, months=_MONTHS_OF[m["w"][:4].lower()]),
    )
    # A day of the month: "on the 15th", "the first of every month", "the last day of the month".
    f.add(
        r"\b(?:on\s+)?the\s+(?P<d>(?:[12]?\d|3[01])(?:st|nd|rd|th)|first|last(?:\s+day)?)"
        r"(?P<of>\s+(?:day\s+)?of\s+(?:every|each|the)\s+month)?" + _END,
        _month_day,
    )
    f.add(
        r"\b(?:every|each)\s+(?P<d>(?:[12]?\d|3[01])(?:st|nd|rd|th)|first|last(?:\s+day)?)"
        r"(?P<of>\s+(?:day\s+)?of\s+(?:the\s+|each\s+|every\s+)?month)" + _END,
        _month_day,
    )
    f.add(
        r"\b(?:bi-?weekly|fortnightly)" + _END,
        lambda m: _Piece(m.start(), m.end(), every=Every(count=2, unit="week")),
    )
    # Daily at a part of the day: "every night", "nightly", "each morning", "mornings".
    f.add(
        r"\b(?:(?:every|each)\s+(?P<p>morning|afternoon|evening|night|midnight|noon|midday)"
        r"|(?P<q>nightly)|(?:in\s+the\s+|at\s+)?(?P<r>mornings|afternoons|evenings|nights))" + _END,
        lambda m: _Piece(
            m.start(),
            m.end(),
            weekdays=frozenset(range(7)),
            part=(m["p"] or ("night" if m["q"] else m["r"][:-1])).lower(),
        ),
    )
    # Recurring weekdays: "every monday and thursday", "on weekdays", "sundays", "weekends".
    days_list = rf"(?:{_DAY})s?(?:\s*(?:,|and|&|or|\+)\s*(?:{_DAY})s?)*"
    f.add(
        rf"\b(?:every|each)\s+(?:single\s+)?(?P<days>{days_list})(?P<p>\s+(?:morning|afternoon|"
        rf"evening|night))?{_END}",
        _every_days,
    )
    f.add(
        rf"\b(?:on\s+)?(?P<days>(?:{_DAY})s(?:\s*(?:,|and|&|or|\+)\s*(?:{_DAY})s)*)"
        rf"(?P<p>\s+(?:morning|afternoon|evening|night)s?)?{_END}",
        _every_days,
    )
    f.add(
        rf"\b(?:(?:every|each|on)\s+)?(?P<a>{_DAY})\s*(?:-|\u2013|to|through|thru|till|until)\s*"
        rf"(?P<b>{_DAY}){_END}",
        _day_range,
    )
    f.add(
        r"\b(?:(?:every|each|on(?:\s+all)?)\s+)?(?P<w>week\s*days?|weekends?|work\s*days?|"
        r"business\s+days?|week\s*nights?|school\s+nights?)"
        r"(?P<p>\s+(?:morning|afternoon|evening|night)s?)?" + _END,
        _weekday_words,
    )
    # One-off days: "tomorrow", "today", "tonight", "on friday", "next monday".
    f.add(
        r"\b(?P<d>today|tomorrow|tonight|this\s+(?P<p>morning|afternoon|evening))"
        r"(?:\s+(?P<q>morning|afternoon|evening|night))?" + _END,
        lambda m: _one_day(m, now),
    )
    f.add(
        rf"\b(?:(?P<next>next|this|coming|on)\s+)(?:the\s+)?(?P<d>{_DAY})(?P<p>\s+(?:morning|"
        rf"afternoon|evening|night))?{_END}",
        lambda m: _named_day(m, now),
    )
    f.add(
        rf"\bin\s+(?:(?P<num>{_NUM})\s*)?(?P<half>half\s+an?\s+)?{_UNIT}{_END}",
        _relative,
    )
    # Times of day: "at 02:00", "at 2am", "2 pm", "18:30", "at 0200", "at noon", "at night".
    f.add(
        r"(?:\b(?:at|around)\s+|@\s*)(?P<h>[01]\d|2[0-3])(?P<m>[0-5]\d)(?:\s*(?:h|hrs|hours))?"
        + _END,
        lambda m: _Piece(m.start(), m.end(), at=(int(m["h"]), int(m["m"])), explicit_at=True),
    )
    f.add(
        r"(?:\b(?P<at>at|around)\s+|@\s*)?\b(?<![\d.:/])(?P<h>[01]?\d|2[0-3])(?:[:.h](?P<m>[0-5]\d))?"
        r"\s*(?P<ampm>[ap]\.?m\.?(?![\w])|o'?clock|h(?!\w)|hrs(?!\w))?" + _END,
        _clock,
    )
    f.add(
        r"\b(?:(?:at|around)\s+)?(?P<w>noon|midday|midnight)" + _END,
        lambda m: _Piece(
            m.start(), m.end(), at=PARTS[m["w"].lower()], part=m["w"].lower(), explicit_at=True
        ),
    )
    f.add(
        r"\b(?:in\s+the\s+|at\s+|during\s+the\s+)(?P<w>morning|afternoon|evening|night)" + _END,
        lambda m: _Piece(m.start(), m.end(), part=m["w"].lower()),
    )
    return f.pieces


_MONTHS_OF = {"mont": 1, "quar": 3, "half": 6, "twic": 6, "year": 12, "annu": 12, "ever": 12}


def _month_day(m: re.Match[str]) -> _Piece | None:
    word = m["d"].lower()
    day = 1 if word == "first" else 31 if word.startswith("last") else int(word[:-2])
    if not 1 <= day <= 31:
        return None
    return _Piece(m.start(), m.end(), monthday=day, monthly=bool(m["of"]))


def _every_days(m: re.Match[str]) -> _Piece:
    words = re.findall(_DAY + r"s?", m["days"], re.IGNORECASE)
    days = frozenset(_weekday_of(w) for w in words)
    part = m["p"].strip().lower().rstrip("s") if m["p"] else None
    return _Piece(m.start(), m.end(), weekdays=days, part=part)


def _day_range(m: re.Match[str]) -> _Piece:
    a, b = _weekday_of(m["a"]), _weekday_of(m["b"])
    days = frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))
    return _Piece(m.start(), m.end(), weekdays=days)


def _weekday_words(m: re.Match[str]) -> _Piece:
    word = m["w"].lower()
    days = frozenset({5, 6}) if word.startswith("weekend") else frozenset(range(5))
    part = m["p"].strip().lower().rstrip("s") if m["p"] else None
    if "night" in word:
        part = "night"
    return _Piece(m.start(), m.end(), weekdays=days, part=part)


def _one_day(m: re.Match[str], now: datetime) -> _Piece:
    word = m["d"].lower()
    part = (m["p"] or m["q"] or "").lower() or None
    if word == "tomorrow":
        return _Piece(m.start(), m.end(), day=now.date() + timedelta(days=1), part=part)
    if word == "tonight":
        return _Piece(m.start(), m.end(), day=now.date(), part="night")
    return _Piece(m.start(), m.end(), day=now.date(), part=part)


def _named_day(m: re.Match[str], now: datetime) -> _Piece:
    target = _weekday_of(m["d"])
    ahead = (target - now.weekday()) % 7
    if ahead == 0 or (m["next"].lower() == "next" and ahead < 1):
        ahead = 7
    part = m["p"].strip().lower() if m["p"] else None
    return _Piece(m.start(), m.end(), day=now.date() + timedelta(days=ahead), part=part)


def _relative(m: re.Match[str]) -> _Piece | None:
    if m["unit"].lower().startswith("month"):
        return None
    scale, unit = _unit(m["unit"])
    count = _count(m["num"]) * scale if m["num"] or not m["half"] else 0
    seconds = count * UNIT_SECONDS[unit] + (UNIT_SECONDS[unit] // 2 if m["half"] else 0)
    if seconds <= 0 or seconds > 366 * 86400:
        return None
    return _Piece(m.start(), m.end(), delta=timedelta(seconds=seconds))


def _clock(m: re.Match[str]) -> _Piece | None:
    hour, minute = int(m["h"]), int(m["m"] or 0)
    ampm = (m["ampm"] or "").lower().replace(".", "")
    explicit = bool(m["at"]) or m.group(0).startswith("@") or ampm in ("am", "pm")
    if not explicit and not m["m"] and not ampm:
        return None  # a bare number is a count or a port, not a time
    if ampm in ("am", "pm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    return _Piece(
        m.start(),
        m.end(),
        at=(hour, minute),
        explicit_at=explicit,
        ampm=ampm if ampm in ("am", "pm") else None,
    )


_GAP = re.compile(r"[\s,]*(?:(?:at|on|in\s+the|and)\s+)?[\s,]*", re.IGNORECASE)


def _non_overlapping(pieces: list[_Piece]) -> list[_Piece]:
    """Longest piece wins where pieces overlap; the rest in text order."""
    chosen: list[_Piece] = []
    for piece in sorted(pieces, key=lambda p: (-(p.end - p.start), p.start)):
        if all(piece.end <= c.start or piece.start >= c.end for c in chosen):
            chosen.append(piece)
    return sorted(chosen, key=lambda p: p.start)


def _groups(text: str, pieces: list[_Piece]) -> Iterator[list[_Piece]]:
    """Runs of pieces separated only by spaces, commas and joining words."""
    group: list[_Piece] = []
    for piece in pieces:
        if group and not _GAP.fullmatch(text, group[-1].end, piece.start):
            yield group
            group = []
        group.append(piece)
    if group:
        yield group


def _with_part(hour: int, minute: int, part: str | None, ampm: str | None) -> tuple[int, int]:
    """Read a bare hour in the light of its part of the day: "every night at 11" is 23:00."""
    if ampm is not None or part is None:
        return hour, minute
    if part in ("afternoon", "evening") and hour < 12:
        return hour + 12, minute
    if part == "night" and 6 <= hour < 12:
        return hour + 12, minute
    if part == "night" and hour == 12:
        return 0, minute
    return hour, minute


def _build(group: list[_Piece], now: datetime) -> tuple[AnyCadence, list[_Piece]] | None:
    """The cadence a run of pieces says, and the pieces it used; None if it says none."""
    for piece in group:
        if piece.every is not None:  # an interval takes no time of day
            return piece.every, [piece]
    monthly = [p for p in group if p.monthly or p.monthday is not None]
    recurring = [p for p in group if p.weekdays is not None]
    days = [p for p in group if p.day is not None or p.delta is not None]
    clock = next((p for p in group if p.at is not None), None)
    lone_part = next((p for p in group if p.part is not None and p.at is None), None)
    lone_part = lone_part if lone_part not in (*recurring, *days) else None
    part = next((p.part for p in group if p.part is not None), None)
    extras = [p for p in (clock, lone_part) if p is not None]

    def time_of_day(default: tuple[int, int]) -> tuple[int, int]:
        if clock is not None and clock.at is not None:
            return _with_part(*clock.at, part, clock.ampm)
        return PARTS[part] if part is not None else default

    if any(p.monthly for p in monthly):
        day = next((p.monthday for p in monthly if p.monthday is not None), 1)
        months = max(p.months for p in monthly)
        hour, minute = time_of_day((0, 0))
        return Monthly(day=day, hour=hour, minute=minute, months=months), [*monthly, *extras]
    if recurring:
        sets = [p.weekdays for p in recurring if p.weekdays is not None]
        specific = [s for s in sets if s != frozenset(range(7))]
        weekdays = frozenset().union(*(specific or sets))
        hour, minute = time_of_day((0, 0))
        used = [*recurring, *extras]
        if weekdays == frozenset(range(7)):
            return Daily(hour=hour, minute=minute), used
        return Weekly(weekdays=tuple(sorted(weekdays)), hour=hour, minute=minute), used
    if days:
        first = days[0]
        if first.delta is not None:
            return Once(at=(now + first.delta).replace(microsecond=0)), [first]
        assert first.day is not None
        if first.day == now.date() and clock is None and part != "night":
            return None  # "this morning", "today": a reference to earlier work, not a time
        at = datetime.combine(first.day, time(*time_of_day((now.hour, now.minute))))
        if at <= now:
            return None  # a time already past ("today at 08:00" said at noon)
        return Once(at=at), [first, *extras]
    if (clock is not None and clock.explicit_at) or lone_part is not None:
        at = datetime.combine(now.date(), time(*time_of_day((0, 0))))
        if at <= now:
            at += timedelta(days=1)
        return Once(at=at), extras
    return None


def find_cadence(text: str, now: datetime) -> CadenceMatch | None:
    """The schedule phrase in a command ("every hour", "hourly", "every night", "at 02:00",
    "weekly", "each morning", "every sunday night", "tomorrow at 9:00", ...), if any.

    ``now`` (naive local time) anchors one-off phrases ("tomorrow", "at 2am", "in 2 hours").
    A recurrence wins over a one-off time elsewhere in the text; the span covers the pieces
    the cadence used, from the first to the last."""
    now = now.replace(tzinfo=None, microsecond=0)
    found: list[tuple[AnyCadence, list[_Piece]]] = []
    for group in _groups(text, _non_overlapping(_pieces(text, now))):
        built = _build(group, now)
        if built is not None:
            found.append(built)
    if not found:
        return None
    recurring = [f for f in found if not isinstance(f[0], Once)]
    cadence, used = (recurring or found)[0]
    start = min(p.start for p in used)
    end = max(p.end for p in used)
    return CadenceMatch(cadence=cadence, span=(start, end), phrase=text[start:end])

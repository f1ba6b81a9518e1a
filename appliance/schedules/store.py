"""Schedules on disk: a table in the appliance's own database, beside the jobs they start.

The table lives in the runtime's SQLite file (WAL, ``synchronous=FULL``, 0600: see
``runtime/store.py``) and is reached only through that Store's one worker thread, so a
schedule and the jobs it fires are in one file, one backup, one power-cut story: a change
that was answered is on disk. Unlike the graph this table is updated in place (a schedule's
next firing moves on); the graph keeps the history, a ``schedule.fired`` record per firing.

The methods are synchronous (they wait for the store's thread) and safe from any thread:
async callers run them with ``asyncio.to_thread``. Instants are epoch seconds; cadences are
naive local time, turned into instants by ``following`` (see ``cadence.py`` on DST).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec

from appliance.errors import BadCommand, UnknownSchedule
from appliance.events import ScheduleFired
from appliance.runtime import Clock, Store
from appliance.runtime.graph import first_record
from appliance.schedules.cadence import AnyCadence, decode_cadence, describe, encode_cadence
from appliance.schedules.cadence import next_fire as cadence_next

ScheduleId = Annotated[str, msgspec.Meta(pattern=r"^sched-[0-9a-f]{8}$")]

_SCHEMA = """CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    cadence TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_fire REAL,
    last_fired REAL,
    last_job TEXT,
    last_error TEXT NOT NULL DEFAULT '',
    paused INTEGER NOT NULL DEFAULT 0
)"""
_COLUMNS = (
    "id, command, cadence, created_by, created_at, next_fire, last_fired, last_job, "
    "last_error, paused"
)


class ScheduleRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One schedule, as stored and as the API, the CLI and the panel show it."""

    id: str
    command: str  # what each firing runs: the command without its schedule phrase
    cadence: AnyCadence
    when: str  # the cadence for people ("daily at 02:00")
    created_by: str  # the job whose command created it
    created_at: float
    next_fire: float | None  # None: it will not fire again (a one-off that has run)
    last_fired: float | None = None
    last_job: str | None = None  # the job its latest firing started
    last_error: str = ""  # why the latest firing started no job, if it did not
    paused: bool = False


def wall_time(at: float) -> datetime:
    """An instant as the device's naive local time."""
    return datetime.fromtimestamp(at)


def following(cadence: AnyCadence, after: float) -> float | None:
    """The first firing of ``cadence`` strictly after the instant ``after`` (None: never).
    A wall time that maps to an instant not after ``after`` (the repeated hour of an autumn
    change) is taken at its second occurrence, or skipped for the one after it."""
    local_after = wall_time(after)
    for _ in range(4):
        local = cadence_next(cadence, local_after)
        if local is None:
            return None
        for fold in (0, 1):
            at = local.replace(fold=fold).timestamp()
            if at > after:
                return at
        local_after = local
    return None


class Schedules:
    """The schedule table: add, list, pause, resume, delete, and the scheduler's claims."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        store.read_now(lambda db: db.execute(_SCHEMA))

    # -- for people -----------------------------------------------------------------------

    def add(self, command: str, cadence: AnyCadence, *, job_id: str) -> ScheduleRecord:
        """Keep ``command`` to run on ``cadence``; ``job_id`` is the job whose command
        created it. A cadence that would never fire is refused (BadCommand)."""
        command = command.strip()
        if not command:
            raise BadCommand("a schedule needs a command to run")
        now = self._clock.now()
        first = following(cadence, now)
        if first is None:
            raise BadCommand(f"{describe(cadence)} has already passed: it would never run")
        import secrets  # here, not at the top: a start does not need it (hashlib, hmac)

        schedule_id = f"sched-{secrets.token_hex(4)}"
        self._write(
            "INSERT INTO schedules (id, command, cadence, created_by, created_at, next_fire) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (schedule_id, command, encode_cadence(cadence).decode(), job_id, now, first),
        )
        return self.get(schedule_id)

    def list(self) -> list[ScheduleRecord]:
        """Every schedule, oldest first."""
        rows = self._query(f"SELECT {_COLUMNS} FROM schedules ORDER BY created_at, rowid", ())
        return [_record(row) for row in rows]

    def get(self, schedule_id: str) -> ScheduleRecord:
        rows = self._query(f"SELECT {_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,))
        if not rows:
            raise UnknownSchedule(f"no schedule {schedule_id!r}")
        return _record(rows[0])

    def pause(self, schedule_id: str) -> ScheduleRecord:
        """Stop firing until resumed; a firing due meanwhile is skipped, not made up."""
        self._change(schedule_id, "UPDATE schedules SET paused = 1 WHERE id = ?", (schedule_id,))
        return self.get(schedule_id)

    def resume(self, schedule_id: str) -> ScheduleRecord:
        """Fire again from the next firing after now."""
        record = self.get(schedule_id)
        upcoming = following(record.cadence, self._clock.now())
        self._change(
            schedule_id,
            "UPDATE schedules SET paused = 0, next_fire = ? WHERE id = ?",
            (upcoming, schedule_id),
        )
        return self.get(schedule_id)

    def delete(self, schedule_id: str) -> None:
        """Forget the schedule; the jobs it started, and their link to it, stay in the graph."""
        self._change(schedule_id, "DELETE FROM schedules WHERE id = ?", (schedule_id,))

    # -- for the scheduler ----------------------------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (from whichever thread made it) after each change; returns the
        function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def due(self, now: float) -> builtins.list[ScheduleRecord]:
        """Schedules not paused whose next firing is at or before ``now``."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM schedules WHERE paused = 0 AND next_fire <= ? "
            "ORDER BY next_fire, rowid",
            (now,),
        )
        return [_record(row) for row in rows]

    def earliest(self) -> float | None:
        """The next instant any schedule not paused fires, or None."""
        rows = self._query("SELECT MIN(next_fire) FROM schedules WHERE paused = 0", ())
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    def claim(self, record: ScheduleRecord, now: float) -> float | None:
        """Move ``record`` past ``now`` before it fires: its next firing becomes the first
        after ``now`` (so firings missed while the appliance was off run once, not once
        each), committed before the job is submitted, so a crash cannot fire it twice.
        Returns the new next firing (None: never again), or raises UnknownSchedule when the
        schedule changed meanwhile (paused, deleted, resumed) and must not fire now."""
        upcoming = following(record.cadence, now)
        claimed = self._write(
            "UPDATE schedules SET next_fire = ?, last_fired = ? "
            "WHERE id = ? AND paused = 0 AND next_fire IS ?",
            (upcoming, now, record.id, record.next_fire),
        )
        if not claimed:
            raise UnknownSchedule(f"schedule {record.id!r} changed before it fired")
        return upcoming

    def realign(self, now: float) -> int:
        """After the wall clock was set back (a board without a battery-backed clock that
        started with a time ahead, then got the right one from NTP): a schedule whose next
        firing is later than the first after ``now`` would wait out the difference, so it is
        moved to that. Nothing moves while the clock only goes forward. Returns how many."""
        moved = 0
        for record in self.due(float("inf")):
            upcoming = following(record.cadence, now)
            if (
                upcoming is not None
                and record.next_fire is not None
                and upcoming < record.next_fire
            ):
                moved += self._write(
                    "UPDATE schedules SET next_fire = ? WHERE id = ? AND next_fire IS ?",
                    (upcoming, record.id, record.next_fire),
                )
        return moved

    def fired(self, schedule_id: str, *, job_id: str | None, error: str = "") -> None:
        """What the latest firing started: its job, or why there is none."""
        self._write(
            "UPDATE schedules SET last_job = ?, last_error = ? WHERE id = ?",
            (job_id, error, schedule_id),
        )

    async def firings(self, schedule_id: str) -> builtins.list[ScheduleFired]:
        """The graph's records of this schedule's firings, oldest first (a deleted
        schedule's too)."""
        rows = await self._store.read(
            lambda db: list(
                db.execute(
                    "SELECT body FROM journal WHERE kind = 'schedule.fired' "
                    "AND json_extract(body, '$.schedule_id') = ? ORDER BY seq",
                    [schedule_id],
                ).fetchall()
            )
        )
        return [msgspec.json.decode(row[0], type=ScheduleFired) for row in rows]

    async def cause(self, job_id: str) -> ScheduleFired | None:
        """The schedule firing that started ``job_id``, if a schedule started it."""
        return await first_record(self._store, job_id, ScheduleFired)

    # -- the table ------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[object, ...]) -> builtins.list[Any]:
        return self._store.read_now(lambda db: db.execute(sql, args).fetchall())

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        """One statement, committed (autocommit, synchronous=FULL) before it returns."""
        changed = self._store.read_now(lambda db: db.execute(sql, args).rowcount)
        if changed:
            for listener in list(self._listeners):
                listener()
        return int(changed)

    def _change(self, schedule_id: str, sql: str, args: tuple[object, ...]) -> None:
        if not self._write(sql, args):
            raise UnknownSchedule(f"no schedule {schedule_id!r}")


def _record(row: Any) -> ScheduleRecord:
    (schedule_id, command, cadence, created_by, created_at) = row[:5]
    (next_at, last_fired, last_job, last_error, paused) = row[5:]
    decoded = decode_cadence(cadence)
    return ScheduleRecord(
        id=schedule_id,
        command=command,
        cadence=decoded,
        when=describe(decoded),
        created_by=created_by,
        created_at=created_at,
        next_fire=next_at,
        last_fired=last_fired,
        last_job=last_job,
        last_error=last_error,
        paused=bool(paused),
    )

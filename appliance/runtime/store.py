"""The SQLite store (WAL): the appliance's durable record.

One connection, used only from one worker thread, so the event loop never blocks on disk and
no two statements ever race on the connection. Records are appended to a write-behind buffer
on the loop (cheap: a list append) and committed in batches by ``run()``; ``flush()`` forces a
commit and every query flushes first, so reads always see what was recorded. A failed commit
(disk full, I/O error) keeps the batch at the front of the buffer: nothing is dropped, and the
next flush retries it in order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from appliance.datadir import private_files, tighten
from appliance.errors import StoreUnavailable
from appliance.runtime.clock import Clock, SystemClock

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 4
# The writer gathers what comes within GATHER_S into one commit, and under sustained load
# commits at most once per PACE_S. Each commit is a synchronous=FULL fsync: 100 a second
# would wear a board's eMMC, and the calls that run while the writer takes the interpreter
# lock back are the slow ones (bench_request's p99 was 35 µs unpaced, 23 µs paced). What a
# caller must have on disk before it answers (a job accepted) commits itself (Runtime.commit).
GATHER_S = 0.01
PACE_S = 0.1
# How long a thread that wants the interpreter lock waits before the one holding it must let
# go (Python's default is 5 ms). The writer thread takes the lock back after each SQLite call
# (a row, a commit): a commit of a hundred rows is a hundred waits. Under a busy event loop,
# at 5 ms a wait, a commit took seconds, and all that time the appliance held in memory what
# it had not committed (bench_throughput's peak memory); at 0.1 ms it takes milliseconds.
SWITCH_S = 0.0001

_APPEND_ONLY = ("jobs", "tasks", "journal")

_INSERT = {
    "jobs": "INSERT INTO jobs (job_id, command_id, command, autonomous, created_at) "
    "VALUES (?, ?, ?, ?, ?)",
    "tasks": "INSERT INTO tasks (task_id, job_id, agent_type, parent_task_id, parent_agent, "
    "objective, autonomous, created_at, start, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "journal": "INSERT INTO journal (at, kind, job_id, task_id, body) VALUES (?, ?, ?, ?, ?)",
    # another fleet device's records of a job: a job or task this device already holds (it
    # placed or ran it) is kept as it is, never a failed commit
    "foreign_jobs": "INSERT OR IGNORE INTO jobs (job_id, command_id, command, autonomous, "
    "created_at) VALUES (?, ?, ?, ?, ?)",
    "foreign_tasks": "INSERT OR IGNORE INTO tasks (task_id, job_id, agent_type, parent_task_id, "
    "parent_agent, objective, autonomous, created_at, start, device) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "states": "INSERT INTO states (task_id, job_id, agent_type, state, at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(task_id, job_id) DO UPDATE SET state = excluded.state, at = excluded.at",
    # a block not full yet is written again with more in it (runtime/audit.py)
    "audit": "INSERT INTO audit (seq, at, entries) VALUES (?, ?, ?) "
    "ON CONFLICT(seq) DO UPDATE SET entries = excluded.entries",
    "audit_keys": "INSERT INTO audit_keys (seq, job_id, task_id) VALUES (?, ?, ?)",
    "knowledge": "INSERT INTO knowledge (key, value, version, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version, "
    "updated_at = excluded.updated_at",
}

Row = tuple[Any, ...]


class Connection(sqlite3.Connection):
    """The connection read functions get: sqlite3's own, plus ``query``, which yields rows as
    dicts the way sqlite-utils' ``Database.query`` does, without importing sqlite-utils."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        keys = [column[0] for column in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))


def _import_sqlite_utils() -> Any:
    """Import sqlite-utils without letting it pull numpy in.

    sqlite-utils imports numpy and pandas only to map their scalar types, which we never
    store; numpy alone would double the idle runtime's import time and add ~15 MB. Marking
    them unavailable for this one import keeps them importable for whoever needs them.
    """
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [m for m in ("numpy", "pandas") if m not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


class Store:
    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = path
        self._clock = clock or SystemClock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qey-store")
        self._pending: list[tuple[str, Row]] = []
        self._latest: dict[tuple[str, object], Row] = {}
        self._sources: list[Callable[[], list[tuple[str, object, Row]]]] = []
        self._caps: dict[str, int] = {}  # table -> rows kept (the newest)
        self._dirty = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.failed_flushes = 0
        self.commits = 0  # batches written, for whoever watches the writer keep up
        path.parent.mkdir(parents=True, exist_ok=True)
        # jobs and findings are the owner's alone: SQLite makes its -wal and -shm with the
        # database's mode, so a database made 0600 (or tightened to it) keeps all three so
        tighten(path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")))
        with private_files():
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, factory=Connection
            )
            self._conn.execute("PRAGMA journal_mode=wal")
            # FULL: each commit reaches the disk before it counts. An appliance loses power;
            # in WAL mode NORMAL would survive a killed process but not a pulled plug.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Bring the schema up to SCHEMA_VERSION. Only here is sqlite-utils imported: a store
        whose schema is current (every start after the first) never loads it, which keeps
        about 5 MB and 25 ms off the appliance's start."""
        db = _import_sqlite_utils().Database(self._conn)
        with db.conn:
            if version == 1:
                db.execute("ALTER TABLE tasks ADD COLUMN start TEXT")
            if 0 < version < 4:
                db.execute("ALTER TABLE tasks ADD COLUMN device TEXT")
            db["jobs"].create(
                {
                    "job_id": str,
                    "command_id": str,
                    "command": str,
                    "autonomous": int,
                    "created_at": float,
                },
                pk="job_id",
                if_not_exists=True,
            )
            db["tasks"].create(
                {
                    "task_id": str,
                    "job_id": str,
                    "agent_type": str,
                    "parent_task_id": str,
                    "parent_agent": str,
                    "objective": str,
                    "autonomous": int,
                    "created_at": float,
                    "start": str,  # the start event (JSON): a resumed task gets it again
                    "device": str,  # the fleet device that runs it (NULL: this one)
                },
                pk="task_id",
                if_not_exists=True,
            )
            db["tasks"].create_index(["job_id"], if_not_exists=True)
            db["tasks"].create_index(["parent_task_id"], if_not_exists=True)
            db["journal"].create(
                {"seq": int, "at": float, "kind": str, "job_id": str, "task_id": str, "body": str},
                pk="seq",
                if_not_exists=True,
            )
            db["journal"].create_index(["task_id"], if_not_exists=True)
            db["journal"].create_index(["job_id"], if_not_exists=True)
            db["states"].create(
                {"task_id": str, "job_id": str, "agent_type": str, "state": bytes, "at": float},
                pk=("task_id", "job_id"),
                if_not_exists=True,
            )
            db["knowledge"].create(
                {"key": str, "value": str, "version": int, "updated_at": float},
                pk="key",
                if_not_exists=True,
            )
            # the audit trail (runtime/audit.py): handled events in blocks, the newest kept;
            # a block's index rows go with it
            db.execute(
                "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at REAL, entries BLOB)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS audit_keys (seq INTEGER, job_id TEXT, task_id TEXT)"
            )
            for column in ("seq", "job_id", "task_id"):
                db["audit_keys"].create_index([column], if_not_exists=True)
            db.execute(
                "CREATE TRIGGER IF NOT EXISTS audit_keys_go AFTER DELETE ON audit "
                "BEGIN DELETE FROM audit_keys WHERE seq = old.seq; END"
            )
            for table in _APPEND_ONLY:
                for action in ("UPDATE", "DELETE"):
                    db.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                        f"BEFORE {action} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- writes ---------------------------------------------------------------------------

    def append(self, table: str, row: Row) -> None:
        """Queue a row for the next commit; never blocks, never fails."""
        self._pending.append((table, row))
        self._dirty.set()

    def put(self, table: str, key: object, row: Row) -> None:
        """Queue an upsert; of several puts to one key before a commit only the last is
        written (state snapshots change at event rate, SQLite commits at its own)."""
        self._latest[(table, key)] = row
        self._dirty.set()

    def add_source(self, collect: Callable[[], list[tuple[str, object, Row]]]) -> None:
        """Rows to upsert that are built only when a commit happens: ``collect()`` hands over
        (table, key, row) for everything changed since it was last called."""
        self._sources.append(collect)

    def cap(self, table: str, rows: int) -> None:
        """Keep only the newest ``rows`` of ``table`` (by its rowid): each commit drops the
        oldest beyond that."""
        self._caps[table] = rows

    def wake(self) -> None:
        """Tell the writer a source has something for the next commit."""
        self._dirty.set()

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._latest)

    async def flush(self) -> None:
        """Commit everything queued so far; raises StoreUnavailable and keeps it on failure."""
        async with self._flush_lock:
            for collect in self._sources:
                for table, key, row in collect():
                    self._latest[(table, key)] = row
            if not self._pending and not self._latest:
                return
            batch, self._pending = self._pending, []
            latest, self._latest = self._latest, {}
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._write, batch, latest
                )
                self.commits += 1
            except sqlite3.Error as err:
                self._pending[:0] = batch
                for key, row in latest.items():
                    self._latest.setdefault(key, row)  # a newer put wins
                self.failed_flushes += 1
                raise StoreUnavailable(f"could not write {self.path}: {err}") from err

    def _write(
        self, batch: Sequence[tuple[str, Row]], latest: dict[tuple[str, object], Row]
    ) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in _runs(batch):
                conn.executemany(_INSERT[table], rows)
            for table, rows in _runs((t, row) for (t, _), row in latest.items()):
                conn.executemany(_INSERT[table], rows)
            for table, keep in self._caps.items():
                conn.execute(
                    f"DELETE FROM {table} WHERE rowid <= (SELECT max(rowid) FROM {table}) - ?",
                    (keep,),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def run(self) -> None:
        """Commit appended rows in small batches for as long as the caller lets it run."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_S))
        backoff = 0.05
        loop = asyncio.get_running_loop()
        last = -PACE_S
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            # gather a batch: one commit for many records, and no more than one per PACE_S
            await asyncio.sleep(max(GATHER_S, last + PACE_S - loop.time()))
            last = loop.time()
            try:
                await self.flush()
                backoff = 0.05
            except StoreUnavailable as err:
                log.error("store write failed, retrying in %.2fs: %s", backoff, err)
                self._dirty.set()
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- reads ----------------------------------------------------------------------------

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(db)`` on the store's thread after committing what is pending."""
        await self.flush()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._conn)

    def read_now(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(db)`` synchronously: only for start-up and command-line tools."""
        return self._executor.submit(fn, self._conn).result()

    def close(self) -> None:
        """Commit what is pending (best effort, synchronously) and close the connection."""
        for collect in self._sources:
            for table, key, row in collect():
                self._latest[(table, key)] = row
        batch, self._pending = self._pending, []
        latest, self._latest = self._latest, {}
        try:
            if batch or latest:
                self._executor.submit(self._write, batch, latest).result()
        except sqlite3.Error as err:
            log.error("store: %d records not written at close: %s", len(batch), err)
        finally:
            self._executor.submit(self._conn.close).result()
            self._executor.shutdown(wait=True)


def _runs(batch: Iterable[tuple[str, Row]]) -> Iterable[tuple[str, list[Row]]]:
    """Group consecutive rows of one table, keeping the order of the batch."""
    table: str | None = None
    rows: list[Row] = []
    for name, row in batch:
        if name != table and rows:
            yield table, rows  # type: ignore[misc]
            rows = []
        table = name
        rows.append(row)
    if rows:
        assert table is not None
        yield table, rows

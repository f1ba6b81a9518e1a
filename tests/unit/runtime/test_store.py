from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.errors import StoreUnavailable
from appliance.events import JobContext
from appliance.runtime import Runtime, Store
from tests.support import Add

pytestmark = pytest.mark.unit

WAL_FILES = ("-wal", "-shm")


async def test_the_store_is_in_wal_mode(store: Store) -> None:
    assert await store.read(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


@pytest.mark.parametrize("table", ["jobs", "tasks", "journal"])
async def test_the_graph_tables_are_append_only(store: Store, table: str) -> None:
    store.append("jobs", ("j", "c", "cmd", 0, 1.0))
    store.append("tasks", ("t", "j", "echo", None, None, "obj", 0, 1.0, None, None))
    store.append("journal", (1.0, "task.status", "j", "t", "{}"))
    await store.flush()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.read(lambda db: db.execute(f"UPDATE {table} SET job_id = 'x'"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.read(lambda db: db.execute(f"DELETE FROM {table}"))


async def test_a_full_disk_keeps_every_record_for_the_next_try(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    try:
        pages = store.read_now(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
        store.read_now(lambda db: db.execute(f"PRAGMA max_page_count = {pages + 2}"))
        big = "x" * 4000
        for i in range(40):
            store.append("journal", (float(i), "test", "j", f"t{i}", big))
        with pytest.raises(StoreUnavailable, match="full"):
            await store.flush()
        assert store.pending == 40
        store.read_now(lambda db: db.execute("PRAGMA max_page_count = 1000000"))
        await store.flush()
        assert store.pending == 0
        rows = await store.read(
            lambda db: [r["task_id"] for r in db.query("SELECT * FROM journal")]
        )
        assert rows == [f"t{i}" for i in range(40)]
    finally:
        store.close()


async def test_records_survive_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "qey.db")
    store.append("jobs", ("j", "c", "cmd", 0, 1.0))
    store.close()
    again = Store(tmp_path / "qey.db")
    try:
        assert (
            await again.read(lambda db: db.execute("SELECT count(*) FROM jobs").fetchone()[0]) == 1
        )
    finally:
        again.close()


def test_the_database_files_are_the_owners_alone(tmp_path: Path) -> None:
    """Whatever the umask, the database and its -wal and -shm are 0600; one made readable
    to others (by an older version, or by hand) is tightened when the store opens it."""
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()
    old.chmod(0o644)
    mask = os.umask(0o022)
    try:
        stores = [Store(tmp_path / "new.db"), Store(old)]
    finally:
        os.umask(mask)
    try:
        for store in stores:
            files = [store.path, *(store.path.with_name(store.path.name + s) for s in WAL_FILES)]
            assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
                f.name: "0o600" for f in files
            }
    finally:
        for store in stores:
            store.close()


def test_a_store_whose_schema_is_current_opens_without_sqlite_utils(tmp_path: Path) -> None:
    """Only making or migrating the schema needs sqlite-utils (about 5 MB resident): every
    start after the first must not import it."""
    probe = (
        "import sys; from pathlib import Path; from appliance.runtime.store import Store; "
        f"s = Store(Path({str(tmp_path / 'qey.db')!r})); "
        "print('sqlite_utils' in sys.modules); s.close()"
    )

    def imported() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert imported() == "True"  # the first open makes the schema
    assert imported() == "False"


async def test_a_version_3_store_gains_the_device_column_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    """Schema 4 records which fleet device runs a task; a store from before opens with its
    tasks intact and their device unknown (this one)."""
    from appliance.runtime import TaskGraph

    path = tmp_path / "old.db"
    Store(path).close()
    db = sqlite3.connect(path)
    for action in ("update", "delete"):
        db.execute(f"DROP TRIGGER tasks_no_{action}")
    db.execute("ALTER TABLE tasks DROP COLUMN device")
    db.execute("INSERT INTO jobs VALUES ('j', 'c', 'scan it', 0, 1.0)")
    db.execute("INSERT INTO tasks VALUES ('t', 'j', 'echo', NULL, NULL, 'obj', 0, 1.0, NULL)")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = Store(path)
    try:
        tree = await TaskGraph(store).tree("j")
        assert [(n.task_id, n.device) for n in tree.tasks] == [("t", None)]
        store.append("tasks", ("u", "j", "echo", "t", "echo", "obj", 0, 2.0, None, "beta"))
        await store.flush()
        tree = await TaskGraph(store).tree("j")
        assert [(n.task_id, n.device) for n in tree.tasks] == [("t", None), ("u", "beta")]
    finally:
        store.close()


async def test_the_store_commits_while_the_event_loop_stays_busy(
    runtime: Runtime, job: JobContext
) -> None:
    # The writer thread takes the interpreter lock back after each SQLite call; at Python's
    # default switch interval (5 ms) a loop that never waits made a commit take seconds.
    counter = runtime.spawn("counter", job, "busy")
    await runtime.commit()
    before = runtime.store.commits
    started = time.monotonic()
    sent = 0
    while runtime.store.commits < before + 3 and time.monotonic() - started < 10:
        await runtime.send(counter, Add(seq=sent), job=job)  # waits only for inbox room
        sent += 1
    took = time.monotonic() - started
    assert took < 0.8, f"three commits (paced 0.1 s apart) took {took:.2f}s of a busy loop"

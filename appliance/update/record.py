"""What the appliance remembers about its last update, on the data partition: both root slots
share it, so the old version can tell, after a rollback, what happened to the new one.

Before the new slot's first boot the database is copied aside (SQLite's backup API: a
consistent copy while the appliance runs); if the new slot is abandoned, the old version gets
its data back exactly as it left it, whatever the new one's migrations did.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

import msgspec

from appliance.update import handoff
from appliance.update.entries import Slot

State = Literal["installing", "trying", "committed", "rolled-back", "failed", "refused"]
Phase = Literal["installing", "trying"]

RECORD = "update.json"
SNAPSHOT = "update-snapshot.db"


class UpdateRecord(msgspec.Struct, kw_only=True):
    state: State
    version: str  # the bundle's
    from_version: str
    from_slot: Slot
    to_slot: Slot
    started_at: float
    finished_at: float | None = None
    reason: str = ""  # why it ended as it did, in words
    snapshot: bool = False  # the database was copied aside before the new slot's first boot


def load(data_dir: Path) -> UpdateRecord | None:
    try:
        return msgspec.json.decode((data_dir / RECORD).read_bytes(), type=UpdateRecord)
    except FileNotFoundError:
        return None
    except msgspec.DecodeError:
        return None  # a record cut short by a power cut: as if there were none


def save(data_dir: Path, record: UpdateRecord) -> None:
    path = data_dir / RECORD
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        f.write(msgspec.json.encode(record))
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def finish(data_dir: Path, record: UpdateRecord, state: State, reason: str) -> UpdateRecord:
    done = msgspec.structs.replace(record, state=state, reason=reason, finished_at=time.time())
    save(data_dir, done)
    return done


def snapshot(db: Path, data_dir: Path) -> Path:
    """A consistent copy of the database, taken while the appliance may be writing to it."""
    dest = data_dir / SNAPSHOT
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(part)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    _same_owner(db, part)
    os.replace(part, dest)
    return dest


def restore(db: Path, data_dir: Path) -> bool:
    """Put the snapshot back in place of the database (the appliance is not running: this
    runs before it starts). False if there was none."""
    saved = data_dir / SNAPSHOT
    if not saved.exists():
        return False
    if db.exists():
        _same_owner(db, saved)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    os.replace(saved, db)
    return True


def _same_owner(original: Path, copy: Path) -> None:
    """The copy is made by root (the update runs as root); the appliance's user must still be
    able to write it, and no one else read it."""
    info = original.stat()
    os.chmod(copy, info.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(copy, info.st_uid, info.st_gid)


def phase(data_dir: Path, booted: str) -> Phase | None:
    """What the status LEDs say of an update: ``installing`` from the moment a bundle is
    handed over (root checks and writes it) until its outcome is recorded; ``trying`` while
    the slot that runs is the new one and not yet committed."""
    if (data_dir / handoff.REQUEST).exists():
        return "installing"
    rec = load(data_dir)
    if rec is None:
        return None
    if rec.state == "installing":
        return "installing"
    if rec.state == "trying" and rec.to_slot == booted:
        return "trying"
    return None

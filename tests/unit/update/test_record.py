"""The update's record and the database's copy: an abandoned new slot leaves the old version
its data exactly as it was, and the record says what happened, in words."""

from __future__ import annotations

import sqlite3
import stat
import time
from pathlib import Path

import pytest

from appliance.update import console, entries, handoff, record

pytestmark = pytest.mark.unit


def database(path: Path, *rows: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE IF NOT EXISTS jobs (command TEXT)")
        db.executemany("INSERT INTO jobs VALUES (?)", [(r,) for r in rows])
    path.chmod(0o600)


def commands(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT command FROM jobs ORDER BY rowid")]


def trying(
    data: Path, *, snapshot: bool = True, state: record.State = "trying"
) -> record.UpdateRecord:
    rec = record.UpdateRecord(
        state=state,
        version="0.1.0+200",
        from_version="0.1.0+100",
        from_slot="a",
        to_slot="b",
        started_at=time.time(),
        snapshot=snapshot,
    )
    record.save(data, rec)
    return rec


def test_a_rollback_gives_the_old_version_its_data_back_and_says_why(tmp_path: Path) -> None:
    data, esp = tmp_path / "data", tmp_path / "esp"
    data.mkdir()
    (esp / entries.ENTRIES).mkdir(parents=True)
    (esp / entries.ENTRIES / "qey-000001-a.conf").write_text("")
    (esp / entries.ENTRIES / "qey-000002-b+0-3.conf").write_text("")  # out of tries
    db = data / "qey.db"
    database(db, "scan 127.0.0.1")
    record.snapshot(db, data)
    trying(data)
    database(db, "what the new version wrote")  # then migrated, say, in its own way

    said = console.boot_check(data, booted="a", esp=esp)

    assert "did not become healthy within its 3 tries" in said
    assert "the data was restored" in said
    assert commands(db) == ["scan 127.0.0.1"]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    rec = record.load(data)
    assert rec is not None
    assert (rec.state, rec.finished_at is not None) == ("rolled-back", True)
    assert console.boot_check(data, booted="a", esp=esp) == "nothing to check"


def test_booting_the_new_slot_leaves_the_record_to_the_gate(tmp_path: Path) -> None:
    data = tmp_path
    trying(data)
    assert (
        console.boot_check(data, booted="b", esp=tmp_path) == "trying version 0.1.0+200 in slot b"
    )
    rec = record.load(data)
    assert rec is not None
    assert rec.state == "trying"


def test_the_old_slot_booted_by_hand_stops_the_new_one_being_tried(tmp_path: Path) -> None:
    data, esp = tmp_path / "data", tmp_path / "esp"
    data.mkdir()
    (esp / entries.ENTRIES).mkdir(parents=True)
    (esp / entries.ENTRIES / "qey-000002-b+2-1.conf").write_text("")
    trying(data, snapshot=False)
    said = console.boot_check(data, booted="a", esp=esp)
    assert "slot a was booted while slot b was being tried" in said
    entry = entries.entry_of(esp, "b")
    assert entry is not None
    assert entry.state == "bad"


def test_a_record_cut_short_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / record.RECORD).write_bytes(b'{"state": "tryi')
    assert record.load(tmp_path) is None
    assert console.boot_check(tmp_path, booted="a", esp=tmp_path) == "nothing to check"


def test_a_restart_in_the_middle_of_an_install_is_recorded_and_not_retried(
    tmp_path: Path,
) -> None:
    data, esp = tmp_path / "data", tmp_path / "esp"
    (data / "update").mkdir(parents=True)
    (esp / entries.ENTRIES).mkdir(parents=True)
    (esp / entries.ENTRIES / "qey-000001-a.conf").write_text("")
    (esp / entries.ENTRIES / "qey-000002-b+3.conf").write_text("")  # an earlier slot b
    (data / handoff.REQUEST).write_text("{}")
    (data / handoff.INCOMING).write_bytes(b"half a bundle")
    trying(data, snapshot=False, state="installing")

    said = console.boot_check(data, booted="a", esp=esp)

    assert "restarted while version 0.1.0+200 was being written into slot b" in said
    assert "install the bundle again" in said
    rec = record.load(data)
    assert rec is not None
    assert (rec.state, rec.reason) == ("failed", said)
    entry = entries.entry_of(esp, "b")
    assert entry is not None and entry.state == "bad", "what was half written never boots"
    assert not (data / handoff.REQUEST).exists() and not (data / handoff.INCOMING).exists()
    assert console.apply_request(data) == "nothing handed over"
    assert record.load(data) == rec, "nothing to install is not a refusal"


def test_an_install_that_finished_before_the_restart_is_tried(tmp_path: Path) -> None:
    trying(tmp_path, snapshot=True, state="installing")
    said = console.boot_check(tmp_path, booted="b", esp=tmp_path)
    assert said == "trying version 0.1.0+200 in slot b (its install had finished)"
    rec = record.load(tmp_path)
    assert rec is not None
    assert (rec.state, rec.snapshot) == ("trying", False), "no copy of the data was taken"


@pytest.mark.parametrize(
    ("state", "booted", "handed_over", "phase"),
    [
        (None, "a", True, "installing"),  # uploaded, root checks it
        ("installing", "a", False, "installing"),
        ("trying", "a", False, None),  # installed, the reboot into it still to come
        ("trying", "b", False, "trying"),
        ("committed", "b", False, None),
        ("rolled-back", "a", False, None),
        (None, "a", False, None),
    ],
)
def test_what_the_leds_say_of_an_update(
    tmp_path: Path,
    state: record.State | None,
    booted: str,
    handed_over: bool,
    phase: record.Phase | None,
) -> None:
    if state is not None:
        trying(tmp_path, state=state)
    if handed_over:
        (tmp_path / "update").mkdir()
        (tmp_path / handoff.REQUEST).write_text("{}")
    assert record.phase(tmp_path, booted) == phase


@pytest.mark.parametrize("name", ["qey-000002-b+2-1.conf", "qey-000002-b+0-3.conf"])
def test_the_gate_judges_every_try_the_last_one_too(tmp_path: Path, name: str) -> None:
    """systemd-boot counts a try down before it boots it: the last try runs as +0-3, and an
    appliance that is not healthy then must still fail the gate (whose unit reboots)."""
    (tmp_path / entries.ENTRIES).mkdir(parents=True)
    (tmp_path / entries.ENTRIES / "qey-000001-a.conf").write_text("")
    (tmp_path / entries.ENTRIES / name).write_text("")
    trying(tmp_path, snapshot=False)
    with pytest.raises(console.UpdateFailed, match="not healthy for 1 s in a row"):
        console.gate(
            tmp_path,
            tmp_path / "no-appliance.sock",
            healthy_for_s=1,
            timeout_s=0.5,
            booted="b",
            esp=tmp_path,
        )


def test_the_gate_leaves_a_committed_slot_alone(tmp_path: Path) -> None:
    (tmp_path / entries.ENTRIES).mkdir(parents=True)
    (tmp_path / entries.ENTRIES / "qey-000002-b.conf").write_text("")
    said = console.gate(
        tmp_path, tmp_path / "x.sock", healthy_for_s=1, timeout_s=0.5, booted="b", esp=tmp_path
    )
    assert said == "nothing to commit: this slot is already known good"

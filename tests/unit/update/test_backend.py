"""RAUC's boot loader backend: what it answers about the ESP's entries, and the command line
it gives a slot it makes primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.update import backend, entries

pytestmark = pytest.mark.unit


@pytest.fixture
def esp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / entries.ENTRIES).mkdir(parents=True)
    (tmp_path / entries.ENTRIES / "qey-000001-a.conf").write_text("")
    (tmp_path / entries.ENTRIES / "qey-000002-b+2-1.conf").write_text("")
    monkeypatch.setattr(backend, "ESP", tmp_path)  # the ESP's mount point: the board's edge
    return tmp_path


def test_it_answers_rauc_about_the_entries(esp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert backend.main(["get-primary"]) == 0
    assert backend.main(["get-state", "b"]) == 0
    assert backend.main(["set-state", "b", "bad"]) == 0
    assert backend.main(["get-state", "b"]) == 0
    assert backend.main(["get-primary"]) == 0
    assert capsys.readouterr().out.split() == ["b", "good", "bad", "a"]


def test_it_refuses_what_rauc_would_never_ask_in_words(
    esp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backend.main(["get-state", "c"]) == 1
    assert backend.main(["reboot-now"]) == 2
    err = capsys.readouterr().err
    assert "no slot 'c'" in err
    assert "usage: get-primary" in err


def test_a_slots_command_line_is_the_running_ones_pointed_at_its_root() -> None:
    running = (
        "BOOT_IMAGE=/qey/a/vmlinuz root=PARTUUID=1111 ro rootfstype=ext4 rootwait "
        "console=ttyS0,115200 quiet qey.slot=a rauc.slot=a panic=10"
    )
    made = backend.options_for("b", running, "2222").split()
    assert made[0] == "root=PARTUUID=2222"
    assert "qey.slot=b" in made
    assert "rauc.slot=b" in made
    assert "panic=10" in made
    assert not [w for w in made if w.endswith("=a") or w.startswith("BOOT_IMAGE")]
    assert "console=ttyS0,115200" in made

"""The ESP's boot entries: a new slot is tried first, a few times; a slot with no tries left
falls behind the other; a committed one is good for good. The order mirrors systemd-boot's."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.update import entries

pytestmark = pytest.mark.unit


def esp_with(tmp_path: Path, *names: str) -> Path:
    esp = tmp_path / "esp"
    (esp / entries.ENTRIES).mkdir(parents=True)
    for name in names:
        (esp / entries.ENTRIES / name).write_text("title x\n")
    (esp / entries.ENTRIES / "README").write_text("not an entry\n")
    return esp


def kernel_files(tmp_path: Path) -> tuple[Path, Path]:
    kernel, initrd = tmp_path / "vmlinuz-6.1", tmp_path / "initrd.img-6.1"
    kernel.write_bytes(b"kernel")
    initrd.write_bytes(b"initrd")
    return kernel, initrd


def test_names_parse_into_generation_slot_and_tries() -> None:
    trying = entries.parse("qey-000002-b+2-1.conf")
    assert trying is not None
    assert (trying.generation, trying.slot, trying.tries_left, trying.tries_done) == (2, "b", 2, 1)
    assert trying.state == "trying"
    assert trying.id == "qey-000002-b.conf"
    good = entries.parse("qey-000001-a.conf")
    assert good is not None
    assert good.state == "good"
    bad = entries.parse("qey-000003-a+0-3.conf")
    assert bad is not None
    assert bad.state == "bad"
    assert entries.parse("qey-a.conf") is None
    assert entries.parse("qey-000001-c.conf") is None


def test_the_newest_slot_boots_first_until_it_has_no_tries_left(tmp_path: Path) -> None:
    esp = esp_with(tmp_path, "qey-000001-a.conf", "qey-000002-b+1-2.conf")
    upcoming = entries.next_boot(esp)
    assert upcoming is not None
    assert upcoming.slot == "b"
    (esp / entries.ENTRIES / "qey-000002-b+1-2.conf").rename(
        esp / entries.ENTRIES / "qey-000002-b+0-3.conf"  # what the loader does as it boots it
    )
    upcoming = entries.next_boot(esp)
    assert upcoming is not None
    assert upcoming.slot == "a"
    assert [e.slot for e in entries.boot_order(entries.entries(esp))] == ["a", "b"]


def test_installing_a_slot_gives_it_a_newer_entry_with_tries_and_its_files(
    tmp_path: Path,
) -> None:
    esp = esp_with(tmp_path, "qey-000001-a.conf", "qey-000002-b+0-3.conf")
    kernel, initrd = kernel_files(tmp_path)
    made = entries.install(
        esp, "b", kernel=kernel, initrd=initrd, options="root=PARTUUID=x", tries=3, title="B"
    )
    assert made.name == "qey-000003-b+3.conf"
    assert sorted(p.name for p in (esp / entries.ENTRIES).glob("*.conf")) == [
        "qey-000001-a.conf",
        "qey-000003-b+3.conf",  # the slot's old, bad entry is gone
    ]
    assert (esp / "qey" / "b" / "vmlinuz").read_bytes() == b"kernel"
    assert (esp / "qey" / "b" / "initrd.img").read_bytes() == b"initrd"
    body = (esp / entries.ENTRIES / made.name).read_text()
    assert "linux /qey/b/vmlinuz" in body
    assert "options root=PARTUUID=x" in body
    upcoming = entries.next_boot(esp)
    assert upcoming is not None
    assert upcoming.slot == "b"
    assert not list(esp.rglob("*.part"))


def test_marking_blesses_or_gives_up_on_a_slot(tmp_path: Path) -> None:
    esp = esp_with(tmp_path, "qey-000001-a.conf", "qey-000002-b+2-1.conf")
    good = entries.mark(esp, "b", "good")
    assert good is not None
    assert good.name == "qey-000002-b.conf"
    bad = entries.mark(esp, "a", "bad")
    assert bad is not None
    assert bad.name == "qey-000001-a+0-0.conf"
    upcoming = entries.next_boot(esp)
    assert upcoming is not None
    assert upcoming.slot == "b"
    assert entries.mark(esp, "b", "good") == good  # already good: nothing renamed


def test_a_slot_that_is_not_a_or_b_is_refused() -> None:
    with pytest.raises(entries.BadSlot, match="the slots are a, b"):
        entries.slot_of("c")


def test_the_booted_slot_comes_from_the_kernel_command_line(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=PARTUUID=x ro qey.slot=b rauc.slot=b\n")
    assert entries.boot_slot(cmdline) == "b"
    assert entries.boot_slot(tmp_path / "missing") == "host"

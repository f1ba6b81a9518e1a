"""The boot loader's entries for the two root slots, on the EFI system partition.

systemd-boot does the counting (its Automatic Boot Assessment): an entry named
``qey-000002-b+3.conf`` has three tries left; the loader renames it to ``+2-1`` before it boots
it, and an entry with none left (``+0-3``) is "bad" and sorted after every other. Among the
rest it prefers the greatest id, so each install gets the next generation number and the newest
slot is tried first; once the appliance is healthy on it, the counter is dropped
(``qey-000002-b.conf``: good for good). A slot whose tries run out falls behind the other one,
and the loader boots that by itself: no one needs to be at the device.

This module only reads and renames files; ``boot_order`` mirrors the loader's own ordering so
that what the appliance reports is what the loader will do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import msgspec

Slot = Literal["a", "b"]
SLOTS: tuple[Slot, Slot] = ("a", "b")
EntryState = Literal["good", "trying", "bad"]

ENTRIES = Path("loader/entries")
_NAME = re.compile(
    r"^qey-(?P<gen>\d{6})-(?P<slot>[ab])(?:\+(?P<left>\d+)(?:-(?P<done>\d+))?)?\.conf$"
)


class BadSlot(ValueError):
    """Not a slot this appliance has (``a`` or ``b``)."""


class Entry(msgspec.Struct, frozen=True):
    name: str  # the file's name in loader/entries
    generation: int  # the install that wrote it: the newest is tried first
    slot: Slot
    tries_left: int | None  # None: counting is over, the slot is known good
    tries_done: int

    @property
    def state(self) -> EntryState:
        if self.tries_left is None:
            return "good"
        return "bad" if self.tries_left == 0 else "trying"

    @property
    def on_trial(self) -> bool:
        """Still counted, so not committed: booted with none left (``+0-3``) it is its last
        try, which the health gate must judge like the others (systemd-boot counts a try
        down before it boots it)."""
        return self.tries_left is not None

    @property
    def id(self) -> str:
        """The id systemd-boot sorts by: the name without its counter."""
        return f"qey-{self.generation:06d}-{self.slot}.conf"


def boot_slot(cmdline: Path = Path("/proc/cmdline")) -> str:
    """The root slot this system booted from (``qey.slot=a`` on the kernel command line of
    the image), or ``host`` when the appliance runs on an ordinary machine."""
    try:
        words = cmdline.read_text().split()
    except OSError:
        return "host"
    return next((w.split("=", 1)[1] for w in words if w.startswith("qey.slot=")), "host")


def slot_of(text: str) -> Slot:
    if text not in SLOTS:
        raise BadSlot(f"no slot {text!r}: the slots are {', '.join(SLOTS)}")
    return text


def other(slot: Slot) -> Slot:
    return "b" if slot == "a" else "a"


def parse(name: str) -> Entry | None:
    found = _NAME.match(name)
    if found is None:
        return None
    left = found["left"]
    return Entry(
        name=name,
        generation=int(found["gen"]),
        slot=slot_of(found["slot"]),
        tries_left=int(left) if left is not None else None,
        tries_done=int(found["done"] or 0),
    )


def entries(esp: Path) -> list[Entry]:
    folder = esp / ENTRIES
    if not folder.is_dir():
        return []
    return [e for e in (parse(p.name) for p in folder.iterdir()) if e is not None]


def boot_order(found: list[Entry]) -> list[Entry]:
    """The order systemd-boot puts them in (and boots the first of): entries with no tries
    left last, then by id, greatest first (zero-padded generations compare as text)."""
    newest_first = sorted(found, key=lambda e: e.id, reverse=True)
    return sorted(newest_first, key=lambda e: e.state == "bad")  # stable: keeps the rest


def next_boot(esp: Path) -> Entry | None:
    order = boot_order(entries(esp))
    return order[0] if order else None


def entry_of(esp: Path, slot: Slot) -> Entry | None:
    mine = [e for e in entries(esp) if e.slot == slot]
    return max(mine, key=lambda e: e.generation) if mine else None


def install(
    esp: Path, slot: Slot, *, kernel: Path, initrd: Path, options: str, tries: int, title: str
) -> Entry:
    """Give ``slot`` a new entry with ``tries`` tries, newer than any other, and copy its
    kernel and initrd beside it. The old entry of the slot goes first (the loader must never
    find an entry whose files are half written), and each file is written then renamed."""
    if tries < 1:
        raise ValueError("a new slot needs at least one try")
    generation = 1 + max((e.generation for e in entries(esp)), default=0)  # never reused
    for old in [e for e in entries(esp) if e.slot == slot]:
        (esp / ENTRIES / old.name).unlink()
    _sync(esp / ENTRIES)
    files = esp / "qey" / slot
    files.mkdir(parents=True, exist_ok=True)
    for src, name in ((kernel, "vmlinuz"), (initrd, "initrd.img")):
        _write_whole(files / name, src.read_bytes())
    name = f"qey-{generation:06d}-{slot}+{tries}.conf"
    body = (
        f"title {title}\nlinux /qey/{slot}/vmlinuz\ninitrd /qey/{slot}/initrd.img\n"
        f"options {options}\n"
    )
    (esp / ENTRIES).mkdir(parents=True, exist_ok=True)
    _write_whole(esp / ENTRIES / name, body.encode())
    entry = parse(name)
    assert entry is not None
    return entry


def mark(esp: Path, slot: Slot, state: Literal["good", "bad"]) -> Entry | None:
    """Bless a slot's entry (drop its counter) or give up on it (no tries left)."""
    entry = entry_of(esp, slot)
    if entry is None or entry.state == state:
        return entry
    base = entry.id.removesuffix(".conf")
    name = f"{base}.conf" if state == "good" else f"{base}+0-{entry.tries_done}.conf"
    os.rename(esp / ENTRIES / entry.name, esp / ENTRIES / name)
    _sync(esp / ENTRIES)
    return parse(name)


def _write_whole(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    _sync(path.parent)


def _sync(folder: Path) -> None:
    if not folder.is_dir():
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_kernel(root: Path) -> tuple[Path, Path]:
    """A root filesystem's kernel and initrd (Debian's /boot/vmlinuz and /boot/initrd.img
    links), for ``install``."""
    found = []
    for name in ("vmlinuz", "initrd.img"):
        path = root / "boot" / name
        if path.is_symlink():
            path = root / "boot" / os.readlink(path).lstrip("/").removeprefix("boot/")
        if not path.is_file():
            raise FileNotFoundError(f"{root}: no /boot/{name}")
        found.append(path)
    return found[0], found[1]

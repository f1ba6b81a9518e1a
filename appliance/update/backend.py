"""RAUC's boot loader backend for this appliance (``bootloader=custom`` in system.conf).

RAUC writes the inactive slot; this tells the boot loader about it. RAUC calls it as
``get-primary``, ``set-primary SLOT``, ``get-state SLOT``, ``set-state SLOT good|bad`` (and,
from newer versions, ``get-current``).
Making a slot primary copies its kernel and initrd (from the root filesystem just written) to
the ESP and gives it a new entry with a few tries; marking it good drops the counter. The
counting itself is systemd-boot's: see ``entries``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from appliance.update import entries
from appliance.update.entries import Slot

ESP = Path(os.environ.get("QEY_ESP", "/efi"))
TRIES = 3


def slot_device(slot: Slot) -> Path:
    return Path(f"/dev/disk/by-partlabel/root-{slot}")


def options_for(slot: Slot, current: str, partuuid: str) -> str:
    """The kernel command line for ``slot``: the running one's, pointed at that slot's root."""
    words = []
    for word in current.split():
        if word.startswith(("root=", "qey.slot=", "rauc.slot=", "BOOT_IMAGE=", "panic=")):
            continue
        words.append(word)
    return " ".join(
        [f"root=PARTUUID={partuuid}", *words, f"qey.slot={slot}", f"rauc.slot={slot}", "panic=10"]
    )


def partuuid(device: Path) -> str:
    done = subprocess.run(
        ["blkid", "-s", "PARTUUID", "-o", "value", str(device)],
        capture_output=True,
        text=True,
        check=True,
    )
    value = done.stdout.strip()
    if not re.fullmatch(r"[0-9a-fA-F-]{36}", value):
        raise RuntimeError(f"{device}: no partition UUID ({value!r})")
    return value


@contextmanager
def mounted(device: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="qey-slot-") as where:
        subprocess.run(["mount", "-o", "ro", str(device), where], check=True)
        try:
            yield Path(where)
        finally:
            subprocess.run(["umount", where], check=True)


def set_primary(slot: Slot, esp: Path = ESP) -> None:
    current = _booted()
    if slot == current:
        entries.mark(esp, slot, "good")  # "boot what runs now": it is good
        return
    device = slot_device(slot)
    cmdline = Path("/proc/cmdline").read_text()
    options = options_for(slot, cmdline, partuuid(device))
    with mounted(device) as root:
        kernel, initrd = entries.copy_kernel(root)
        entries.install(
            esp,
            slot,
            kernel=kernel,
            initrd=initrd,
            options=options,
            tries=TRIES,
            title=f"qEY-0 (slot {slot.upper()})",
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        match args:
            case ["get-primary"]:
                entry = entries.next_boot(ESP)
                if entry is None:
                    print("no boot entry on the ESP", file=sys.stderr)
                    return 1
                print(entry.slot)
            case ["get-current"]:  # newer RAUCs ask; 1.8 reads rauc.slot= itself
                booted = _booted()
                if booted is None:
                    print("not booted from a slot", file=sys.stderr)
                    return 1
                print(booted)
            case ["set-primary", slot]:
                set_primary(entries.slot_of(slot))
            case ["get-state", slot]:
                entry = entries.entry_of(ESP, entries.slot_of(slot))
                print("bad" if entry is None or entry.state == "bad" else "good")
            case ["set-state", slot, ("good" | "bad") as state]:
                entries.mark(ESP, entries.slot_of(slot), state)
            case _:
                print(
                    f"usage: get-primary | set-primary SLOT | get-state SLOT | "
                    f"set-state SLOT good|bad (got {' '.join(args)!r})",
                    file=sys.stderr,
                )
                return 2
    except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as err:
        print(f"qey boot backend: {err}", file=sys.stderr)
        return 1
    return 0


def _booted() -> Slot | None:
    slot = entries.boot_slot()
    return entries.slot_of(slot) if slot in entries.SLOTS else None


if __name__ == "__main__":
    raise SystemExit(main())

"""A root slot that never reaches userspace: the loader tries it a few times, each try
reboots by itself (panic=10), and then the old slot boots and the appliance gets ready,
with no one at the device. What an update that wrote a broken slot B would leave.

Slot B is set up the way the boot loader backend (appliance/update/backend.py) sets up a
new slot: slot A's kernel and initrd in the ESP's /qey/b/, a newer entry with three tries,
its command line pointed at root-b, which here holds no filesystem at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.update.backend import TRIES, options_for
from appliance.update.entries import ENTRIES
from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, build_image

pytestmark = pytest.mark.qemu

TARGET = "qemu-amd64"
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
PANIC = "Rebooting automatically due to panic= boot argument"


def mtools(*args: str) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=MTOOLS)
    return done.stdout


def with_broken_slot_b(image: Path, disk: Path, tmp: Path) -> str:
    """A copy of the image whose slot B is tried first and cannot boot; its entry's name."""
    subprocess.run(["cp", "--sparse=always", str(image), str(disk)], check=True)
    manifest = json.loads((image.parent / "manifest.json").read_text())
    root_b = next(p["uuid"] for p in manifest["partitions"] if p["name"] == "root-b")
    esp = f"{disk}@@1M"
    mtools("mmd", "-i", esp, "::/qey/b")
    for name in ("vmlinuz", "initrd.img"):
        mtools("mcopy", "-i", esp, f"::/qey/a/{name}", str(tmp / name))
        mtools("mcopy", "-i", esp, str(tmp / name), f"::/qey/b/{name}")
    entry = f"qey-000002-b+{TRIES}.conf"
    body = tmp / entry
    body.write_text(
        "title qEY-0 (slot B, broken)\nlinux /qey/b/vmlinuz\ninitrd /qey/b/initrd.img\n"
        f"options {options_for('b', manifest['kernel_cmdline'], root_b)}\n"
    )
    mtools("mcopy", "-i", esp, str(body), f"::/{ENTRIES}/{entry}")
    return entry


def esp_entries(disk: Path, tmp: Path) -> list[str]:
    flat = tmp / "after.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(flat)], check=True)
    listing = mtools("mdir", "-b", "-i", f"{flat}@@1M", f"::/{ENTRIES}")
    flat.unlink()
    return sorted(Path(line.strip()).name for line in listing.splitlines() if line.strip())


def test_a_slot_that_never_boots_is_given_up_and_the_old_one_boots_by_itself(
    tmp_path: Path,
) -> None:
    image = build_image(TARGET)
    state = tmp_path / "state"
    state.mkdir()
    disk = tmp_path / "disk.img"
    entry = with_broken_slot_b(image, disk, tmp_path)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(disk),
         str(state / "disk.qcow2"), "4G"],
        check=True,
    )  # fmt: skip
    shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd", state / "efivars.fd")
    guest = Guest(TARGET, state, reboot=True)
    guest.start()
    try:
        # each try: firmware, loader, kernel, initramfs's panic, ten seconds, reboot
        ready = guest.wait_for(r"qey ready (\S+) (\S+)", TRIES * 90 + READY_DEADLINE_S)
        log = guest.log()
    finally:
        guest.stop()
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "qemu-amd64-rollback-console.log").write_text(guest.log())
    assert ready.group(2) == "a", "the appliance came up on slot A"
    assert log.count(PANIC) == TRIES, f"slot B was tried {TRIES} times, each rebooting itself"
    assert re.search(r"Failed to mount|No init found|fsck", log)
    after = esp_entries(state / "disk.qcow2", tmp_path)
    assert f"qey-000002-b+0-{TRIES}.conf" in after, f"slot B is out of tries: {after}"
    assert "qey-000001-a.conf" in after
    assert entry not in after

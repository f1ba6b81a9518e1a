"""A root slot that never reaches userspace: the loader tries it a few times, each try
reboots by itself (panic=10), and then the old slot boots and the appliance gets ready,
with no one at the device. What an update that wrote a broken slot B would leave.

Slot B is set up the way the boot loader backend (appliance/update/backend.py) sets up a
new slot: slot A's kernel and initrd in the ESP's /qey/b/, a newer entry with three tries,
its command line pointed at root-b, which here holds no filesystem at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.update.backend import TRIES
from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, build_image
from tests.qemu.disk import Disk, esp_entries, overlay

pytestmark = pytest.mark.qemu

TARGET = "qemu-amd64"
PANIC = "Rebooting automatically due to panic= boot argument"


def test_a_slot_that_never_boots_is_given_up_and_the_old_one_boots_by_itself(
    tmp_path: Path,
) -> None:
    disk = Disk(build_image(TARGET), tmp_path / "disk.img")
    entry = disk.new_slot_b(tmp_path, tries=TRIES)  # root-b holds no filesystem at all
    state = tmp_path / "state"
    overlay(TARGET, disk.path, state)
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

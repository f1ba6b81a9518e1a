"""A hung system is reset by the hardware watchdog, with no one at the device.

Once the appliance is ready, the kernel is crashed on purpose (sysrq "c", by a unit the test
lays into slot A's root) with ``panic=0`` on its command line, so it never reboots by itself:
everything stops, PID 1 included, and with it the petting of the watchdog (systemd's
RuntimeWatchdogSec, QEMU's i6300esb). Only the watchdog can bring the machine back; the test
waits for the appliance to be ready again.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, build_image
from tests.qemu.disk import Disk, overlay

pytestmark = pytest.mark.qemu_arm64

# The board's image (arm64): its kernel has the watchdog drivers (i6300esb, sp805, dw_wdt); the
# amd64 test image's cloud kernel has none for QEMU's devices.
TARGET = "qemu-arm64"
WATCHDOG_S = 30  # rootfs-overlay/etc/systemd/system.conf.d/qey-watchdog.conf
# laid into the root: once the appliance is ready, the kernel stops (only once: the mark is on
# the data partition, written out before the crash)
HANG_UNIT = """[Unit]
Description=test: hang the system once the appliance is ready
Requires=qey.service
After=qey.service
ConditionPathExists=!/data/hung-once

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'touch /data/hung-once; sync; sleep 3; echo c > /proc/sysrq-trigger'
"""
CRASH = "Kernel panic - not syncing: sysrq triggered crash"


def test_a_hung_system_is_reset_by_the_watchdog(tmp_path: Path) -> None:
    disk = Disk(build_image(TARGET), tmp_path / "disk.img")
    disk.edit_first_entry(tmp_path, drop=("panic=",), add="panic=0")
    unit = tmp_path / "qey-test-hang.service"
    unit.write_text(HANG_UNIT)
    disk.put_file("root-a", unit, "/etc/systemd/system/qey-test-hang.service")
    disk.link(
        "root-a",
        "/etc/systemd/system/multi-user.target.wants/qey-test-hang.service",
        "/etc/systemd/system/qey-test-hang.service",
    )
    state = tmp_path / "state"
    overlay(TARGET, disk.path, state)
    guest = Guest(TARGET, state, reboot=True)
    guest.start()
    try:
        guest.wait_for(r"qey ready", READY_DEADLINE_S)
        guest.wait_for(re.escape(CRASH), 120)
        hung = time.monotonic()
        back = guest.wait_for(
            rf"(?s){re.escape(CRASH)}.*qey ready (\S+) (\S+)", WATCHDOG_S + 60 + READY_DEADLINE_S
        )
        took = time.monotonic() - hung
        log = guest.log()
    finally:
        guest.stop()
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "qemu-arm64-watchdog-console.log").write_text(guest.log())
    before_crash = log[: log.index(CRASH)]
    assert "qey ready" in before_crash, "the appliance was up before the system hung"
    assert back.group(2) == "a"
    assert took >= WATCHDOG_S - 5, f"back after {took:.0f} s: too soon for the watchdog"
    print(f"hung system to appliance ready again: {took:.0f} s (watchdog {WATCHDOG_S} s)")

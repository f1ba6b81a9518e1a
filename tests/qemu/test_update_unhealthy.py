"""A new slot that boots but whose appliance never gets ready: the health gate reboots it each
time, the loader gives up on it after its tries, and the old slot boots by itself, notices the
rollback and says so. No one touches the device.

The disk is set up as an install leaves it (the way appliance/update/backend.py and
``qey update`` do): a root filesystem in root-b (this image's own), a newer boot entry for it
with three tries, and the update record "trying" on the data partition. Slot B's command line
masks qey.service: the system comes up, the appliance never does. The gate waits 40 s instead
of its 900 (update-gate.env, the setting it reads from the data partition).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from appliance.update import record
from appliance.update.backend import TRIES
from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, build_image
from tests.qemu.disk import Disk, esp_entries, overlay
from tests.qemu.test_boot import login
from tests.qemu.test_update import update_view

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

TARGET = "qemu-amd64"
GATE_TIMEOUT_S = 40
TRY_S = 60 + GATE_TIMEOUT_S + 60  # boot to the gate, its wait, the reboot and firmware


def test_a_slot_whose_appliance_never_gets_ready_is_rebooted_until_the_old_one_is_back(
    tmp_path: Path,
) -> None:
    disk = Disk(build_image(TARGET), tmp_path / "disk.img")
    running = (disk.built / "version").read_text().strip()
    disk.write_partition("root-b", disk.built / "root.ext4")
    entry = disk.new_slot_b(tmp_path, extra_options="systemd.mask=qey.service", tries=TRIES)
    trying = record.UpdateRecord(
        state="trying",
        version=f"{running}.1",
        from_version=running,
        from_slot="a",
        to_slot="b",
        started_at=time.time(),
    )
    (tmp_path / "update.json").write_bytes(msgspec.json.encode(trying))
    (tmp_path / "update-gate.env").write_text(f"QEY_GATE_TIMEOUT_S={GATE_TIMEOUT_S}\n")
    for name in ("update.json", "update-gate.env"):
        disk.put_file("data", tmp_path / name, f"qey/{name}")
    state = tmp_path / "state"
    overlay(TARGET, disk.path, state)

    guest = Guest(TARGET, state, reboot=True)
    guest.start()
    try:
        back = guest.wait_for(r"qey ready (\S+) (\S+)", TRIES * TRY_S + READY_DEADLINE_S)
        back_s = time.monotonic() - guest.started
        log = guest.log()
        view = update_view(login(guest), guest.base_url)
    finally:
        guest.stop()
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "qemu-amd64-unhealthy-console.log").write_text(guest.log())
    assert back.group(2) == "a", "the appliance came up on the old slot"
    assert log.count("not healthy for 60 s in a row") == TRIES, "each try ended by the gate"
    assert f"did not become healthy within its {TRIES} tries; back on slot a" in log
    after = esp_entries(state / "disk.qcow2", tmp_path)
    assert f"qey-000002-b+0-{TRIES}.conf" in after, f"slot B is out of tries: {after}"
    assert entry not in after
    last = view["last"]
    assert (last["state"], last["to_slot"], last["version"]) == (
        "rolled-back",
        "b",
        trying.version,
    )
    assert "did not become healthy" in last["reason"]
    assert view["booted_slot"] == "a"
    print(f"unhealthy slot B tried {TRIES} times; slot A ready again after {back_s:.0f} s")

"""An update end to end under QEMU, with a power cut in the middle of the first try.

A signed bundle of a newer version is uploaded through the panel and checked; while RAUC
writes it into slot B the plug is pulled. The device comes back on slot A, which says what
happened and drops the half-done install. The same bundle uploaded again is written, the
device reboots into it, the health gate commits it, and the admin password and the jobs
from before are all still there.

The bundle is this image's own root filesystem with a newer version written into it
(debugfs edits the ext4 image, no mount), signed with the key the image trusts, made the way
./build.sh bundle makes it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import qemu
import requests
from bundle import KEYS as OUR_KEYS  # image/bundle.py: the key ./build.sh image trusts

from tests.integration.test_update_bundles import bundle as small_bundle
from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, build_image
from tests.qemu.test_boot import COMMAND, csrf_of, login

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

TARGET = "qemu-amd64"
INSTALL_DEADLINE_S = 900  # checking and writing a 1 GiB root slot under TCG
GATE_S = 60  # qey-update-gate.service's default: healthy this long in a row


def newer_bundle(image: Path, tmp: Path) -> tuple[Path, str]:
    built = image.parent
    running = (built / "version").read_text().strip()
    base, _, stamp = running.partition("+")
    version = f"{base}+{int(stamp) + 1}"
    root = tmp / "root.ext4"
    subprocess.run(["cp", "--sparse=always", str(built / "root.ext4"), str(root)], check=True)
    (tmp / "image-version").write_text(version + "\n")
    for request in (
        "rm /usr/lib/qey/image-version",
        f"write {tmp / 'image-version'} /usr/lib/qey/image-version",
    ):
        subprocess.run(["debugfs", "-w", "-R", request, str(root)], check=True, capture_output=True)
    bundle = tmp / f"qey-{TARGET}-{version}.raucb"
    subprocess.run(
        [sys.executable, str(ROOT / "image" / "bundle.py"), "--root-image", str(root),
         "--compatible", (built / "compatible").read_text().strip(), "--version", version,
         "--out", str(bundle)],
        check=True,
    )  # fmt: skip
    root.unlink()
    return bundle, version


def refused_bundles(image: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Small bundles the device must refuse before writing anything, with the words of the
    refusal: signed by another key, for another board, older, damaged after signing."""
    built = image.parent
    running = (built / "version").read_text().strip()
    base, _, stamp = running.partition("+")
    ours, compatible = OUR_KEYS, (built / "compatible").read_text().strip()
    other = "qey-arm64" if compatible != "qey-arm64" else "qey-amd64"
    made = {
        "another key": (
            small_bundle(
                tmp, tmp / "their-keys", version=f"{base}+{int(stamp) + 5}", compatible=compatible
            ),
            "not signed by this appliance's update key",
        ),
        "another board": (
            small_bundle(tmp, ours, version=f"{base}+{int(stamp) + 6}", compatible=other),
            f"for '{other}'; this appliance is '{compatible}'",
        ),
        "a downgrade": (
            small_bundle(tmp, ours, version=f"{base}+{int(stamp) - 1}", compatible=compatible),
            "needs --allow-downgrade",
        ),
    }
    damaged = small_bundle(tmp, ours, version=f"{base}+{int(stamp) + 7}", compatible=compatible)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 3] ^= 0xFF  # in the root image: the signature still verifies
    damaged.write_bytes(bytes(data))
    made["damaged"] = (damaged, "root.ext4 is damaged")
    return made


def next_record(s: requests.Session, base: str, after: float, deadline_s: float) -> dict[str, Any]:
    """The update record root writes once it is done with a hand-over newer than ``after``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        view = update_view(s, base)
        last = view["last"]
        if not view["requested"] and last and last["started_at"] > after and last["finished_at"]:
            return view
        time.sleep(2)
    pytest.fail(f"no new update record within {deadline_s:.0f} s: {update_view(s, base)}")


def update_view(s: requests.Session, base: str) -> dict[str, Any]:
    view: dict[str, Any] = s.get(f"{base}/api/v1/update", timeout=30).json()
    return view


def upload(s: requests.Session, base: str, bundle: Path, reboot: bool = True) -> None:
    """The bundle through the panel, to be installed (and rebooted into)."""
    with bundle.open("rb") as body:
        resp = s.post(
            f"{base}/api/v1/update?reboot={int(reboot)}",
            data=body,
            headers={"X-CSRF-Token": csrf_of(s, base), "Content-Type": "application/octet-stream"},
            timeout=600,
        )
    assert resp.status_code == 202, resp.text


def test_an_update_cut_by_a_power_loss_then_done_again_is_committed_and_keeps_the_data(
    tmp_path: Path,
) -> None:
    image = build_image(TARGET)
    bundle, version = newer_bundle(image, tmp_path)
    refused = refused_bundles(image, tmp_path)
    state = tmp_path / "state"
    qemu.prepare(TARGET, state, disk_size="4G", fresh=True)
    guest = Guest(TARGET, state, reboot=True)
    logs: list[str] = []
    guest.start()
    try:
        guest.wait_for(r"qey ready \S+ a ", READY_DEADLINE_S)
        s, base = login(guest), guest.base_url
        headers = {"X-CSRF-Token": csrf_of(s, base)}
        job = s.post(f"{base}/api/v1/jobs", json={"command": COMMAND}, headers=headers).json()
        s.get(f"{base}/api/v1/jobs/{job['job_id']}?wait=120", timeout=150)
        jobs_before = s.get(f"{base}/api/v1/jobs", timeout=30).json()
        before = update_view(s, base)
        assert before["booted_slot"] == "a"

        # 0. bundles the device must refuse, each before anything is written
        after = 0.0
        for what, (small, why) in refused.items():
            upload(s, base, small, reboot=False)
            view = next_record(s, base, after, 180)
            last = view["last"]
            after = last["started_at"]
            assert last["state"] == "refused" and why in last["reason"], (what, last)
            slots = {v["slot"]: v for v in view["slots"]}
            assert slots["b"]["state"] == "empty", f"{what}: slot B was touched: {slots}"
            assert slots["a"]["boots_next"], what

        # 1. the plug is pulled while RAUC writes slot B (the copy takes about 100 s here)
        upload(s, base, bundle)
        guest.wait_for(r"Copying image to rootfs", INSTALL_DEADLINE_S)
        time.sleep(15)
        logs.append(guest.log())
        guest.stop()
        guest.start()
        cut = guest.wait_for(
            r"qey update: (the device restarted while version \S+ was being written into "
            r"slot b[^\r\n]*)",
            READY_DEADLINE_S,
        )
        guest.wait_for(r"qey ready \S+ a ", READY_DEADLINE_S)
        s = login(guest)
        after_cut = update_view(s, base)
        assert after_cut["booted_slot"] == "a"
        assert after_cut["running_version"] == before["running_version"]
        last = after_cut["last"]
        assert (last["state"], last["version"]) == ("failed", version)
        assert last["reason"] == cut.group(1).strip()

        # 2. the next attempt: written, rebooted into, committed by the health gate
        t0 = time.monotonic()
        upload(s, base, bundle)
        guest.wait_for(r"qey update: version \S+ installed in slot b", INSTALL_DEADLINE_S)
        installed_s = time.monotonic() - t0
        guest.wait_for(r"qey ready \S+ b ", READY_DEADLINE_S + 120)
        guest.wait_for(r"qey update: slot b committed", GATE_S + 180)

        s = login(guest)
        after = update_view(s, base)
        assert after["booted_slot"] == "b"
        assert after["running_version"] == version
        last = after["last"]
        assert (last["state"], last["to_slot"], last["version"]) == ("committed", "b", version)
        jobs_after = {j["job_id"]: j for j in s.get(f"{base}/api/v1/jobs", timeout=30).json()}
        assert jobs_before and all(jobs_after.get(j["job_id"]) == j for j in jobs_before)
        print(
            f"update: bundle {bundle.stat().st_size / 1e6:.0f} MB, uploaded, checked and "
            f"installed in {installed_s:.0f} s"
        )
    finally:
        guest.stop()
        logs.append(guest.log())
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "qemu-amd64-update-console.log").write_text(
            "\n--- power cut ---\n".join(logs)
        )
    assert not re.search(r"qey-update-gate\.service: Failed", logs[-1])

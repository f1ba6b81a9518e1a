"""A good update, end to end under QEMU: a signed bundle of a newer version is uploaded
through the panel, checked and written into slot B by root's update service, the device
reboots into it, the health gate commits it, and the admin password and the jobs from
before are all still there.

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


def update_view(s: requests.Session, base: str) -> dict[str, Any]:
    view: dict[str, Any] = s.get(f"{base}/api/v1/update", timeout=30).json()
    return view


def test_a_good_update_is_installed_tried_committed_and_keeps_the_data(tmp_path: Path) -> None:
    image = build_image(TARGET)
    bundle, version = newer_bundle(image, tmp_path)
    state = tmp_path / "state"
    qemu.prepare(TARGET, state, disk_size="4G", fresh=True)
    guest = Guest(TARGET, state, reboot=True)
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

        t0 = time.monotonic()
        with bundle.open("rb") as body:
            resp = s.post(
                f"{base}/api/v1/update?reboot=1",
                data=body,
                headers={**headers, "Content-Type": "application/octet-stream"},
                timeout=600,
            )
        assert resp.status_code == 202, resp.text
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
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "qemu-amd64-update-console.log").write_text(guest.log())
    assert not re.search(r"qey-update-gate\.service: Failed", guest.log())

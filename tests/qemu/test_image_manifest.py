"""Two builds of one commit give the same manifest: every step after the (cached) Debian base
is deterministic: the wheels installed, the appliance wheel's files, the model, the partition
layout and ids (SOURCE_DATE_EPOCH from git). The base itself is the same by its cache key; a
cold base built another day is pinned only by $QEY_DEBIAN_MIRROR."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.qemu.conftest import BUILD_DEADLINE_S, ROOT, build_image

pytestmark = pytest.mark.qemu

TARGET = "qemu-amd64"


def test_a_forced_rebuild_gives_the_same_manifest() -> None:
    manifest = build_image(TARGET).parent / "manifest.json"
    first = json.loads(manifest.read_text())
    subprocess.run(
        [str(ROOT / "build.sh"), "image", "--target", TARGET, "--force"],
        check=True,
        timeout=BUILD_DEADLINE_S,
    )
    second = json.loads(manifest.read_text())
    assert second == first
    assert first["debian_packages"]["systemd:amd64"]
    assert first["model"]["router.onnx"] and first["wheels"]


def initramfs_files(image: Path) -> dict[str, bytes]:
    """The files of the ESP's initrd: zstd over the kernel's "newc" cpio format."""
    esp = f"{image}@@1M"  # the ESP is the first partition, at 1 MiB
    packed = subprocess.run(
        ["mtype", "-i", esp, "::/qey/a/initrd.img"],
        check=True,
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    data = subprocess.run(["zstd", "-dc"], input=packed, check=True, capture_output=True).stdout
    files: dict[str, bytes] = {}
    at = 0
    while (at := data.find(b"070701", at)) >= 0:
        size, name_size = int(data[at + 54 : at + 62], 16), int(data[at + 94 : at + 102], 16)
        name = data[at + 110 : at + 110 + name_size - 1].decode()
        start = (at + 110 + name_size + 3) & ~3
        files[name] = data[start : start + size]
        at = (start + size + 3) & ~3
    return files


def test_the_initramfs_holds_only_what_finds_the_root() -> None:
    """MODULES=list and udev for the root's block device only: the 30 MB "most modules"
    initramfs and its coldplug of every device cost 12 s of every boot under TCG."""
    files = initramfs_files(build_image(TARGET))
    modules = sorted(Path(n).name for n in files if n.endswith(".ko") or ".ko." in n)
    assert any(m.startswith("virtio_blk.ko") for m in modules), modules
    assert len(modules) < 40, modules
    udev = files["scripts/init-top/udev"].decode()
    assert "--subsystem-match=block" in udev
    assert "--type=subsystems" not in udev
    # its block devices tagged for systemd: the root's systemd finds the data partition at once
    tags = files["usr/lib/udev/rules.d/99-qey-systemd-block.rules"].decode()
    assert 'SUBSYSTEM=="block"' in tags and 'TAG+="systemd"' in tags
    assert sum(len(b) for b in files.values()) < 30 * 1024 * 1024

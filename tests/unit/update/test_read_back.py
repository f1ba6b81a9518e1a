"""Reading a slot back after RAUC wrote it: the bytes the storage kept must be the image's
bytes as signed; what lies past the image in the partition does not count."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from appliance.update.bundles import Image, written_intact

pytestmark = pytest.mark.unit

IMAGE = os.urandom(3 << 20)  # more than one read


def image() -> Image:
    digest = hashlib.sha256(IMAGE).hexdigest()
    return Image(slot_class="rootfs", filename="root.ext4", checksum=digest, size=len(IMAGE))


def test_a_slot_that_kept_every_byte_reads_back_intact(tmp_path: Path) -> None:
    slot = tmp_path / "root-b"
    slot.write_bytes(IMAGE + b"\0" * 4096 + b"what was there before")  # the partition is larger
    seen: list[int] = []
    assert written_intact(slot, image(), progress=lambda done, total: seen.append(done))
    assert seen[-1] == len(IMAGE)


def test_a_changed_byte_or_a_short_slot_is_caught(tmp_path: Path) -> None:
    slot = tmp_path / "root-b"
    changed = bytearray(IMAGE)
    changed[len(IMAGE) // 2] ^= 0x01
    slot.write_bytes(bytes(changed) + b"\0" * 4096)
    assert not written_intact(slot, image())
    slot.write_bytes(IMAGE[:-1])
    assert not written_intact(slot, image())

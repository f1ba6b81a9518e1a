from __future__ import annotations

from pathlib import Path

import pytest

from appliance.app import boot_slot

pytestmark = pytest.mark.unit


def test_the_ready_line_names_the_slot_the_image_booted_from(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=PARTLABEL=root-a ro qey.slot=a console=ttyS0\n")
    assert boot_slot(cmdline) == "a"
    cmdline.write_text("root=/dev/sda1 ro\n")
    assert boot_slot(cmdline) == "host"
    assert boot_slot(tmp_path / "missing") == "host"

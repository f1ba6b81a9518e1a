"""``qey display-emulator``: the command a person runs to see what the display shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from appliance.cli import main

pytestmark = pytest.mark.integration


def test_the_loop_demo_decodes_real_frames_into_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "demo.png"
    assert main(["display-emulator", "loop://", "--png", str(png), "--no-terminal"]) == 0
    assert "40 frames decoded" in capsys.readouterr().err
    with Image.open(png) as picture:
        assert picture.size == (480, 320)

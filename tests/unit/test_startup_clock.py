"""The start-up account printed after the ready line: phases in order, the process's age."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from appliance.app import StartupClock, process_age

pytestmark = pytest.mark.unit


def test_the_summary_names_each_phase_in_order_with_the_whole_start() -> None:
    clock = StartupClock()
    time.sleep(0.02)
    clock.mark("model")
    clock.mark("panel")
    summary = clock.summary()
    found = re.fullmatch(r"started in ([0-9.]+) s: model ([0-9.]+), panel ([0-9.]+)", summary)
    assert found, summary
    assert float(found.group(1)) >= float(found.group(2)) >= 0.0


def test_the_process_age_is_read_from_proc_and_absent_elsewhere(tmp_path: Path) -> None:
    age = process_age()
    assert age is not None and 0.0 <= age < 3600  # this test process began a moment ago
    assert process_age(tmp_path / "no-such-stat") is None
    garbled = tmp_path / "stat"
    garbled.write_text("123 (python) R")
    assert process_age(garbled) is None

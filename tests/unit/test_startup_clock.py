"""The start: the router loading beside the imports, and the account printed after the ready
line (phases in order, what ran beside them, the process's age)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.hal.errors import BadBoardProfile
from appliance.settings import Settings
from appliance.startup import RouterLoading, StartupClock, process_age

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
    # a process that began a moment ago: not this one, which a long test run makes old
    young = subprocess.run(
        [sys.executable, "-c", "from appliance.startup import process_age; print(process_age())"],
        capture_output=True,
        text=True,
        check=True,
    )
    began_just_now = float(young.stdout)
    assert 0.0 <= began_just_now < 60.0
    age = process_age()
    assert age is not None and age >= began_just_now  # this one began before it
    assert process_age(tmp_path / "no-such-stat") is None
    garbled = tmp_path / "stat"
    garbled.write_text("123 (python) R")
    assert process_age(garbled) is None


def test_what_ran_beside_the_phases_is_said_after_them() -> None:
    clock = StartupClock()
    clock.mark("imports")
    clock.beside["model"] = 4.25
    assert re.fullmatch(
        r"started in [0-9.]+ s: imports [0-9.]+; beside them: model 4\.2", clock.summary()
    )


def test_the_router_loads_for_the_board_and_says_how_long_it_took(tmp_path: Path) -> None:
    loading = RouterLoading(Settings(data_dir=tmp_path, board="sim"))
    router = loading.result()
    assert router.provider == "CPUExecutionProvider"
    assert loading.seconds > 0.0


def test_a_failed_load_fails_whoever_waits_for_it(tmp_path: Path) -> None:
    """A bad board (or model) still fails the start, at the same place as before."""
    loading = RouterLoading(Settings(data_dir=tmp_path, board=str(tmp_path / "missing.toml")))
    with pytest.raises(BadBoardProfile):
        loading.result()

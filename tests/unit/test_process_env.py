"""What importing the appliance sets for the libraries it loads, whatever the caller's
environment: telemetry off (even against an inherited "0"), numpy's BLAS on one thread."""

from __future__ import annotations

import json
import subprocess
import sys

SHOW = (
    "import json, os, appliance; print(json.dumps({k: os.environ.get(k) for k in "
    "['ORT_DISABLE_TELEMETRY', 'HF_HUB_OFFLINE', 'OPENBLAS_NUM_THREADS']}))"
)


def env_after_import(**env: str) -> dict[str, str | None]:
    run = subprocess.run(
        [sys.executable, "-c", SHOW],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str | None] = json.loads(run.stdout)
    return result


def test_importing_the_appliance_switches_telemetry_off_and_blas_to_one_thread() -> None:
    assert env_after_import() == {
        "ORT_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def test_an_inherited_setting_cannot_turn_telemetry_back_on_but_may_size_blas() -> None:
    seen = env_after_import(ORT_DISABLE_TELEMETRY="0", OPENBLAS_NUM_THREADS="2")
    assert seen["ORT_DISABLE_TELEMETRY"] == "1" and seen["OPENBLAS_NUM_THREADS"] == "2"


def test_onnxruntime_imported_first_is_refused_by_the_router() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import onnxruntime\nfrom appliance.router.encoder import Encoder\nEncoder()",
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0 and "TelemetryNotOff" in run.stderr

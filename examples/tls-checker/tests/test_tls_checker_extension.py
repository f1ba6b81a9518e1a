"""End to end as an admin would: build the wheel, install it with ``qey extension install``
into a fresh data directory, and see ``qey agents`` list it and ``qey route`` pick it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1]
QEY = Path(sys.executable).with_name("qey")
# offline, with the environment's own setuptools: what a build on the device's host does
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index")
PIP_WHEEL += ("--no-build-isolation",)


def qey(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QEY_DATA_DIR": str(data_dir), "QEY_SCOPE": "127.0.0.1"}
    return subprocess.run(
        [str(QEY), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built as a wheel, from a copy (a build writes beside the sources)."""
    work = tmp_path_factory.mktemp("build")
    source = shutil.copytree(EXAMPLE, work / "src", ignore=shutil.ignore_patterns("tests"))
    out = work / "dist"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("qey_tls_checker-*.whl")
    return built


def test_an_installed_extension_is_listed_and_routed(wheel: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    installed = qey(data, "extension", "install", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert "qey-tls-checker 0.1.0" in installed.stdout
    assert (data / "extensions" / "site" / "qey_tls_checker" / "agent.py").is_file()

    listed = qey(data, "extension", "list")
    assert listed.stdout.strip() == "qey-tls-checker 0.1.0: tls_checker"

    agents = qey(data, "agents")
    assert agents.returncode == 0, agents.stderr
    assert "tls_checker: Checks the TLS certificate" in agents.stdout
    assert "tls.certificate_check_requested" in agents.stdout
    assert "extension: qey-tls-checker 0.1.0" in agents.stdout
    assert "qey extension" not in agents.stderr  # nothing failed to load

    routed = qey(data, "route", "when does the certificate of 127.0.0.1:8443 expire")
    assert routed.returncode == 0, routed.stderr
    assert json.loads(routed.stdout)["agent_type"] == "tls_checker"

    removed = qey(data, "extension", "remove", "qey-tls-checker")
    assert removed.returncode == 0, removed.stderr
    assert not (data / "extensions" / "site" / "qey_tls_checker").exists()
    assert "tls_checker" not in qey(data, "agents").stdout

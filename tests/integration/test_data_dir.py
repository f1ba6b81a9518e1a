"""The data directory as another process or another local user meets it: one appliance at a
time, and nothing in it for anyone but its owner. Real ``qey`` processes, loopback only."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from appliance.app import in_process
from appliance.settings import Settings
from tests.integration.processes import running_appliance

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "QEY_DATA_DIR": str(settings.data_dir)}


def _write_config(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "config.toml").write_text(
        f'scope = {json.dumps(settings.scope)}\nports = []\nrules_file = "{settings.rules_file}"\n'
    )


def qey(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_second_appliance_on_the_same_data_dir_is_refused_and_the_first_stays_reachable(
    settings: Settings, open_ports: list[int]
) -> None:
    _write_config(settings)
    sock = settings.control_socket
    with running_appliance(settings) as first:
        bound = sock.stat()
        second = qey(settings, "run", timeout=30)  # today: refused at once; once: ran on
        assert second.returncode == 1 and "qey ready" not in second.stdout
        assert f"{settings.data_dir} is in use by another qey (pid {first.pid})" in second.stderr
        assert (sock.stat().st_dev, sock.stat().st_ino) == (bound.st_dev, bound.st_ino)

        command = f"analyze network security posture of 127.0.0.1 ports {open_ports[0]}"
        submitted = qey(settings, "submit", "--json", command)
        assert json.loads(submitted.stdout)["status"] == "submitted"  # the first one took it

        sock.unlink()  # the first is alive but cannot be reached: no job may run elsewhere
        lost = f"analyze network security posture of 127.0.0.1 ports {open_ports[1]}"
        refused = qey(settings, "submit", "--wait", lost)
        assert refused.returncode == 1, refused.stdout
        assert f"pid {first.pid}" in refused.stderr and "does not answer" in refused.stderr
        sock.write_text("someone else's file")  # at the socket's path when the first stops
    assert sock.read_text() == "someone else's file"  # it removes only the socket it bound
    jobs = qey(settings, "jobs").stdout
    assert command in jobs and lost not in jobs


def test_the_second_start_after_the_first_stopped_is_ready(settings: Settings) -> None:
    """The lock dies with its holder: no stale lock file to clean up by hand."""
    _write_config(settings)
    with running_appliance(settings):
        pass
    with running_appliance(settings) as again:
        assert settings.control_socket.exists() and again.poll() is None
    assert not settings.control_socket.exists()


async def test_an_existing_data_dir_open_to_others_is_made_the_owners_alone(
    settings: Settings,
) -> None:
    """A data directory made 0755 (by hand, or an older version) and a 0644 database were
    left so: another local user read every job and finding."""
    settings.data_dir.mkdir(mode=0o755)
    settings.data_dir.chmod(0o755)  # whatever the umask
    sqlite3.connect(settings.db_path).close()
    settings.db_path.chmod(0o644)
    async with in_process(settings):
        modes = {
            path.name: oct(path.stat().st_mode & 0o777)
            for path in [settings.data_dir, *settings.data_dir.glob("qey.*")]
        }
    assert modes == {
        "data": "0o700",
        "qey.db": "0o600",
        "qey.db-wal": "0o600",
        "qey.db-shm": "0o600",
        "qey.lock": "0o600",
    }

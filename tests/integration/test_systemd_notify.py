"""``qey run`` under systemd's notify protocol, as the image's unit runs it: READY=1 once it
is up, STOPPING=1 as a stop begins (then its watchdog's silence is a stop, not a hang)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from appliance.settings import Settings
from tests.integration.processes import running_appliance

pytestmark = pytest.mark.integration


def test_systemd_hears_ready_then_stopping(settings: Settings, tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(30)
        with running_appliance(settings, env={"NOTIFY_SOCKET": path}):
            ready = notify.recv(4096).decode()
            assert ready.startswith("READY=1\nSTATUS=qey ready ")
        said = []  # after SIGTERM and a clean exit: what it said on the way down
        notify.settimeout(0.5)
        while True:
            try:
                said.append(notify.recv(4096).decode())
            except TimeoutError:
                break
    assert "STOPPING=1" in said, said

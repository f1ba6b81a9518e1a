from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import Settings


@pytest.fixture
def open_ports() -> Iterator[list[int]]:
    """Three ports this test listens on, on 127.0.0.1 only: the only things it scans."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    yield sorted(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()


@pytest.fixture
def settings(tmp_path: Path, open_ports: list[int]) -> Settings:
    """Loopback scope; the first open port is rated high, so it reaches an executor."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[default]\nservice = "unknown"\nseverity = "low"\ntitle = "Unexpected open port"\n'
        'advice = "Close it."\n\n[[rule]]\n'
        f'ports = [{open_ports[0]}]\nservice = "test-db"\nseverity = "high"\n'
        'title = "Database port is reachable"\nadvice = "Bind it to localhost."\n'
    )
    return Settings(
        data_dir=tmp_path / "data",
        scope=["127.0.0.0/29"],
        ports=[],
        rules_file=rules,
        probe_timeout_s=1.0,
    )

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import pytest

from appliance.agents.portscan import probe, scan
from appliance.errors import ResourceError
from appliance.startup import allow_open_files

pytestmark = pytest.mark.unit


@pytest.fixture
def listening() -> Iterator[list[int]]:
    """Two ports this test listens on, on loopback only."""
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_a_connect_scan_finds_exactly_the_open_ports(listening: list[int]) -> None:
    closed = _closed_port()
    seen: list[tuple[int, int]] = []
    found = await scan(
        ["127.0.0.1"],
        [*listening, closed],
        concurrency=2,
        timeout=1.0,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert found == {"127.0.0.1": sorted(listening)}
    assert seen[-1] == (3, 3)


async def test_nothing_open_gives_an_empty_result() -> None:
    assert await scan(["127.0.0.1"], [_closed_port()], concurrency=4, timeout=0.5) == {}


async def test_a_machine_out_of_sockets_is_not_a_closed_port() -> None:
    """EMFILE says nothing about the port: the scan fails (a resource error the supervisor
    knows) instead of reporting it closed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)  # a new descriptor takes the lowest free number
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        with pytest.raises(ResourceError, match=r"probing 127\.0\.0\.1:9"):
            await probe("127.0.0.1", 9, 1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_appliance_may_hold_thousands_of_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        allowed = allow_open_files(4096)
        assert allowed == min(4096, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

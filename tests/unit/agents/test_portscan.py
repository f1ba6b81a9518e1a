from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from appliance.agents.portscan import scan

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

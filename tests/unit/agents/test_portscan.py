from __future__ import annotations

import asyncio
import os
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from appliance.agents.portscan import ProgressGate, probe, probe_window, scan
from appliance.errors import ResourceError
from appliance.startup import allow_open_files
from tests.support import until

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


@pytest.fixture
def silent() -> Iterator[list[int]]:
    """Three loopback ports that take no connection and refuse none, as behind a firewall
    that drops: each listener's queue is full (one connection never accepted), and Linux drops
    the SYNs a full queue cannot take."""
    socks = []
    for _ in range(3):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler = socket.create_connection(listener.getsockname(), timeout=1.0)
        socks += [listener, filler]
    yield [s.getsockname()[1] for s in socks[::2]]
    for s in socks:
        s.close()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _lowest_free_descriptor() -> int:
    lowest_free = os.dup(0)  # a new descriptor takes the lowest free number
    os.close(lowest_free)
    return lowest_free


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


async def test_open_ports_right_after_closed_ones_are_found(listening: list[int]) -> None:
    """A socket refused by its own connect carries the next probe: it must connect as new."""
    closed = [_closed_port() for _ in range(3)]
    ports = [closed[0], closed[1], listening[0], closed[2], listening[1]]
    found = await scan(["127.0.0.1"], ports, concurrency=8, timeout=1.0)
    assert found == {"127.0.0.1": sorted(listening)}


async def test_a_silent_port_waits_what_the_answers_say_not_the_ceiling(
    listening: list[int], silent: list[int]
) -> None:
    """Loopback answers in microseconds: a silent port costs the 0.1 s floor and a second
    try at twice that, not two tries of the 5 s the settings allow."""
    started = time.monotonic()
    found = await scan(
        ["127.0.0.1"], [*listening, _closed_port(), *silent], concurrency=16, timeout=5.0
    )
    assert found == {"127.0.0.1": sorted(listening)}
    assert time.monotonic() - started < 2.5


async def test_an_answer_that_comes_late_but_within_the_wait_is_found() -> None:
    """A listener too busy for the SYN (its queue full) until its owner accepts: the SYN sent
    again a second later gets in, before the probe's 2 s wait (no answers to learn from
    yet: half of the 4 s ceiling) is over."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=1.0)
    port = listener.getsockname()[1]
    before = _open_descriptors()
    try:
        scanning = asyncio.create_task(scan(["127.0.0.1"], [port], concurrency=1, timeout=4.0))
        await until(lambda: _open_descriptors() >= before + 2)  # the epoll set and the probe
        listener.accept()[0].close()  # room in the queue for the SYN's second send
        assert await scanning == {"127.0.0.1": [port]}
    finally:
        filler.close()
        listener.close()


async def test_progress_is_coalesced_not_one_report_per_probe() -> None:
    seen: list[tuple[int, int]] = []
    total = 3000
    ports = list(range(40000, 40000 + total))  # closed or open: only counted here
    started = time.monotonic()
    await scan(
        ["127.0.0.1"],
        ports,
        concurrency=64,
        timeout=1.0,
        progress=lambda done, of: seen.append((done, of)),
    )
    elapsed = time.monotonic() - started
    assert seen[-1] == (total, total)
    assert len(seen) <= 1 + elapsed / 0.25 + 1  # four a second at most, and the end
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})


def test_the_progress_gate_passes_four_reports_a_second_and_always_the_end() -> None:
    now = 0.0
    seen: list[tuple[int, int]] = []
    gate = ProgressGate(
        lambda done, total: seen.append((done, total)), 100, every_s=0.25, monotonic=lambda: now
    )
    for done in range(1, 100):
        now += 1 / 64  # a probe decided every 16 ms: 16 of them per quarter second
        gate(done)
    gate(100)
    gate(100)  # the end, said once
    assert seen == [(16, 100), (32, 100), (48, 100), (64, 100), (80, 100), (96, 100), (100, 100)]


async def test_a_machine_out_of_sockets_is_not_a_closed_port() -> None:
    """EMFILE says nothing about the port: the probe fails (a resource error the supervisor
    knows) instead of reporting it closed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor(), hard))
    try:
        with pytest.raises(ResourceError, match=r"probing 127\.0\.0\.1:9"):
            await probe("127.0.0.1", 9, 1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_scan_that_cannot_open_one_socket_fails_as_short_of_resources() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor() + 1, hard))  # epoll's
    try:
        with pytest.raises(ResourceError, match=r"probing 127\.0\.0\.1:9"):
            await scan(["127.0.0.1"], [9, 10], concurrency=8, timeout=1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_scan_short_of_descriptors_sends_fewer_at_once_and_finishes(
    listening: list[int], silent: list[int]
) -> None:
    """Room for the epoll set and two sockets, a window of 64: the sends that fail wait for
    a probe in flight to end, and every port is still decided."""
    ports = [*listening, _closed_port(), *silent]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor() + 3, hard))
    try:
        found = await scan(["127.0.0.1"], ports, concurrency=64, timeout=1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert found == {"127.0.0.1": sorted(listening)}


async def test_a_cancelled_scan_closes_its_sockets(silent: list[int]) -> None:
    before = _open_descriptors()
    task = asyncio.create_task(
        scan(["127.0.0.1"], silent, concurrency=8, timeout=30.0)  # no answers: waits 15 s
    )
    await until(lambda: _open_descriptors() >= before + len(silent) + 1)  # and the epoll set
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _open_descriptors() == before


def test_a_scan_keeps_a_quarter_of_the_descriptors_for_the_rest() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert probe_window(512) == 512
        assert probe_window(1024) == 768
        assert probe_window(512, sharers=4) == 192
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

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.runtime import FakeClock, Runtime
from appliance.supervisor import Supervisor, SystemdNotifier

pytestmark = pytest.mark.unit


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_ready_and_watchdog_reach_the_notify_socket(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_interval_s == 2.0
    assert notifier.ready("qey ready 0.1.0")
    assert sock.recv(256) == b"READY=1\nSTATUS=qey ready 0.1.0"
    assert notifier.ping()
    assert sock.recv(256) == b"WATCHDOG=1"


def test_an_abstract_socket_name_is_understood() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0qey-test-notify")
    sock.settimeout(2)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@qey-test-notify"}).notify("STATUS=x")
        assert sock.recv(64) == b"STATUS=x"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert not notifier.ready("x")


def test_a_watchdog_meant_for_another_process_is_not_ours() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval_s is None


async def test_the_supervisor_loop_pings_the_watchdog_while_it_runs(
    runtime: Runtime, notify_socket: tuple[socket.socket, str]
) -> None:
    import asyncio

    sock, path = notify_socket
    clock = FakeClock()
    runtime.clock = clock
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    supervisor = Supervisor(runtime, tick_s=0.25, notifier=notifier)
    async with asyncio.TaskGroup() as tg:
        loop_task = tg.create_task(supervisor.run())
        await clock.advance(0.6)
        sock.setblocking(False)
        assert sock.recv(64) == b"WATCHDOG=1"
        loop_task.cancel()  # a dead loop sends no more pings
    await clock.advance(2)
    with pytest.raises(BlockingIOError):
        sock.recv(64)

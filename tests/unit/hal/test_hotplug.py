"""Hot-plug: synthetic udev events through the same path the real monitor feeds."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from appliance.hal.hotplug import DeviceChanged, HotplugService, udev_settled
from tests.support import FakeMonitor

pytestmark = pytest.mark.unit

ADAPTER = {"SUBSYSTEM": "tty", "ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6015"}


async def test_events_reach_the_sink_in_order_and_the_display_is_told_of_its_adapter() -> None:
    monitor, got, pokes = FakeMonitor(), asyncio.Queue[DeviceChanged](), []
    service = HotplugService(
        monitor, got.put_nowait, display_match=ADAPTER, on_display=lambda: pokes.append(1)
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        monitor.add("add", "net", "eth1", INTERFACE="eth1")
        monitor.add("remove", "tty", "ttyUSB0", ID_VENDOR_ID="0403", ID_MODEL_ID="6015")
        monitor.add("add", "tty", "ttyUSB0", ID_VENDOR_ID="0403", ID_MODEL_ID="6015")
        monitor.add("add", "tty", "ttyACM0", ID_VENDOR_ID="2341", ID_MODEL_ID="0043")
        async with asyncio.timeout(2):
            seen = [await got.get() for _ in range(4)]
        task.cancel()
    assert [(e.action, e.sys_name) for e in seen] == [
        ("add", "eth1"),
        ("remove", "ttyUSB0"),
        ("add", "ttyUSB0"),
        ("add", "ttyACM0"),
    ]
    assert pokes == [1]  # only the display's own adapter being added


async def test_a_sink_that_refuses_does_not_end_hot_plug() -> None:
    monitor, delivered = FakeMonitor(), asyncio.Event()

    def sink(event: DeviceChanged) -> None:
        if event.sys_name == "bad":
            raise RuntimeError("inbox full")
        delivered.set()

    service = HotplugService(monitor, sink)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        monitor.add("add", "net", "bad")
        monitor.add("add", "net", "good")
        async with asyncio.timeout(2):
            await delivered.wait()
        task.cancel()
    assert service.seen == 2 and service.undelivered == 1


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (ADAPTER, True),
        ({"SUBSYSTEM": "tty"}, True),
        ({"SUBSYSTEM": "net"}, False),
        ({**ADAPTER, "ID_MODEL_ID": "6001"}, False),
        ({}, False),  # an empty match matches nothing, not everything
    ],
)
def test_a_match_checks_subsystem_and_properties(match: dict[str, str], expected: bool) -> None:
    event = DeviceChanged(
        action="add",
        subsystem="tty",
        sys_name="ttyUSB0",
        properties={"ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6015"},
    )
    assert event.matches(match) is expected


def fake_udevadm(bin_dir: Path, body: str) -> Path:
    """udev's own tool, at the hardware edge: a script on PATH that logs how it was run."""
    calls = bin_dir / "calls"
    tool = bin_dir / "udevadm"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{body}\n')
    tool.chmod(0o755)
    return calls


async def test_settling_waits_for_udevadm_settle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What UdevMonitor awaits before it listens: at boot the coldplug replays every device
    present as "add", and none of those may be taken for a device plugged in."""
    calls = fake_udevadm(tmp_path, "sleep 0.3")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    started = time.monotonic()
    await udev_settled(timeout_s=7)
    assert time.monotonic() - started >= 0.3
    assert calls.read_text() == "settle --timeout=7\n"


async def test_a_busy_or_missing_udev_does_not_stop_hot_plug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_udevadm(tmp_path, "exit 1")  # what udevadm settle says when its timeout passes
    monkeypatch.setenv("PATH", str(tmp_path))
    async with asyncio.timeout(5):
        await udev_settled(timeout_s=1)
    assert "udev still busy after 1 s" in caplog.text
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no udevadm at all (a container)
    async with asyncio.timeout(5):
        await udev_settled()

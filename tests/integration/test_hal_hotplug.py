"""The appliance acting on its own: a new network interface makes the appliance rescan its
scope on its own, as a job with no parent task that the coordination graph marks autonomous."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appliance.agents import register_builtin
from appliance.agents.netwatch import WATCH_COMMAND, start_watching
from appliance.events import TaskRef
from appliance.hal.hotplug import HotplugService
from appliance.runtime import FakeClock, Runtime, Store, running
from appliance.settings import Settings
from tests.support import FakeMonitor

pytestmark = pytest.mark.integration


@pytest.fixture
async def appliance(
    settings: Settings,
) -> AsyncIterator[tuple[Runtime, FakeMonitor, FakeClock]]:
    """The built-in agents on a loopback scope, fed by a fake udev monitor."""
    clock = FakeClock()
    settings.data_dir.mkdir(parents=True)
    store = Store(settings.db_path)
    runtime = Runtime(store, clock=clock)
    register_builtin(runtime, settings)
    monitor = FakeMonitor()
    try:
        async with running(runtime), asyncio.TaskGroup() as tg:
            hotplug = HotplugService(monitor, start_watching(runtime))
            task = tg.create_task(hotplug.run())
            yield runtime, monitor, clock
            task.cancel()
    finally:
        store.close()


async def test_a_new_interface_starts_an_autonomous_rescan_of_the_scope(
    appliance: tuple[Runtime, FakeMonitor, FakeClock],
) -> None:
    runtime, monitor, _clock = appliance
    with runtime.watch(kinds=["job.submitted"]) as jobs:
        monitor.add("add", "net", "eth1", INTERFACE="eth1", IFINDEX="3")
        async with asyncio.timeout(5):
            submitted = (await jobs.next()).event
    assert submitted.autonomous
    assert submitted.command.startswith("analyze network security posture of 127.0.0.0/29")
    assert "eth1 add" in submitted.command  # the record says why it scanned

    tree = await runtime.graph.tree(submitted.job_id)
    [root] = tree.roots
    assert tree.autonomous and root.autonomous and root.parent_task_id is None
    assert root.agent_type == "coordinator"
    # linked in the graph to the watcher's task, in its standing job, and the device event
    trigger = await runtime.graph.trigger(submitted.job_id)
    assert trigger is not None and trigger.task_id == root.task_id
    assert trigger.because == "device.changed net eth1 add"
    watcher = await runtime.graph.tree(trigger.by_job_id)
    assert watcher.command == WATCH_COMMAND
    assert [t.agent_type for t in watcher.tasks if t.task_id == trigger.by_task_id] == [
        "network_watcher"
    ]
    outcome = await asyncio.wait_for(runtime.wait_task(TaskRef(root.agent_type, root.task_id)), 10)
    assert outcome.status == "done", outcome.detail
    tree = await runtime.graph.tree(submitted.job_id)
    assert {t.agent_type for t in tree.tasks} >= {"coordinator", "data_collector"}


async def test_bursts_make_one_rescan_per_cooldown_and_other_devices_none(
    appliance: tuple[Runtime, FakeMonitor, FakeClock],
) -> None:
    runtime, monitor, clock = appliance
    with runtime.watch(kinds=["job.submitted"]) as jobs:
        monitor.add("add", "net", "eth1")
        monitor.add("change", "net", "eth1")  # within the cooldown: no second rescan
        monitor.add("add", "net", "lo")
        monitor.add("add", "net", "veth12ab")
        monitor.add("add", "block", "sda1", ID_FS_TYPE="vfat")
        monitor.add("remove", "net", "eth1")
        async with asyncio.timeout(5):
            first = (await jobs.next()).event
        await clock.advance(31.0)
        monitor.add("change", "net", "eth1")  # the link changed again, after the cooldown
        async with asyncio.timeout(5):
            second = (await jobs.next()).event
    assert "eth1 add" in first.command and "eth1 change" in second.command
    autonomous = [j for j in await runtime.graph.jobs(50) if j["autonomous"]]
    assert sorted(j["command"] for j in autonomous) == sorted(
        [first.command, second.command, WATCH_COMMAND]
    )

"""A large scan in slices over the collectors' pool: spread over its instances, grown by the
supervisor while they are busy, each slice checked against the scope. Loopback only: every
address of 127.0.0.0/8 answers at once, so the ports this test opens are the only open ones."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import msgspec
import pytest

from appliance.agents.collector import CHUNK_HOSTS
from appliance.agents.messages import ChunkScanRequested, ScanReport
from appliance.app import in_process
from appliance.errors import HandlerFailed
from appliance.events import TypeRef
from appliance.settings import Settings
from appliance.supervisor import Supervisor
from appliance.supervisor.supervisor import ScalingPolicy

pytestmark = pytest.mark.integration

COLLECTOR = "data_collector"


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    """One open port, inside the /22 the first test scans, away from its first slice."""
    with socket.socket() as s:
        s.bind(("127.9.2.7", 0))
        s.listen()
        yield "127.9.2.7", s.getsockname()[1]


@pytest.fixture
def wide(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, scope=["127.9.0.0/16", "127.10.0.0/16"])


async def test_a_large_target_is_scanned_in_slices_spread_over_the_pool(
    wide: Settings, listener: tuple[str, int]
) -> None:
    host, port = listener
    async with asyncio.timeout(60), in_process(wide) as appliance:
        runtime = appliance.runtime
        admin = runtime.open_job("test: three collectors")
        for _ in range(3):
            runtime.add_to_pool(COLLECTOR, admin)
        runtime.pin_pool(COLLECTOR, 3)  # as an admin would: no autoscaling in this test
        _job, root, _route = await appliance.submit(f"scan 127.9.0.0/22 port {port}")
        outcome = await runtime.wait_task(root)
    assert outcome.status == "done", outcome.detail
    report = outcome.result_as(ScanReport)
    assert report.hosts_probed == 1022  # 127.9.0.1 to 127.9.3.254
    assert [(h.host, h.open_ports) for h in report.open] == [(host, [port])]
    slices = sorted(report.chunks, key=lambda c: tuple(map(int, c.first.split("."))))
    assert [(c.first, c.last, c.hosts_probed) for c in slices] == [
        ("127.9.0.1", "127.9.1.0", CHUNK_HOSTS),
        ("127.9.1.1", "127.9.2.0", CHUNK_HOSTS),
        ("127.9.2.1", "127.9.3.0", CHUNK_HOSTS),
        ("127.9.3.1", "127.9.3.254", 254),
    ]
    workers = {c.worker for c in report.chunks}
    assert len(workers) == 3 and root.task_id not in workers  # the pool, not the job's own


async def test_the_supervisor_grows_the_pool_while_its_slices_keep_it_busy(
    wide: Settings,
) -> None:
    """One instance to start with; busy the whole time, so the pool grows, and the slices
    sent after that go to the new instances: no one instance does the whole /20."""
    async with asyncio.timeout(120), in_process(wide) as appliance:
        runtime = appliance.runtime
        supervisor = Supervisor(runtime, tick_s=0.02, scaling=ScalingPolicy(window=2, patience=1))
        async with asyncio.TaskGroup() as tg:
            ticking = tg.create_task(supervisor.run())
            _job, root, _route = await appliance.submit("scan 127.10.0.0/20 ports 1,2")
            outcome = await runtime.wait_task(root)
            grown = len(runtime.pool_loads(COLLECTOR))
            ticking.cancel()
    assert outcome.status == "done", outcome.detail
    report = outcome.result_as(ScanReport)
    assert report.hosts_probed == 4094 and report.open == []
    assert len(report.chunks) == 16
    assert grown >= 2
    assert len({c.worker for c in report.chunks}) >= 2


async def test_a_slice_is_checked_against_the_scope_whoever_sends_it(wide: Settings) -> None:
    async with asyncio.timeout(30), in_process(wide) as appliance:
        runtime = appliance.runtime
        job = runtime.open_job("test: slices from outside")
        for hosts, why in (
            (["127.9.0.1", "10.1.2.3"], "scope"),
            ([], "1 to 256 hosts"),
            ([f"127.9.{i // 256}.{i % 256}" for i in range(CHUNK_HOSTS + 1)], "1 to 256 hosts"),
        ):
            with pytest.raises(HandlerFailed, match=why):
                await runtime.request(
                    TypeRef(COLLECTOR), ChunkScanRequested(hosts=hosts, ports=[1]), job=job
                )

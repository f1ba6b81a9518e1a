"""A job page shows how a large scan was split over the collectors' pool: per instance, the
slices it took (from the scan's result in the graph)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.agents.messages import ChunkScanned, HostPorts, ScanReport
from appliance.events import Started
from appliance.runtime import Agent, Context, NoState, Runtime

pytestmark = pytest.mark.unit


class SlicedScan(Agent):
    """Stands for a collector at the graph's edge: ends its task with a sliced scan's report
    (what DataCollector.on_scan returns; tests/integration/test_pool_scan.py runs the real one)."""

    name = "sliced_scan"
    description = "reports a scan done in three slices by two pool instances"

    async def on_start(self, event: Started, ctx: Context[NoState]) -> ScanReport:
        def piece(first: str, last: str, worker: str) -> ChunkScanned:
            return ChunkScanned(
                first=first, last=last, hosts_probed=256, open=[], worker=worker, seconds=1.5
            )

        return ScanReport(
            target="127.9.0.0/22",
            hosts_probed=768,
            open=[HostPorts(host="127.9.2.7", open_ports=[22])],
            findings=[],
            chunks=[
                piece("127.9.0.1", "127.9.1.0", "t-one"),
                piece("127.9.1.1", "127.9.2.0", "t-two"),
                piece("127.9.2.1", "127.9.3.0", "t-one"),
            ],
        )


async def test_the_job_page_shows_the_slices_per_pool_instance(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    runtime.register(SlicedScan)
    job, root = runtime.submit("scan 127.9.0.0/22", "sliced_scan")
    assert (await runtime.wait_task(root)).status == "done"
    await runtime.commit()
    page = await (await client.get(f"/jobs/{job.job_id}")).text()
    assert "<h2>Scan slices</h2>" in page
    assert "127.9.0.0/22: 3 slices over 2 instances of the sliced_scan pool." in page
    rows = page.split('id="slices"', 1)[1].split("</table>", 1)[0]
    assert rows.index("t-one") < rows.index("t-two")  # the busiest instance first
    assert "<td>2</td><td>512</td><td>3.0</td>" in rows.replace("\n", "")


async def test_a_job_without_slices_shows_none(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    job, root = runtime.submit("hello there", "echo")
    assert (await runtime.wait_task(root)).status == "done"
    await runtime.commit()
    page = await (await client.get(f"/jobs/{job.job_id}")).text()
    assert "hello there" in page and "Scan slices" not in page

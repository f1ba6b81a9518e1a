"""The Fleet page and ``GET /api/v1/fleet``: that this device is alone, or its broker link
and every device it hears, lost ones marked."""

from __future__ import annotations

import html
from typing import Any

import msgspec
import pytest

from appliance import inventory
from appliance.events import TaskSpawned
from appliance.fleet.status import DeviceStatus, FleetInventory, FleetStatus, GraphStatus
from appliance.runtime import Runtime
from appliance.web.credentials import Credentials
from appliance.web.fleet import FLEET, FLEET_INVENTORY
from tests.web.conftest import PASSWORD, make_test_panel, sign_in

pytestmark = pytest.mark.unit


def device(name: str, state: str, scope: list[str], *, this: bool = False) -> DeviceStatus:
    return DeviceStatus(
        name=name,
        this=this,
        state=state,
        last_seen_s=0.4 if state == "up" else 31.5,
        version="0.1.0",
        health="ok",
        scope=scope,
        types=["data_collector"],
        load=2,
    )


IN_A_FLEET = FleetStatus(
    enabled=True,
    name="office",
    connected=True,
    server="192.0.2.5:4222",
    key="UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
    graph=GraphStatus(available=True, sent=40, received=12, waiting=3, dropped=0, shared_jobs=2),
    devices=[
        device("office", "up", ["192.168.1.0/24"], this=True),
        device("warehouse", "lost", ["10.2.0.0/16", "10.3.0.0/24"]),
    ],
    routed_elsewhere=["config_archiver"],
)


async def test_a_single_appliance_says_it_works_alone(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_test_panel(runtime, credentials))
    assert await sign_in(client, PASSWORD) == 303
    api = msgspec.json.decode(await (await client.get("/api/v1/fleet")).read(), type=FleetStatus)
    assert api == FleetStatus(enabled=False)
    page = await (await client.get("/fleet")).text()
    assert 'id="fleet-off"' in page and 'href="/fleet" class="active"' in page


async def test_the_fleet_page_lists_every_device_heard_with_its_scope(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials)
    app[FLEET] = lambda: IN_A_FLEET
    client = await aiohttp_client(app)
    assert await sign_in(client, PASSWORD) == 303
    api = msgspec.json.decode(await (await client.get("/api/v1/fleet")).read(), type=FleetStatus)
    assert api == IN_A_FLEET
    page = html.unescape(await (await client.get("/fleet")).text())
    assert "connected to 192.0.2.5:4222" in page
    assert f'<code id="fleet-key">{IN_A_FLEET.key}</code>' in page  # to enrol it by
    graph = page.split('<p id="fleet-graph">')[1].split("</p>")[0]
    assert "2 jobs spanning devices; 40 records sent, 12 received" in graph
    assert "3 waiting to be sent" in graph and "dropped" not in page
    assert "<td>data_collector</td>" in page  # each device's agent types
    routed = page.split('<p id="fleet-routed">')[1].split("</p>")[0]
    assert "only other devices run: config_archiver." in routed


async def test_records_the_fleet_lost_are_said_on_the_fleet_page(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials)
    lossy = msgspec.structs.replace(
        IN_A_FLEET, graph=GraphStatus(available=True, sent=5, dropped=7, shared_jobs=1)
    )
    app[FLEET] = lambda: lossy
    client = await aiohttp_client(app)
    assert await sign_in(client, PASSWORD) == 303
    page = html.unescape(await (await client.get("/fleet")).text())
    assert 'role="alert">7 records were dropped while the broker was away too long' in page
    assert "1 job spanning devices; 5 records sent, 0 received" in page
    rows = page.split('<table id="devices">')[1].split("</table>")[0].split("<tr>")[2:]
    assert "office <small>(this one)</small>" in rows[0] and 'badge up">up' in rows[0]
    assert 'badge lost">lost' in rows[1] and "31.5 s ago" in rows[1]
    assert "10.2.0.0/16, 10.3.0.0/24" in rows[1]


async def test_the_fleet_page_needs_a_sign_in(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_test_panel(runtime, credentials))
    assert (await client.get("/fleet", allow_redirects=False)).status in (302, 303)
    assert (await client.get("/api/v1/fleet")).status == 401


async def test_a_task_another_device_ran_is_marked_with_it_in_the_tree_and_the_table(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    job = runtime.open_job("scan two segments")
    for task_id, device_name in (("task-here", None), ("task-there", "warehouse")):
        runtime.journal.spawned(
            TaskSpawned(
                job_id=job.job_id,
                task_id=task_id,
                agent_type="data_collector",
                objective=f"objective of {task_id}",
                at=runtime.clock.now(),
                device=device_name,
            ),
            None,
        )
    await runtime.commit()
    client = await aiohttp_client(make_test_panel(runtime, credentials))
    assert await sign_in(client, PASSWORD) == 303
    svg = await (await client.get(f"/api/v1/jobs/{job.job_id}/tree.svg")).text()
    assert svg.count("@warehouse") == 1 and "(on warehouse)" in svg
    page = html.unescape(await (await client.get(f"/jobs/{job.job_id}")).text())
    rows = {r.split("</td>")[0]: r for r in page.split('<tr><td><a href="/tasks/')[1:]}
    assert 'class="device">on warehouse' in rows['task-there">task-there</a>']
    assert "device" not in rows['task-here">task-here</a>']
    tree = await (await client.get(f"/api/v1/jobs/{job.job_id}/tree")).json()
    assert "DataCollector (task-there) @warehouse" in tree["text"]


def scanned_here(runtime: Runtime) -> None:
    """This device's own scan found 127.0.0.2 with port 22 open."""
    inventory.record_scan(
        runtime.knowledge,
        job_id="job-here",
        at=runtime.clock.now(),
        probed={"127.0.0.2"},
        found={"127.0.0.2": [22]},
        findings=[],
    )


async def test_the_owners_pages_list_what_every_device_of_the_fleet_scanned(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    """The devices the warehouse's scans found are on this panel's home and devices pages,
    marked with it; one the office scanned more lately than the warehouse shows the office's
    scan; a device that did not answer in time is said."""
    scanned_here(runtime)  # 127.0.0.2, port 22
    theirs = inventory.Device(
        address="127.2.0.7",
        first_seen=1.0,
        last_seen=2.0,
        last_scanned=2.0,
        last_job="job-there",
        open_ports=[23],
        findings=[
            inventory.DeviceFinding(23, "telnet", "critical", "Telnet is open", "Turn it off.")
        ],
    )
    older = msgspec.structs.replace(theirs, address="127.0.0.2", open_ports=[80], last_scanned=0)

    async def ask() -> FleetInventory:
        return FleetInventory(devices={"warehouse": [theirs, older]}, unanswered=["cellar"])

    app = make_test_panel(runtime, credentials)
    app[FLEET_INVENTORY] = ask
    client = await aiohttp_client(app)
    assert await sign_in(client, PASSWORD) == 303
    rows = await (await client.get("/api/v1/devices")).json()
    assert [(r["address"], r["open_ports"], r["seen_by"]) for r in rows] == [
        ("127.0.0.2", [22], ""),
        ("127.2.0.7", [23], "warehouse"),
    ]
    page = html.unescape(await (await client.get("/devices")).text())
    assert "<th>Scanned by</th>" in page and ">warehouse</td>" in page
    assert ">this appliance</td>" in page
    assert "The appliance cellar did not answer in time" in page
    home = await (await client.get("/api/v1/home")).json()
    assert [a["address"] for a in home["attention"]] == ["127.2.0.7"]  # its finding, here too
    assert home["unanswered"] == ["cellar"]
    device = await (await client.get("/api/v1/devices/127.2.0.7")).json()
    assert device["seen_by"] == "warehouse" and device["device"]["open_ports"] == [23]
    mine = await (await client.get("/api/v1/devices/127.0.0.2")).json()
    assert mine["seen_by"] == "" and mine["device"]["open_ports"] == [22]  # the newer scan
    page = html.unescape(await (await client.get("/devices/127.2.0.7")).text())
    assert "the appliance warehouse" in page and 'href="/jobs/job-there"' not in page


async def test_a_single_appliance_shows_no_scanned_by_column(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    scanned_here(runtime)  # 127.0.0.2, port 22
    client = await aiohttp_client(make_test_panel(runtime, credentials))
    assert await sign_in(client, PASSWORD) == 303
    page = await (await client.get("/devices")).text()
    assert "127.0.0.2" in page and "Scanned by" not in page

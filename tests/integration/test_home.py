"""The owner's home page and device pages after real scans of ports this test opened: the
findings with what to do, the devices, each job's honest outcome (a refused one refused)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.app import in_process
from appliance.settings import Settings
from appliance.web.credentials import Credentials
from appliance.web.keys import NAMES
from tests.web.conftest import PASSWORD, make_test_panel, sign_in

pytestmark = pytest.mark.integration


async def test_home_shows_findings_devices_and_how_each_job_ended(
    settings: Settings, open_ports: list[int], aiohttp_client: Any
) -> None:
    high = open_ports[0]
    ports = ",".join(map(str, open_ports))
    async with asyncio.timeout(60), in_process(settings) as appliance:
        runtime = appliance.runtime
        scan, root, _ = await appliance.submit(
            f"analyze network security posture of 127.0.0.1, 127.0.0.2 ports {ports}"
        )
        assert (await runtime.wait_task(root)).status == "done"
        refused, root, _ = await appliance.submit(
            "analyze network security posture of 127.0.0.1, 10.1.2.3"
        )
        await runtime.wait_task(root)
        await runtime.commit()

        creds = Credentials(settings.data_dir)
        creds.set_password(PASSWORD)
        app = make_test_panel(runtime, creds)
        app[NAMES] = {"the test box": "127.0.0.1"}
        client: TestClient[Any, Any] = await aiohttp_client(app)
        await sign_in(client, PASSWORD)
        home = await (await client.get("/api/v1/home")).json()
        page = await (await client.get("/")).text()
        device = await (await client.get("/api/v1/devices/127.0.0.1")).json()
        device_page = await (await client.get("/devices/127.0.0.1")).text()
        unknown = await client.get("/api/v1/devices/127.0.0.7")
        jobs_page = await (await client.get("/jobs")).text()
        notices = await (await client.get("/api/v1/notices")).json()
        notices_page = await (await client.get("/notices")).text()

    # the findings, worst first, with what to do; only 127.0.0.1 answered
    assert home["attention"][0]["severity"] == "high"
    assert home["attention"][0]["port"] == high
    assert home["attention"][0]["advice"] == "Bind it to localhost."
    assert home["counts"] == {"high": 1, "low": 2}
    assert [d["address"] for d in home["devices"]] == ["127.0.0.1"]
    assert home["devices"][0]["names"] == ["the test box"]
    assert "Database port is reachable" in page and "Bind it to localhost." in page
    assert '<a href="/devices/127.0.0.1">127.0.0.1</a> <small>(the test box)</small>' in page

    # each job's outcome: the scan done, the out-of-scope one refused and why
    by_job = {j["job_id"]: j["outcome"] for j in home["jobs"]}
    assert set(by_job) == {scan.job_id, refused.job_id}  # not the watcher's standing job
    assert by_job[scan.job_id]["verdict"] == "done" and by_job[scan.job_id]["worst"] == "high"
    assert by_job[refused.job_id]["verdict"] == "refused"
    assert "outside the configured scope" in by_job[refused.job_id]["reason"]
    assert 'data-status="refused"' in jobs_page and 'data-status="done"' in jobs_page

    # the device's page: its ports, findings and the scan that saw it
    assert sorted(device["device"]["open_ports"]) == open_ports
    assert [s["job_id"] for s in device["device"]["history"]] == [scan.job_id]
    assert "Bind it to localhost." in device_page and scan.job_id in device_page
    assert unknown.status == 404 and "no scan has seen" in (await unknown.json())["message"]

    # the bell rings for the serious finding (high), not for the low ones
    assert [(n["kind"], n["href"]) for n in notices] == [("finding", "/devices/127.0.0.1")]
    assert notices[0]["text"] == f"High: Database port is reachable on 127.0.0.1 ({high}/test-db)"
    assert notices[0]["text"].replace("High: ", "") in notices_page.replace("\n", " ")

"""The inventory: what scans saw, per address, kept across restarts; a device that stops
answering keeps its history and its last answer, its ports and findings emptied."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import inventory
from appliance.agents.messages import Finding
from appliance.runtime import FakeClock, KnowledgeStore, Store

pytestmark = pytest.mark.unit

TELNET = Finding("127.0.0.2", 23, "telnet", "critical", "Telnet is open", "Turn it off.")
HTTP = Finding("127.0.0.2", 80, "http", "medium", "Plain HTTP", "Use HTTPS.")


async def test_scans_build_devices_and_a_quiet_one_keeps_its_last_answer(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "i.db")
    knowledge = KnowledgeStore(store, clock)
    t0 = clock.now()
    inventory.record_scan(
        knowledge,
        job_id="job-1",
        at=t0,
        probed={"127.0.0.1", "127.0.0.2", "127.0.0.3"},
        found={"127.0.0.2": [80, 23], "127.0.0.10": [22]},
        findings=[HTTP, TELNET],
    )
    found = inventory.devices(knowledge)
    assert [d.address for d in found] == ["127.0.0.2", "127.0.0.10"]  # numeric order
    two = found[0]
    assert two.open_ports == [23, 80] and two.worst == "critical"
    assert [f.port for f in two.findings] == [23, 80]  # worst first
    assert two.first_seen == two.last_seen == t0 and two.last_job == "job-1"
    assert {f.since for f in two.findings} == {t0}
    assert inventory.serious(knowledge) == "1 critical"  # the display's status line says so

    await clock.advance(60)  # a rescan finds telnet still open and HTTP gone: telnet keeps its
    inventory.record_scan(  # first sighting, so a bell rings once for it, not every scan
        knowledge,
        job_id="job-1b",
        at=clock.now(),
        probed={"127.0.0.2"},
        found={"127.0.0.2": [23]},
        findings=[TELNET],
    )
    again = inventory.device(knowledge, "127.0.0.2")
    assert again is not None and [(f.port, f.since) for f in again.findings] == [(23, t0)]

    await clock.advance(3600)
    inventory.record_scan(
        knowledge,
        job_id="job-2",
        at=clock.now(),
        probed={"127.0.0.2"},  # covered 127.0.0.2, not 127.0.0.10
        found={},
        findings=[],
    )
    quiet = inventory.device(knowledge, "127.0.0.2")
    assert quiet is not None and quiet.open_ports == [] and quiet.findings == []
    assert quiet.last_seen == t0 + 60 and quiet.last_scanned == t0 + 3660
    assert [(s.job_id, s.findings, s.worst) for s in quiet.history] == [
        ("job-1", 2, "critical"),
        ("job-1b", 1, "critical"),
        ("job-2", 0, None),
    ]
    assert inventory.serious(knowledge) == ""  # nothing open on the quiet device now
    untouched = inventory.device(knowledge, "127.0.0.10")
    assert untouched is not None and untouched.last_job == "job-1"

    await store.flush()
    store.close()
    again = Store(tmp_path / "i.db")
    try:  # on disk: a restart keeps the inventory
        assert inventory.devices(KnowledgeStore(again, clock)) == [quiet, untouched]
    finally:
        again.close()


async def test_history_is_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "i.db")
    knowledge = KnowledgeStore(store, clock)
    for n in range(inventory.HISTORY + 5):
        inventory.record_scan(
            knowledge,
            job_id=f"job-{n}",
            at=clock.now() + n,
            probed={"127.0.0.5"},
            found={"127.0.0.5": [22]},
            findings=[],
        )
    one = inventory.device(knowledge, "127.0.0.5")
    assert one is not None and len(one.history) == inventory.HISTORY
    assert (
        one.history[-1].job_id == f"job-{inventory.HISTORY + 4}" and one.first_seen == clock.now()
    )
    store.close()


def _device(address: str, last_scanned: float, ports: list[int]) -> inventory.Device:
    return inventory.Device(
        address=address,
        first_seen=1.0,
        last_seen=last_scanned,
        last_scanned=last_scanned,
        last_job="job",
        open_ports=ports,
        findings=[],
    )


def test_a_fleets_inventories_merge_into_one_row_per_address_the_latest_scan_winning() -> None:
    here = [_device("127.0.0.2", 10.0, [22]), _device("127.0.0.9", 10.0, [80])]
    elsewhere = {
        "warehouse": [_device("127.0.0.9", 20.0, [443]), _device("127.3.0.1", 5.0, [23])],
        "office": [_device("127.0.0.2", 5.0, [8080]), _device("127.0.0.10", 1.0, [25])],
    }
    merged = inventory.merged(here, elsewhere)
    assert [(d.address, d.open_ports, by) for d, by in merged] == [
        ("127.0.0.2", [22], ""),  # this device's scan is the newer one
        ("127.0.0.9", [443], "warehouse"),  # the warehouse scanned it since
        ("127.0.0.10", [25], "office"),
        ("127.3.0.1", [23], "warehouse"),
    ]

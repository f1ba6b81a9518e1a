"""A /16 scan in slices over the collectors' pool: wall time and pool size over time, against
one collector doing every slice (the baseline, measured in the same run).

It runs itself again inside a network namespace of its own (root, or a user namespace), where
127.20.0.0/16 is the scope: every address there answers at once on loopback, except
127.20.0.0/19, whose packets nftables drops, so those 8,190 hosts are silent and each probe
waits out its timeout, as on a real network. Two ports per host, three of them open.

1. One collector: the pool pinned at one instance (what an admin's pin does).
2. The pool as the supervisor sizes it, with its default policy (a 0.5 s tick, 5 s windows,
   two windows in a row above 80% busy to grow).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import figure, header, ratio

from appliance.agents.messages import ScanReport
from appliance.app import in_process
from appliance.settings import Settings
from appliance.supervisor import Supervisor
from tests.support import new_network_namespace

TARGET = "127.20.0.0/16"
SILENT = "127.20.0.0/19"
OPEN = ["127.20.77.5", "127.20.200.9", "127.20.250.1"]
PORTS = (8022, 8443)
PROBE_TIMEOUT_S = 0.3
COLLECTOR = "data_collector"


def enter_namespace() -> int:
    """This file again, as root of a new network namespace."""
    return subprocess.run(
        [*new_network_namespace(), sys.executable, __file__, "--inside"]
    ).returncode


def silence(network: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rules = (
        "table inet bench {\n  chain out {\n    type filter hook output priority 0;\n"
        f"    ip daddr {network} tcp dport {{ {', '.join(map(str, PORTS))} }} drop\n  }}\n}}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)


async def scan_once(settings: Settings, *, pinned: bool) -> tuple[float, list[int], ScanReport]:
    """Wall seconds, pool size each second, and the report."""
    async with in_process(settings) as appliance:
        runtime = appliance.runtime
        sizes: list[int] = []
        async with asyncio.TaskGroup() as tg:
            if pinned:
                runtime.add_to_pool(COLLECTOR, runtime.open_job("bench: one collector"))
                runtime.pin_pool(COLLECTOR, 1)
            else:
                supervising = tg.create_task(Supervisor(runtime).run())
            started = time.perf_counter()
            _job, root, _route = await appliance.submit(
                f"scan {TARGET} ports {','.join(map(str, PORTS))}"
            )
            waiting = tg.create_task(runtime.wait_task(root))
            while not waiting.done():
                sizes.append(len(runtime.pool_loads(COLLECTOR)))
                await asyncio.wait([waiting], timeout=1.0)
            wall = time.perf_counter() - started
            if not pinned:
                supervising.cancel()
        outcome = waiting.result()
    assert outcome.status == "done", outcome.detail
    return wall, sizes, outcome.result_as(ScanReport)


async def inside() -> None:
    logging.basicConfig(level=logging.WARNING)
    silence(SILENT)
    listeners = []
    for host in OPEN:
        s = socket.socket()
        s.bind((host, PORTS[0]))
        s.listen()
        listeners.append(s)
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(
            data_dir=Path(tmp) / "one",
            scope=[TARGET],
            ports=[],
            probe_timeout_s=PROBE_TIMEOUT_S,
        )
        header(f"{TARGET} ({SILENT} silent), ports {PORTS}, probe timeout {PROBE_TIMEOUT_S} s")
        one, one_sizes, one_report = await scan_once(base, pinned=True)
        pooled, sizes, report = await scan_once(
            msgspec.structs.replace(base, data_dir=Path(tmp) / "pool"), pinned=False
        )
    for s in listeners:
        s.close()
    for name, rep in (("one collector", one_report), ("pool", report)):
        found = sorted(h.host for h in rep.open)
        assert found == sorted(OPEN), (name, found)
    per_worker: dict[str, int] = {}
    for chunk in report.chunks:
        per_worker[chunk.worker] = per_worker.get(chunk.worker, 0) + 1
    figure("hosts probed", report.hosts_probed, "hosts", note=f"{len(report.chunks)} slices")
    figure("one collector", one, "s", note=f"pool {max(one_sizes)} throughout")
    figure("supervised pool", pooled, "s", note=f"pool grew to {max(sizes)}")
    ratio("pool against one collector (wall time)", pooled, one, higher_is_better=False)
    print("    pool size each second: " + " ".join(map(str, sizes)))
    print("    slices per instance: " + ", ".join(f"{n}" for n in sorted(per_worker.values())))


if __name__ == "__main__":
    if "--inside" in sys.argv:
        asyncio.run(inside())
    else:
        sys.exit(enter_namespace())

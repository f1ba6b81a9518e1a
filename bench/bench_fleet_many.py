"""Fleet: many lightweight devices on one broker, what the broker and the graph stream take.

Each device is a process of its own: a runtime with one agent type and its fleet link
(heartbeats every second, its type served as a queue group, the graph stream followed). The
asking device is this process. Measured for a fleet of 1 device (the baseline) and of
``DEVICES``: the time until every device is heard, request/reply to the type all of them
serve (p50/p99, then calls/s with 128 in flight), and the graph stream: each device shares
``RECORDS`` records at once, and the time until this process's own consumer has them all;
the broker's resident memory and CPU time at the end of each run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from _common import JOB, figure, header, percentile

from appliance.events import Event
from appliance.fleet.config import FleetSettings
from appliance.fleet.keys import device_seed, public_key
from appliance.fleet.link import FleetLink
from appliance.fleet.server import server_config
from appliance.runtime import Agent, Context, Runtime, Store, running

DEVICES = 50
RECORDS = 200
CALLS = 2_000
WINDOW = 128
NATS_SERVER = "/usr/sbin/nats-server"


class Ask(Event, frozen=True, tag="benchfleet.ask"):
    n: int


class Answerer(Agent):
    name = "answerer"
    description = "Answers at once: the fleet's cost alone."

    async def on_ask(self, event: Ask, ctx: Context[msgspec.Struct]) -> int:
        return event.n


def link(runtime: Runtime, url: str, name: str, seed: bytes) -> FleetLink:
    return FleetLink(
        FleetSettings(servers=[url], name=name, heartbeat_s=1.0, lost_after_s=10.0),
        seed,
        runtime,
        version="bench",
        scope=lambda: [],
        health=lambda: "ok",
        load=lambda: 0,
    )


async def device(url: str, data_dir: Path) -> None:
    """A device (child process): serve the type; on a line on stdin, share RECORDS graph
    records."""
    store = Store(data_dir / "qey.db")
    runtime = Runtime(store)
    runtime.register(Answerer)
    async with running(runtime):
        fleet = link(runtime, url, data_dir.name, device_seed(data_dir))
        await fleet.start()
        await fleet.wait_connected(30)
        print("joined", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        job = runtime.open_job(f"records of {data_dir.name}")
        fleet.graph.share_job(job.job_id)
        for i in range(RECORDS):
            runtime.journal.status(job.job_id, f"t-{data_dir.name}-{i}", "answerer", "done", "")
        await asyncio.Event().wait()


def broker_usage(pid: int) -> tuple[float, float]:
    """The broker's resident MiB and CPU seconds so far."""
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss_kib / 1024, cpu


async def ask(url: str, root: Path, devices: int, go: Callable[[], None]) -> dict[str, float]:
    store = Store(root / "asker.db")
    runtime = Runtime(store)
    runtime.register(Answerer)  # its type, to decode the answers; never served from here
    async with running(runtime):
        fleet = link(runtime, url, "asker", device_seed(root / "asker"))
        await fleet.start()
        await fleet.wait_connected(30)
        start = time.perf_counter()
        for _ in range(6000):  # until every device is heard (5 minutes at most)
            if len([d for d in fleet.status().devices if d.name != "asker"]) >= devices:
                break
            await asyncio.sleep(0.05)
        heard_s = time.perf_counter() - start
        for i in range(200):  # warm-up
            await fleet.request("answerer", Ask(n=i), job=JOB)
        lat = []
        for i in range(CALLS):
            t = time.perf_counter_ns()
            await fleet.request("answerer", Ask(n=i), job=JOB)
            lat.append((time.perf_counter_ns() - t) / 1000)
        slots = asyncio.Semaphore(WINDOW)

        async def one(i: int) -> None:
            async with slots:
                await fleet.request("answerer", Ask(n=i), job=JOB)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(CALLS)))
        rate = CALLS / (time.perf_counter() - t0)

        # the graph stream: the devices' records, read by this device's link and committed
        def stored(db: Any) -> int:
            row = db.execute("SELECT count(*) FROM journal WHERE task_id LIKE 't-d%'").fetchone()
            return int(row[0])

        t0 = time.perf_counter()
        go()
        while await store.read(stored) < devices * RECORDS:
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("the graph records did not all arrive in 5 minutes")
            await asyncio.sleep(0.05)
        stream_s = time.perf_counter() - t0
        await fleet.close()
    store.close()
    return {
        "heard_s": heard_s,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "rate": rate,
        "stream_s": stream_s,
    }


def run_fleet(devices: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="qey-bench-many-") as tmp:
        root = Path(tmp)
        names = [f"d{i:02d}" for i in range(devices)] + ["asker"]
        for name in names:
            (root / name).mkdir()
        keys = {name: public_key(device_seed(root / name)) for name in names}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"nats://127.0.0.1:{port}"
        conf = root / "nats.conf"
        conf.write_bytes(server_config(keys, listen=f"127.0.0.1:{port}", store_dir=root / "js"))
        broker = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stderr=subprocess.DEVNULL)
        children: list[subprocess.Popen[str]] = []
        try:
            time.sleep(0.5)
            for name in names[:-1]:
                children.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--device", url, str(root / name)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for child in children:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "joined"

            def go() -> None:
                for child in children:
                    assert child.stdin is not None
                    child.stdin.write("go\n")
                    child.stdin.flush()

            result = asyncio.run(ask(url, root, devices, go))
            result["broker_mib"], result["broker_cpu_s"] = broker_usage(broker.pid)
            return result
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(30)
            broker.terminate()
            broker.wait(10)


def main(many: int) -> None:
    header(
        f"fleet of many: 1 device (baseline) and {many}, each serving one type; "
        f"{CALLS:,} requests; {RECORDS} graph records per device"
    )
    for devices in (1, many):
        r = run_fleet(devices)
        figure(f"{devices} device(s): all heard after", r["heard_s"], "s")
        figure(f"{devices} device(s): request p50", r["p50"], "µs")
        figure(f"{devices} device(s): request p99", r["p99"], "µs")
        figure(f"{devices} device(s): requests, {WINDOW} in flight", r["rate"], "calls/s")
        figure(
            f"{devices} device(s): {devices * RECORDS:,} graph records, all read",
            r["stream_s"],
            "s",
            note=f"({devices * RECORDS / r['stream_s']:,.0f} records/s)",
        )
        figure(f"{devices} device(s): broker resident memory", r["broker_mib"], "MiB")
        figure(f"{devices} device(s): broker CPU time, whole run", r["broker_cpu_s"], "s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--device"]:
        asyncio.run(device(sys.argv[2], Path(sys.argv[3])))
    else:  # --devices N: another fleet size than DEVICES
        main(int(sys.argv[2]) if sys.argv[1:2] == ["--devices"] else DEVICES)

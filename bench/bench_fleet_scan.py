"""Fleet: one posture scan split over 1, 2 and 3 devices (``qey run`` processes on a broker).

Six loopback segments (/25 each) on ports where nothing listens, so each probe is a refused
connection: the scan is pure probing work. Device 1 runs the job; its coordinator places each
segment's collector on the device whose scope covers it. With one device it covers all six;
with two, three each; with three, two each. Rounds alternate the layouts (nats-server with
JetStream on loopback; devices are real appliances with the simulated board, no panel).

The one-device line is the baseline: the speed-up says what spreading a scan across devices
buys on this machine (2 cores: a third device can add no CPU, only placement overhead).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from _common import figure, header, median, ratio

from appliance.client import ControlClient
from appliance.fleet.keys import device_seed, public_key
from appliance.fleet.server import server_config

SEGMENTS = [f"127.{60 + i}.0.0/25" for i in range(6)]
PORTS = (40001, 41000)  # nothing listens there (checked): every probe is refused at once
ROUNDS = 3
NATS_SERVER = "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nothing_listens() -> None:
    for port in range(PORTS[0], PORTS[1] + 1):
        with socket.socket() as s:
            if s.connect_ex(("127.60.0.1", port)) == 0:
                raise SystemExit(f"port {port} is open here: the bench needs it closed")


def layout(devices: int) -> list[list[str]]:
    """The segments each device covers: an even split."""
    per = len(SEGMENTS) // devices
    return [SEGMENTS[i * per : (i + 1) * per] for i in range(devices)]


def start_device(root: Path, name: str, scope: list[str], url: str) -> subprocess.Popen[str]:
    data = root / name
    scope_toml = ", ".join(f'"{s}"' for s in scope)
    (data / "config.toml").write_text(
        f'scope = [{scope_toml}]\nweb_listen = []\n\n[fleet]\nservers = ["{url}"]\n'
        f'name = "{name}"\nheartbeat_s = 0.5\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "run"],
        env={**os.environ, "QEY_DATA_DIR": str(data)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if not ready.startswith("qey ready"):
        raise RuntimeError(f"{name} did not start: {ready!r}")
    return proc


async def scan(data_dir: Path, devices: int) -> float:
    """Seconds for the job on device 1, from submission to its end (all heard first)."""
    command = (
        f"analyze network security posture of {', '.join(SEGMENTS)} ports {PORTS[0]}-{PORTS[1]}"
    )
    async with ControlClient(data_dir / "control.sock") as client:
        for _ in range(300):  # until device 1 hears every device
            if len((await client.fleet()).devices) >= devices:
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"device 1 did not hear {devices} devices within a minute")
        start = time.perf_counter()
        accepted = await client.submit(command, "coordinator")
        view = await client.job(accepted.job_id, wait=600)
        elapsed = time.perf_counter() - start
    if view.status != "done" or view.result["hosts_probed"] != 6 * 126:
        raise RuntimeError(f"the scan did not finish whole: {view.status} {view.detail}")
    return elapsed


def run_layout(root: Path, url: str, devices: int) -> float:
    with ExitStack() as stack:
        procs = []
        for i, scope in enumerate(layout(devices)):
            procs.append(start_device(root / f"n{devices}", f"dev{i + 1}", scope, url))
            stack.callback(lambda p=procs[-1]: (p.terminate(), p.wait(30)))
        return asyncio.run(scan(root / f"n{devices}" / "dev1", devices))


def main(rounds: int) -> None:
    nothing_listens()
    header(
        f"fleet scan: {len(SEGMENTS)} /25 segments x {PORTS[1] - PORTS[0] + 1} ports over 1, 2 "
        f"and 3 devices (median of {rounds})"
    )
    with tempfile.TemporaryDirectory(prefix="qey-bench-fleet-scan-") as tmp:
        root = Path(tmp)
        # one key per device name, the same in every layout: one broker serves them all
        seeds = {}
        for i in range(1, 4):
            (root / "keys" / f"dev{i}").mkdir(parents=True)
            seeds[f"dev{i}"] = device_seed(root / "keys" / f"dev{i}")
        for n in (1, 2, 3):
            for i in range(1, n + 1):
                (root / f"n{n}" / f"dev{i}").mkdir(parents=True)
                (root / f"n{n}" / f"dev{i}" / "fleet.nkey").write_bytes(seeds[f"dev{i}"] + b"\n")
        port = free_port()
        url = f"nats://127.0.0.1:{port}"
        conf = root / "nats.conf"
        enrolled = {name: public_key(seed) for name, seed in seeds.items()}
        conf.write_bytes(server_config(enrolled, listen=f"127.0.0.1:{port}", store_dir=root / "js"))
        broker = subprocess.Popen(
            [NATS_SERVER, "-c", str(conf)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        times: dict[int, list[float]] = {1: [], 2: [], 3: []}
        try:
            time.sleep(0.5)
            for _ in range(rounds):
                for n in (1, 2, 3):
                    times[n].append(run_layout(root, url, n))
        finally:
            broker.terminate()
            broker.wait(10)
    one = median(times[1])
    for n in (1, 2, 3):
        figure(f"{n} device(s): the job, submission to end", median(times[n]), "s")
    for n in (2, 3):
        ratio(f"speed-up with {n} devices", one, median(times[n]), higher_is_better=True)


if __name__ == "__main__":  # --rounds N: another number of rounds than ROUNDS
    main(int(sys.argv[2]) if sys.argv[1:2] == ["--rounds"] else ROUNDS)

"""The scanner against nmap's connect scan (``nmap -sT -T4``, the baseline), on the same
targets in the same run, inside a network namespace of its own (loopback addresses only):

1. Every port answers at once: 127.30.0.0/22 (1,022 hosts), 23 ports, four of them open.
2. A firewall in the way: 127.31.0.0/23 (510 hosts), 23 ports, where nftables drops the
   packets to three of the ports on every host (they time out) and four ports are open.

Both must find the same open ports. nmap is installed for the benchmark (apt) if missing;
the appliance never ships or runs it. The scanner runs as a collector instance would: the
probes in flight the settings and the descriptor limit allow (``probe_window``), each timeout
learnt from the round trips up to the settings' probe timeout.

Each round runs nmap and then qey on both fixtures; ``--rounds N`` (default 3) repeats them,
and the summary gives each fixture's medians and the paired ratios' median [min-max], since
one round on a shared machine says little.

Goals: firewalled <= 0.5x nmap's time, answering <= 1.0x.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import figure, goal, header, median

from appliance.agents.collector import DataCollector
from appliance.agents.portscan import probe_window, scan
from appliance.settings import Settings
from appliance.startup import allow_open_files
from tests.support import new_network_namespace

PORTS = [21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 993]
PORTS += [995, 1723, 3306, 3389, 5900, 8080, 8443, 9100, 1883, 502]
OPEN = {"answering": ["127.30.1.9", "127.30.3.200"], "firewalled": ["127.31.0.77", "127.31.1.3"]}
OPEN_PORTS = (22, 8080)
DROPPED = (23, 445, 3389)
TARGETS = {"answering": "127.30.0.0/22", "firewalled": "127.31.0.0/23"}
GOALS = {"answering": 1.0, "firewalled": 0.5}


def ensure_nmap() -> str:
    found = shutil.which("nmap")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nmap"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found = shutil.which("nmap")
    assert found, "nmap could not be installed"
    return found


def fixture() -> list[socket.socket]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    dropped = ", ".join(map(str, DROPPED))
    rules = (
        "table inet bench {\n  chain out {\n    type filter hook output priority 0;\n"
        f"    ip daddr {TARGETS['firewalled']} tcp dport {{ {dropped} }} drop\n  }}\n}}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    listeners = []
    for host in [h for hosts in OPEN.values() for h in hosts]:
        for port in OPEN_PORTS:
            s = socket.socket()
            s.bind((host, port))
            s.listen(512)
            listeners.append(s)
    return listeners


def nmap_scan(nmap: str, target: str) -> tuple[float, set[tuple[str, int]]]:
    command = [nmap, "-sT", "-T4", "-Pn", "-n", "--open", "-oG", "-"]
    command += ["-p", ",".join(map(str, PORTS)), target]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    secs = time.perf_counter() - started
    found = set()
    for line in out.splitlines():
        host = re.match(r"Host: (\S+) .*Ports: (.*)", line)
        if host:
            for entry in host.group(2).split(","):
                port, state = entry.strip().split("/")[:2]
                if state == "open":
                    found.add((host.group(1), int(port)))
    return secs, found


async def qey_scan(target: str, settings: Settings) -> tuple[float, set[tuple[str, int]]]:
    hosts = [str(h) for h in ipaddress.ip_network(target).hosts()]
    window = probe_window(settings.scan_concurrency, DataCollector.pool_max)
    started = time.perf_counter()
    found = await scan(hosts, PORTS, concurrency=window, timeout=settings.probe_timeout_s)
    secs = time.perf_counter() - started
    return secs, {(h, p) for h, ports in found.items() for p in ports}


def inside(rounds: int) -> None:
    nmap = shutil.which("nmap")
    assert nmap, "no nmap: run this file without --inside (it installs nmap first)"
    listeners = fixture()
    allow_open_files()
    settings = Settings(data_dir=Path("/nonexistent"))  # the defaults: never opened
    window = probe_window(settings.scan_concurrency, DataCollector.pool_max)
    header(
        f"scanner against nmap -sT -T4, {len(PORTS)} ports, {rounds} rounds; {window} probes "
        f"in flight, timeouts learnt up to {settings.probe_timeout_s} s"
    )
    times: dict[str, dict[str, list[float]]] = {n: {"nmap": [], "qey": []} for n in TARGETS}
    for round_ in range(1, rounds + 1):
        for name, target in TARGETS.items():
            nmap_secs, nmap_found = nmap_scan(nmap, target)
            qey_secs, qey_found = asyncio.run(qey_scan(target, settings))
            expected = {(h, p) for h in OPEN[name] for p in OPEN_PORTS}
            assert nmap_found == expected, (name, "nmap", sorted(nmap_found))
            assert qey_found == expected, (name, "qey", sorted(qey_found))
            times[name]["nmap"].append(nmap_secs)
            times[name]["qey"].append(qey_secs)
            hosts = ipaddress.ip_network(target).num_addresses - 2
            note = f"{target}, {hosts * len(PORTS):,} probes"
            figure(f"round {round_} {name}: nmap", nmap_secs, "s", note=note)
            figure(f"round {round_} {name}: qey", qey_secs, "s", note=f"same {len(qey_found)} open")
    header("summary: medians; ratios paired by round, median [min-max]")
    for name, both in times.items():
        ratios = sorted(q / n for q, n in zip(both["qey"], both["nmap"], strict=True))
        figure(f"{name}: nmap", median(both["nmap"]), "s", note=_spread(both["nmap"]))
        figure(f"{name}: qey", median(both["qey"]), "s", note=_spread(both["qey"]))
        goal(f"{name} vs nmap", median(ratios), GOALS[name], "x", note=_spread(ratios))
    for s in listeners:
        s.close()


def _spread(values: list[float]) -> str:
    return f"[{min(values):.2f}-{max(values):.2f}]"


if __name__ == "__main__":
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    if "--inside" in sys.argv:
        inside(rounds)
    else:
        ensure_nmap()  # here, where the package mirror can be reached: the namespace has none
        command = [*new_network_namespace(), sys.executable, __file__, "--inside"]
        command += ["--rounds", str(rounds)]
        sys.exit(subprocess.run(command).returncode)

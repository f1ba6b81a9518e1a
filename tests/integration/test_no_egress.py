"""Nothing leaves the device that the admin did not ask for.

The appliance runs (a route, a posture scan, the panel, its idle minutes) inside a network
namespace of its own (only loopback exists, so nothing can get out even when this fails)
under strace, which records every connect and datagram. Any address that is neither loopback,
a Unix socket, nor inside the scan scope fails the test, whichever library it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import new_network_namespace

pytestmark = pytest.mark.integration

HOLD_S = 20.0  # onnxruntime's telemetry looked its host up ~8 s after the first session
SCOPE = ipaddress.ip_network("127.0.0.0/29")
ADDRESS = re.compile(
    r'(?:sin_addr=inet_addr\("(?P<v4>[^"]+)"\))|(?:inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)


def foreign_addresses(trace: str) -> list[str]:
    """Trace lines with an IP destination outside loopback and the scope."""
    found = []
    for line in trace.splitlines():
        for m in ADDRESS.finditer(line):
            addr = ipaddress.ip_address(m["v4"] or m["v6"])
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            if not (addr.is_loopback or addr in SCOPE):
                found.append(line.strip())
    return found


def test_the_trace_parser_sees_a_foreign_address() -> None:
    trace = (
        '12 connect(17, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.2.3.4")}'
        ", 16) = 0\n"
        '12 connect(5, {sa_family=AF_INET, sin_port=htons(22), sin_addr=inet_addr("127.0.0.1")}'
        ", 16) = 0\n"
        '12 sendto(3, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(443), '
        'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), '
        "sin6_scope_id=0}, 28) = 1\n"
        '12 connect(4, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 110) = 0\n'
    )
    assert [line.split("(")[0] for line in foreign_addresses(trace)] == ["12 connect", "12 sendto"]


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace (./build.sh test installs it)"
)
def test_the_running_appliance_reaches_nothing_outside_loopback_and_scope(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    trace = tmp_path / "trace.txt"
    # a user namespace too, so this runs unprivileged; lo comes up, nothing else exists
    inner = (
        "ip link set lo up && exec strace -f -qq --seccomp-bpf -e signal=none "
        f"-e trace=connect,sendto,sendmsg,sendmmsg -o {trace} "
        f"{sys.executable} -m tests.integration.egress_scenario {tmp_path / 'data'} {HOLD_S}"
    )
    # nothing inherited may switch telemetry off for the appliance: it must do so itself
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ORT_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    }
    proc = subprocess.Popen(
        [*new_network_namespace(), "sh", "-c", inner],
        env={**env, "HOME": str(home)},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a late run is killed whole: strace, scenario, appliance
    )
    try:
        out, err = proc.communicate(timeout=HOLD_S + 180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the traced appliance did not finish in time:\n{out}{err}")
    run = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "submit: 0 job-" in run.stdout, run.stdout  # the scan really ran, in the namespace
    assert foreign_addresses(trace.read_text()) == []
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []  # no caches, no ids

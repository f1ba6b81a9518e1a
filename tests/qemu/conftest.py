"""Boot an image under QEMU (TCG) for the boot tests: build it (cached by input hash), boot it
from a qcow2 overlay with the panel on a free loopback port, and read its serial console from
a file. Every wait has a deadline; a failure attaches the console log."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "image"))
import qemu  # noqa: E402  (image/qemu.py: the same command line ./build.sh qemu runs)

# A cold arm64 build (no cached base, no router cache: a fresh machine) runs the maintainer
# scripts and the router's phrase embedding under qemu-user: more than 40 min on this 2-core
# machine (the base 23 min, the router's cache more than 16), and a build killed at the
# deadline goes on as an orphan anyway. With the caches it takes a few minutes.
BUILD_DEADLINE_S = 3600
READY_DEADLINE_S = 240  # TCG; boot to ready measured 47-60 s on a loaded 2-core host
# A QEMU process (TCG, q35, OVMF, two vCPUs) can fail to come back from a warm reset: once in
# CI the kernel said "Restarting system" and the console stayed silent for the 640 s left. It
# is the process, not the disk: a reset while the firmware runs could leave it cycling in
# OVMF's early phases for good, further resets did not help, and a new process on the same disk
# and variable store booted in 5 s. A board's watchdog resets the whole SoC; the harness does
# what stands for that, a power cycle, when a reset has been silent this long, and says so.
RESET_STALL_S = 150
RESTARTING = "reboot: Restarting system"
# Where QEMU's user network forwards the panel port to: the guest's DHCP address there.
PANEL_ON_NETWORK = re.compile(r"qey panel https://10\.0\.2\.15:\d+/")
# What the appliance says when, a minute after ready, it still has no address but loopback
# (hal/addresses.py). Seen in CI on both architectures under a loaded TCG host: the link up,
# DHCP never answered, for minutes. The harness power-cycles such a guest once and says so:
# the boots before and after stay in the console log, and the warning in the run's summary.
NO_LEASE = re.compile(r"qey network: the panel is reachable from this device alone so far.*")
CONSOLE_IN_REPORT = 6000  # the console's last characters a failing test's report shows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GUESTS: list[Guest] = []  # every guest of this session, for a failing test's report


class Guest:
    """One QEMU process on a disk overlay that outlives it (so a reboot keeps the data)."""

    def __init__(self, target: str, state: Path, *, reboot: bool = False) -> None:
        self.target = target
        self.state = state
        self.reboot = reboot  # the guest's reboots restart it instead of ending QEMU
        self.console = state / "console.log"
        self.monitor = state / "monitor.sock"
        self.panel_port = free_port()
        self.broker_port = free_port()  # the guest's 4222, where a fleet broker may listen
        self.display_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.power_cycles: list[str] = []  # what QEMU said each time the harness cycled it
        self.lease_cycled = False  # power-cycled once for a boot without a DHCP lease
        self.earlier_consoles = ""  # the console before each power cycle
        GUESTS.append(self)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.panel_port}"

    def start(self) -> None:
        self.console.write_bytes(b"")
        cmd = qemu.command(
            self.target,
            self.state,
            console=f"file:{self.console}",
            panel_port=self.panel_port,
            broker_port=self.broker_port,
            display_port=self.display_port,
            monitor=self.monitor,
            reboot=self.reboot,
        )
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        """Power off at once (no shutdown): what a pulled plug does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def reboot_cleanly(self, deadline_s: float) -> float:
        """Ctrl-Alt-Del on the guest's keyboard (QEMU's monitor): systemd reboots cleanly,
        stopping every service, and QEMU exits at the reboot (-no-reboot). The image has no
        logind to act on an ACPI power button, and needs none. Returns the seconds it took."""
        assert self.proc is not None
        t0 = time.monotonic()
        with socket.socket(socket.AF_UNIX) as mon:
            mon.connect(str(self.monitor))
            mon.sendall(b"sendkey ctrl-alt-delete\n")
            time.sleep(0.5)
        try:
            self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"no reboot within {deadline_s:.0f} s of Ctrl-Alt-Del; console log:\n"
                + self.log()[-20000:]
            )
        self.proc = None
        return time.monotonic() - t0

    def record_boot(self, version: str, boot_to_ready_s: float, started_line: str) -> None:
        """Keep this boot's figures in artifacts/TARGET-figures.json and say them."""
        (ROOT / "artifacts").mkdir(exist_ok=True)
        figures = {
            "boot_to_ready_s": round(boot_to_ready_s, 1),
            "version": version,
            "appliance_start": started_line.strip(),
        }
        (ROOT / "artifacts" / f"{self.target}-figures.json").write_text(json.dumps(figures))
        print(f"{self.target} boot to ready: {boot_to_ready_s:.1f} s; {started_line.strip()}")

    def monitor_command(self, command: str) -> str:
        """One command on QEMU's human monitor; its answer, up to the next prompt."""
        with socket.socket(socket.AF_UNIX) as mon:
            mon.settimeout(10)
            mon.connect(str(self.monitor))
            answer = b""
            while not answer.endswith(b"(qemu) "):
                answer += mon.recv(65536)
            mon.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"(qemu) "):
                chunk = mon.recv(65536)
                if not chunk:
                    break
                answer += chunk
        echo_and_answer = answer.decode(errors="replace").removesuffix("(qemu) ")
        return echo_and_answer.partition("\n")[2]  # the monitor echoes the command first

    def _power_cycle_stalled_reset(self) -> float:
        """Power-cycle a machine whose last console line is the kernel's restart and that has
        said nothing since for RESET_STALL_S (see there); keeps QEMU's view for the log.
        Returns the seconds the machine lost (0: it was not stuck), which no wait counts."""
        if not self.reboot or self.proc is None or self.proc.poll() is not None:
            return 0.0
        tail = self.console.read_bytes()[-200:].decode(errors="replace").rstrip()
        silent_s = time.time() - self.console.stat().st_mtime
        if not tail.endswith(RESTARTING) or silent_s < RESET_STALL_S:
            return 0.0
        seen = self.monitor_command("info status") + self.monitor_command("info registers")
        self._power_cycle(seen)
        print(f"QEMU silent {silent_s:.0f} s after the guest's restart; power-cycled:\n{seen}")
        return silent_s

    def log(self) -> str:
        return self.earlier_consoles + self.console.read_bytes().decode(errors="replace")

    def wait_for_panel(self, deadline_s: float = READY_DEADLINE_S) -> None:
        """Until the console says, since the latest ``qey ready``, that the panel is reachable
        at the guest's network address. The appliance can be ready before the guest's DHCP
        lease, and until then QEMU's forwarded port neither answers nor refuses: a request
        sent at once waits out its timeout (hal/addresses.py says the address when it comes)."""

        def since_ready(log: str) -> re.Match[str] | None:
            ready = log.rfind("qey ready")
            if ready < 0:
                return None
            found = PANEL_ON_NETWORK.search(log, ready)
            if found is None and not self.lease_cycled:
                found = NO_LEASE.search(log, ready)
            return found

        what = f"{PANEL_ON_NETWORK.pattern!r} since the latest ready"
        found = self._wait(since_ready, what, deadline_s)
        if found.re is NO_LEASE:
            self.lease_cycled = True
            self._power_cycle(found.group(0))
            warnings.warn(f"qemu {self.target} power-cycled: {found.group(0)}", stacklevel=2)
            self._wait(since_ready, what, deadline_s)

    def _power_cycle(self, why: str) -> None:
        """Pull the plug and start again on the same disk, the console so far kept."""
        self.stop()
        self.earlier_consoles += self.console.read_bytes().decode(errors="replace")
        self.start()
        self.power_cycles.append(why)

    def report_section(self) -> tuple[str, str]:
        """The console's end and how long it had been silent: a failed request or wait in CI
        shows what the guest was doing, though only the end of CI's output is kept."""
        silent = time.time() - self.console.stat().st_mtime if self.console.exists() else 0.0
        running = self.proc is not None and self.proc.poll() is None
        title = (
            f"qemu {self.target} console ({'running' if running else 'stopped'}, silent "
            f"{silent:.0f} s at the report, {len(self.power_cycles)} power cycles)"
        )
        return title, self.log()[-CONSOLE_IN_REPORT:]

    def wait_for(self, pattern: str, deadline_s: float) -> re.Match[str]:
        return self._wait(lambda log: re.search(pattern, log), repr(pattern), deadline_s)

    def _wait(
        self, find: Callable[[str], re.Match[str] | None], what: str, deadline_s: float
    ) -> re.Match[str]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            found = find(self.log())
            if found:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            end += self._power_cycle_stalled_reset()
            time.sleep(0.5)
        pytest.fail(
            f"no {what} on the console within {deadline_s:.0f} s "
            f"(qemu exit: {self.proc.poll() if self.proc else None}); console log:\n"
            + self.log()[-20000:]
        )


def build_image(target: str) -> Path:
    """The image, built by ``./build.sh image`` (which asks for root as it needs)."""
    subprocess.run(
        [str(ROOT / "build.sh"), "image", "--target", target], check=True, timeout=BUILD_DEADLINE_S
    )
    return qemu.image_path(target)


def booted(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    """The image booted once for a module, from a 4 GB overlay (larger than the image); its
    console log is kept in artifacts/ whatever happens."""
    build_image(target)
    state = tmp_path_factory.mktemp(f"qemu-{target}")
    qemu.prepare(target, state, disk_size="4G", fresh=True)
    g = Guest(target, state)
    g.start()
    try:
        yield g
    finally:
        g.stop()
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / f"{target}-console.log").write_text(g.log())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing QEMU test's report ends with the console of each guest it used: the ones
    still running (a module's shared guest) and the ones started since the test began."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    began = time.monotonic() - (time.time() - call.start)  # call.start is wall-clock time
    for guest in GUESTS:
        if guest.proc is not None or guest.started >= began:
            report.sections.append(guest.report_section())

"""The qemu-amd64 image boots under TCG to the appliance's ready line; through the forwarded
panel port a first-time setup and a routed command work; the data survives a power cut."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.qemu.conftest import READY_DEADLINE_S, ROOT, Guest, booted

pytestmark = [
    pytest.mark.qemu,
    # the device's certificate is self-signed on first boot: verify=False is the point
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

PASSWORD = "correct horse battery staple"
COMMAND = "analyze network security posture of 127.0.0.1"
FIRST_CONTACT_TRIES = 3


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    yield from booted("qemu-amd64", tmp_path_factory)


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # a CA bundle from the environment would override verify=False
    s.verify = False  # the panel's certificate is self-signed on first boot
    return s


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def csrf_of(s: requests.Session, base: str) -> str:
    page = s.get(f"{base}/", timeout=30)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


def test_first_boot_comes_up_ready_and_prints_the_panel_and_setup_token(guest: Guest) -> None:
    ready = guest.wait_for(r"qey ready (\S+)", READY_DEADLINE_S)
    boot_to_ready = time.monotonic() - guest.started
    guest.wait_for(r"qey setup token [A-Z0-9-]+", 30)
    started = guest.wait_for(r"qey started in ([0-9.]+) s: (.*)", 30)
    # QEMU's user network: said once the guest has its lease, which may come after ready
    guest.wait_for_panel()
    log = guest.log()
    assert re.search(r"qey data partition \S+ grown to \d+ MiB", log)
    guest.record_boot(ready.group(1), boot_to_ready, started.group(0))


def first_contact(guest: Guest, s: requests.Session, url: str) -> requests.Response:
    """The first request after ``qey ready``, once the panel is on the guest's network, tried
    again if the guest does not answer in time. Once in CI a guest did not answer for more than
    the 30 s of one try (the cause is not known; a failing test's report now ends with the
    console). A retry is warned about, so it shows in the run's summary instead of passing
    unseen."""
    guest.wait_for_panel()
    for attempt in range(1, FIRST_CONTACT_TRIES):
        t0 = time.monotonic()
        try:
            return s.get(url, timeout=30, allow_redirects=False)
        except (requests.Timeout, requests.ConnectionError) as err:
            title, console = guest.report_section()
            warnings.warn(
                f"try {attempt} of {url} had no answer in {time.monotonic() - t0:.0f} s "
                f"({type(err).__name__}); {title}; its last lines: {console[-600:]!r}",
                stacklevel=2,
            )
    return s.get(url, timeout=30, allow_redirects=False)  # the last try: its error is the test's


def set_up(guest: Guest, s: requests.Session) -> bool:
    """First-time setup with the token on the console, in session ``s``, unless it was done
    (by the setup test, when the module runs whole): so each test also passes when selected
    alone. True if this call did it."""
    base = guest.base_url
    page = first_contact(guest, s, f"{base}/setup")
    if page.status_code != 200:
        return False  # the admin password is set: /setup redirects
    guest.wait_for(r"qey setup token ([A-Z0-9-]+)", READY_DEADLINE_S)
    # the latest boot's: a guest power-cycled for its lease said a new one
    token = re.findall(r"qey setup token ([A-Z0-9-]+)", guest.log())[-1]
    fields = {
        "csrf_token": form_token(page.text),
        "token": token,
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    resp = s.post(f"{base}/setup", data=fields, allow_redirects=False, timeout=60)
    assert resp.status_code == 303, resp.text
    return True


def login(guest: Guest) -> requests.Session:
    set_up(guest, session())
    s, base = session(), guest.base_url
    page = s.get(f"{base}/login", timeout=30)
    resp = s.post(
        f"{base}/login",
        data={"csrf_token": form_token(page.text), "password": PASSWORD},
        allow_redirects=False,
        timeout=60,
    )
    assert resp.status_code == 303, resp.text
    return s


def test_setup_then_a_routed_command_through_the_forwarded_panel(guest: Guest) -> None:
    s, base = session(), guest.base_url
    assert set_up(guest, s), "the admin password was set before the first-time setup"
    headers = {"X-CSRF-Token": csrf_of(s, base)}
    job: dict[str, Any] = s.post(
        f"{base}/api/v1/jobs", json={"command": COMMAND}, headers=headers, timeout=60
    ).json()
    assert job["route"]["agent_type"] == "coordinator", job
    done = s.get(f"{base}/api/v1/jobs/{job['job_id']}?wait=120", timeout=150).json()
    assert done["status"] == "done", done
    tree = s.get(f"{base}/api/v1/jobs/{job['job_id']}/tree", timeout=30).json()
    assert {t["agent_type"] for t in tree["tasks"]} >= {"coordinator", "data_collector"}
    device = s.get(f"{base}/api/v1/status", timeout=30).json()["device"]
    assert device["root_read_only"], device  # the job above was stored: data is writable
    assert device["data_free_bytes"] > 256 * 2**20, device  # grown to fill the disk
    # the spent token does not work twice
    again = s.get(f"{base}/setup", timeout=30, allow_redirects=False)
    assert again.status_code == 303


def test_the_egress_policy_is_loaded_before_the_appliance_and_follows_the_scope(
    guest: Guest,
) -> None:
    """nftables holds the appliance user to its scope from before it starts; a scope saved in
    the panel reloads the policy (qey-egress.path watches config.toml). What the rules refuse
    is tested on the host (tests/integration/test_egress_policy.py)."""
    guest.wait_for(r"qey ready", READY_DEADLINE_S)
    log = guest.log()
    loaded = re.search(
        r"qey egress policy: scope 127\.0\.0\.1/32; allowed nothing else \(loaded in [0-9.]+ s\)",
        log,
    )
    assert loaded, log[-5000:]
    assert loaded.start() < log.index("qey ready"), "the appliance started before its policy"
    print(loaded.group(0))
    s, base = login(guest), guest.base_url
    headers = {"X-CSRF-Token": csrf_of(s, base)}
    for scope in ("127.0.0.0/30", "127.0.0.1/32"):  # and back as it was, for the later tests
        put = s.put(f"{base}/api/v1/scope", json={"scope": [scope]}, headers=headers, timeout=30)
        assert put.status_code == 200, put.text
        guest.wait_for(re.escape(f"qey egress policy: scope {scope}; allowed nothing else"), 60)


def test_the_display_emulator_draws_the_guests_display_port(guest: Guest) -> None:
    """The guest's display port (a virtio console) is a host socket the emulator reads."""
    png = ROOT / "artifacts" / "qemu-amd64-display.png"
    png.unlink(missing_ok=True)
    emulator = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "display-emulator", "--no-terminal",
         "--frames", "3", "--png", str(png), f"socket://127.0.0.1:{guest.display_port}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert emulator.returncode == 0, emulator.stderr
    assert png.read_bytes().startswith(b"\x89PNG"), emulator.stderr
    device = login(guest).get(f"{guest.base_url}/api/v1/status", timeout=30).json()
    assert device["device"]["display_frames_sent"] >= 3, device


def test_the_data_survives_a_power_cut(guest: Guest) -> None:
    s, base = login(guest), guest.base_url
    jobs_before = s.get(f"{base}/api/v1/jobs", timeout=30).json()
    guest.stop()
    guest.start()
    guest.wait_for(r"qey panel https://\S+", READY_DEADLINE_S)
    assert "qey setup token" not in guest.log()  # the password set before still holds
    s = login(guest)
    jobs_after = {j["job_id"]: j for j in s.get(f"{base}/api/v1/jobs", timeout=30).json()}
    assert jobs_before  # there was something to lose
    # every job from before is still there, unchanged (this boot adds its own watcher job)
    assert all(jobs_after.get(j["job_id"]) == j for j in jobs_before)


def test_a_clean_reboot_stops_the_appliance_and_the_next_boot_has_the_data(
    guest: Guest,
) -> None:
    """A clean reboot: systemd stops the appliance (SIGTERM, store closed) well inside its
    stop timeout, and the next boot finds every job."""
    s, base = login(guest), guest.base_url
    jobs_before = s.get(f"{base}/api/v1/jobs", timeout=30).json()
    took = guest.reboot_cleanly(deadline_s=120)
    log = guest.log()
    (ROOT / "artifacts" / "qemu-amd64-reboot-console.log").write_text(log)
    assert "qey stopped: store closed" in log, log[-5000:]
    assert re.search(r"Stopped .*qey\.service", log), log[-5000:]
    assert "qey.service: State 'stop-sigterm' timed out" not in log
    print(f"clean reboot (until QEMU exits): {took:.1f} s")
    guest.start()
    guest.wait_for(r"qey panel https://\S+", READY_DEADLINE_S)
    jobs_after = {
        j["job_id"]: j for j in login(guest).get(f"{base}/api/v1/jobs", timeout=30).json()
    }
    assert jobs_before and all(jobs_after.get(j["job_id"]) == j for j in jobs_before)

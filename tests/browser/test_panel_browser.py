"""The panel in headless Chromium (Debian's, never a downloaded one), as a person uses it:
first-time setup with the printed token, sign out and in, submit a command and see the
router's pick, the job's tree drawn and live events arriving, sign out. A screenshot of each
page goes to artifacts/browser/."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
PASSWORD = "a long admin password"


@pytest.fixture
def open_port() -> Iterator[int]:
    """One loopback port that this test listens on: the only thing the job scans."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def appliance(tmp_path: Path, open_port: int) -> Iterator[tuple[str, str]]:
    """``qey run`` on loopback; yields the panel's URL and the setup token it printed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text(f'scope = ["127.0.0.1/32"]\nports = [{open_port}]\n')
    env = {**os.environ, "QEY_DATA_DIR": str(data), "QEY_WEB_LISTEN": "127.0.0.1:0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("qey ready"), lines
        url = re.search(r"qey panel (\S+)", lines[1])
        token = re.search(r"qey setup token (\S+)", lines[2])
        assert url and token, lines
        yield url.group(1).rstrip("/"), token.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def set_up(page: Page, base: str, token: str) -> None:
    """First-time setup with the printed token; the panel then shows its Home page."""
    from playwright.sync_api import expect

    page.goto(base + "/setup")
    page.fill("#token", token)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("#set-password")
    expect(page.locator("h1")).to_have_text("Home")


def test_setup_sign_in_submit_follow_and_sign_out(
    appliance: tuple[str, str], open_port: int
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import expect, sync_playwright

    base, token = appliance
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            page = context.new_page()

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/setup$"))
            shot("setup")
            page.fill("#token", token)
            page.fill("#password", PASSWORD)
            page.fill("#confirm", PASSWORD)
            page.click("#set-password")
            expect(page.locator("h1")).to_have_text("Home")
            expect(page.locator("#first-scan")).to_contain_text("Nothing scanned yet")
            shot("home-first")
            page.goto(base + "/system")
            expect(page.locator("#router-provider")).to_contain_text("ExecutionProvider")
            shot("system")

            page.click("#logout")
            expect(page).to_have_url(re.compile(r"/login"))
            shot("login")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            expect(page.locator("h1")).to_have_text("Home")

            live = context.new_page()  # watching before the job starts: nothing is missed
            live.goto(base + "/events")
            expect(live.locator("#live-state")).to_have_text("live")

            page.goto(base + "/submit")
            command = f"analyze network security posture of 127.0.0.1 ports {open_port}"
            page.fill("#command-input", command)
            page.click("#preview")
            expect(page.locator("#decision")).to_contain_text("Router picked")
            page.click("#run")
            expect(page.locator("#job-link")).to_be_visible()
            shot("submit")
            page.click("#job-link")
            expect(page.locator("#command")).to_have_text(command)
            # coordinator, data collector, analyzer (no executor: nothing rated high)
            expect(page.locator("#tree svg a.node")).to_have_count(3)
            expect(page.locator("#job-status")).to_contain_text("done")
            shot("job")

            expect(live.locator("#events li").first).to_be_visible()
            expect(live.locator("#events")).to_contain_text("task.spawned")
            expect(live.locator("#events")).to_contain_text("task.status: done")
            live.screenshot(path=str(ARTIFACTS / "events.png"), full_page=True)

            page.locator("#tree svg a.node").last.click()
            expect(page.locator("#chain li").first).to_contain_text("analyzer")
            expect(page.locator("#chain li").last).to_contain_text(command)
            shot("task")

            page.goto(base + "/settings")
            expect(page.locator("#scope-input")).to_have_value("127.0.0.1/32")
            page.click("text=Save scope")
            expect(page.locator("form[data-api='/api/v1/scope'] output")).to_contain_text(
                "Saved and applied."
            )
            password = page.locator("form[data-api='/api/v1/password']")
            password.locator("input[name=current]").fill(PASSWORD)
            password.locator("#new-password").fill(PASSWORD + " two")
            password.locator("#repeat-password").fill(PASSWORD + " too")
            password.locator("button").click()
            said = password.locator("output")
            expect(said).to_have_text("The two passwords differ: type the new one again.")
            password.locator("#repeat-password").fill(PASSWORD + " two")  # typing clears it
            expect(said).to_have_text("")
            password.locator("button").click()
            expect(said).to_have_text("Password changed. Every other session was signed out.")
            shot("settings")

            page.click("#logout")
            expect(page).to_have_url(re.compile(r"/login"))
            assert page.request.get(base + "/api/v1/status").status == 401
        finally:
            browser.close()


def test_a_scheduled_plan_is_previewed_and_runs_only_when_confirmed(
    appliance: tuple[str, str],
) -> None:
    """Issue 12's "seeing before doing": Preview plan draws the steps and the schedule; Run
    asks first for a scheduled plan, and a "no" makes nothing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import Dialog, expect, sync_playwright

    base, token = appliance
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            page = context.new_page()
            set_up(page, base, token)

            page.goto(base + "/submit")
            page.fill("#command-input", "scan 127.0.0.1 every hour then analyze the results")
            page.click("#preview-plan")
            decision = page.locator("#decision")
            expect(decision).to_contain_text("Plan (scheduled)")
            expect(decision).to_contain_text("runs every hour")
            expect(decision).to_contain_text("s2 analyzer ← s1")
            page.screenshot(path=str(ARTIFACTS / "plan-preview.png"), full_page=True)

            asked: list[str] = []

            def answer(no: bool) -> None:
                def handle(dialog: Dialog) -> None:
                    asked.append(dialog.message)
                    dialog.dismiss() if no else dialog.accept()

                page.once("dialog", handle)

            answer(no=True)
            page.click("#run")
            for _ in range(40):
                if asked:
                    break
                page.wait_for_timeout(250)
            assert asked and "Run this plan?" in asked[0] and "every hour" in asked[0], asked
            page.wait_for_timeout(500)  # a "no" must not submit late either
            assert page.request.get(base + "/api/v1/schedules").json() == []

            answer(no=False)
            page.click("#run")
            expect(decision).to_contain_text("made")
            listed = page.request.get(base + "/api/v1/schedules").json()
            assert len(listed) == 1 and len(asked) == 2, (listed, asked)
            assert listed[0]["command"] == "scan 127.0.0.1 then analyze the results"
            page.screenshot(path=str(ARTIFACTS / "plan-confirmed.png"), full_page=True)
        finally:
            browser.close()


def test_the_job_page_shows_its_findings_and_offers_the_report(
    appliance: tuple[str, str], open_port: int
) -> None:
    """Issue 13's findings report on the job page: the table worst first, the downloads, the
    raw JSON one click away, and at phone width the table scrolls in its own box."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import expect, sync_playwright

    base, token = appliance
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            context.set_default_timeout(20_000)
            page = context.new_page()
            set_up(page, base, token)
            page.goto(base + "/submit")
            page.fill(
                "#command-input", f"analyze network security posture of 127.0.0.1 ports {open_port}"
            )
            page.click("#run")
            page.click("#job-link")
            expect(page.locator("#job-status")).to_contain_text("done")
            # no reload: the page draws itself again as the job's tasks end, report included
            row = page.locator("#findings tr.finding")
            expect(row).to_have_count(1)
            expect(row).to_contain_text(str(open_port))
            expect(row.locator(".sev")).to_have_text("low")  # an unknown service: rated low
            expect(row.locator("td.todo")).not_to_be_empty()
            expect(page.locator("#report-verdict")).to_contain_text("Done")
            box = page.locator("#report .table-scroll").bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390, box
            page.screenshot(path=str(ARTIFACTS / "job-findings-phone.png"), full_page=True)

            link = page.locator('#report-downloads a[data-format="csv"]')
            with page.expect_download() as download:
                link.click()
            assert download.value.suggested_filename.endswith(".csv")
            expect(page.locator("#report-raw pre")).not_to_be_visible()
            page.click("#report-raw summary")
            expect(page.locator("#report-raw pre")).to_contain_text('"verdict": "done"')
        finally:
            browser.close()


def test_an_approval_appears_by_itself_and_a_rejection_blocks_nothing(
    appliance: tuple[str, str],
) -> None:
    """The Approvals page, open before anything waits, shows a block asked for on another
    page within seconds; Reject closes it (never Approve here: this appliance runs on the
    host, and its firewall is the host's; the namespace tests approve)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import Dialog, expect, sync_playwright

    base, token = appliance
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            context.set_default_timeout(20_000)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            set_up(page, base, token)

            approvals = context.new_page()
            approvals.on("dialog", lambda dialog: dialog.accept())
            approvals.goto(base + "/approvals")
            expect(approvals.locator("#pending")).to_contain_text("Nothing waits")

            asked: list[str] = []

            def note(dialog: Dialog) -> None:
                asked.append(dialog.message)

            page.on("dialog", note)
            page.goto(base + "/submit")
            page.fill("#command-input", "block 127.0.0.1")
            page.click("#run")
            expect(page.locator("#job-link")).to_be_visible()
            assert any("destructive" in m for m in asked), asked  # Run asked first

            row = approvals.locator("#pending #actions tbody tr")
            expect(row).to_have_count(1, timeout=15_000)  # no reload by hand
            expect(row).to_contain_text("block 127.0.0.1")
            approvals.screenshot(path=str(ARTIFACTS / "approvals-pending.png"), full_page=True)
            row.get_by_role("button", name="Reject").click()
            expect(approvals.locator("#pending")).to_contain_text("Nothing waits")
            expect(approvals.locator("#actions").last).to_contain_text("rejected")
            listed = approvals.request.get(base + "/api/v1/actions").json()
            assert [(a["what"], a["state"]) for a in listed] == [("block 127.0.0.1", "rejected")]
        finally:
            browser.close()


def _no_sideways_scroll(page: Page, width: int) -> None:
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, (page.url, scroll)


@pytest.mark.parametrize("width", [390, 1280])
def test_the_owner_sees_findings_arrive_on_home_then_the_device_and_a_refusal(
    appliance: tuple[str, str], open_port: int, width: int
) -> None:
    """Issue 17's owner's path on a phone and a desktop: the home page, open before the scan, shows
    the finding by itself (no reload); its device page; a command partly out of scope ends
    refused and one with a step it cannot do partial, each saying why; the navigation
    folds into a Menu on the phone; no page scrolls sideways."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import expect, sync_playwright

    base, token = appliance
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 844})
            context.set_default_timeout(20_000)
            home = context.new_page()
            set_up(home, base, token)
            expect(home.locator("#live-state")).to_have_text("live")
            shot = f"owner-{'phone' if width < 720 else 'desktop'}"
            if width < 720:
                expect(home.locator("#nav")).not_to_be_visible()  # folded on a phone
                home.click("button.menu")
                expect(home.locator("#nav a", has_text="Devices")).to_be_visible()
                home.screenshot(path=str(ARTIFACTS / f"{shot}-menu.png"), full_page=True)
                home.click("button.menu")
            else:
                expect(home.locator("button.menu")).not_to_be_visible()
                expect(home.locator("#nav a", has_text="Devices")).to_be_visible()
            _no_sideways_scroll(home, width)

            page = context.new_page()
            page.goto(base + "/submit")
            page.fill("#command-input", f"scan 127.0.0.1 ports {open_port}")
            page.click("#run")
            expect(page.locator("#job-link")).to_be_visible()

            finding = home.locator("#findings-open tr.finding")  # no reload by hand
            expect(finding).to_have_count(1)
            expect(finding).to_contain_text(str(open_port))
            expect(home.locator("#recent-jobs")).to_contain_text("done")
            _no_sideways_scroll(home, width)
            home.screenshot(path=str(ARTIFACTS / f"{shot}-home.png"), full_page=True)

            finding.locator("a", has_text="127.0.0.1").click()
            expect(home.locator("h1")).to_have_text("Device 127.0.0.1")
            expect(home.locator("#device-findings tr.finding")).to_have_count(1)
            expect(home.locator("#device-history tbody tr")).to_have_count(1)
            _no_sideways_scroll(home, width)
            home.screenshot(path=str(ARTIFACTS / f"{shot}-device.png"), full_page=True)

            page.goto(base + "/submit")
            page.fill("#command-input", "analyze network security posture of 127.0.0.1, 10.1.2.3")
            page.click("#run")
            page.click("#job-link")
            status = page.locator("#job-status")
            expect(status.locator(".badge")).to_have_text("refused")
            expect(status).to_contain_text("outside the configured scope")
            _no_sideways_scroll(page, width)
            page.screenshot(path=str(ARTIFACTS / f"{shot}-refused.png"), full_page=True)

            # a step it could not do (no ticket system configured): partial, and why
            page.on("dialog", lambda dialog: dialog.accept())  # Run asks before acting
            page.goto(base + "/submit")
            page.fill("#command-input", "scan 127.0.0.1 then open a ticket for the findings")
            page.click("#run")
            page.click("#job-link")
            expect(status.locator(".badge")).to_have_text("partial")
            expect(status).to_contain_text("no ticket_url is configured")
            expect(page.locator("#report-verdict")).to_contain_text("Partial")
            _no_sideways_scroll(page, width)
            page.screenshot(path=str(ARTIFACTS / f"{shot}-partial.png"), full_page=True)
            home.goto(base + "/jobs")
            expect(home.locator("#jobs tr[data-status=partial]")).to_have_count(1)
            expect(home.locator("#jobs tr[data-status=refused]")).to_have_count(1)

            for path in ("/jobs", "/devices", "/system", "/schedules", "/settings", "/events"):
                page.goto(base + path)
                _no_sideways_scroll(page, width)
        finally:
            browser.close()


def test_an_update_upload_shows_its_progress_then_the_devices_verdict(
    appliance: tuple[str, str], tmp_path: Path
) -> None:
    """Issue 14's upload on the Update page: the bar follows the upload, the page then follows
    root's check, and shows its verdict when the record says one. Off the image nothing
    installs, so the test does what root's update service would: it takes the hand-over and
    records a refusal."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./build.sh test installs it)")
    from playwright.sync_api import expect, sync_playwright

    from appliance.update import handoff
    from tests.web.test_update_upload import ended

    base, token = appliance
    data = tmp_path / "data"
    bundle = tmp_path / "qey-qemu-amd64-0.1.0+2.raucb"
    bundle.write_bytes(os.urandom(24 << 20))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            page = context.new_page()
            set_up(page, base, token)
            page.click("nav >> text=Update")
            expect(page.locator("main")).to_contain_text("runs on an ordinary machine")
            expect(page.locator("#last-update")).to_have_text("None yet.")
            page.set_input_files("#update-form input[type=file]", str(bundle))
            page.click("#update-form button[type=submit]")
            out = page.locator("#update-form output.result")
            expect(out).to_contain_text("checks the bundle's signature")
            expect(page.locator("#update-form progress")).to_be_visible()
            wanted = handoff.read_request(data)
            assert wanted.size == bundle.stat().st_size and wanted.reboot
            page.screenshot(path=str(ARTIFACTS / "update-uploaded.png"), full_page=True)

            why = "the bundle's signature does not verify with this device's update key"
            handoff.clear(data)
            ended(data, "refused", why, "")
            expect(page.locator("#last-update")).to_contain_text(why)
            expect(page.locator("#last-update .badge")).to_have_text("refused")
            page.screenshot(path=str(ARTIFACTS / "update-refused.png"), full_page=True)
        finally:
            browser.close()

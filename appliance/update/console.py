"""``qey update``: install a bundle into the other slot, show both slots, and the two steps the
boot runs on its own (the health gate that commits a new slot, and the check that notices a
rollback and gives the old version its data back).
"""

from __future__ import annotations

import asyncio
import configparser
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from appliance import __version__
from appliance.durable import write_atomic
from appliance.errors import ApplianceError
from appliance.update import bundles, entries, handoff, record
from appliance.update.backend import ESP, TRIES, slot_device
from appliance.update.bundles import BundleRefused
from appliance.update.entries import Slot

SYSTEM_CONF = Path("/etc/rauc/system.conf")
SLOTS = "update-slots.json"  # under the data directory: root's view of the slots
IMAGE_VERSION = Path("/usr/lib/qey/image-version")


class UpdateFailed(ApplianceError):
    """The update could not be done; the message says why and what was left as it was."""


class SlotView(msgspec.Struct, frozen=True):
    slot: Slot
    version: str | None  # what RAUC installed there (the running one's own for the booted)
    booted: bool
    boots_next: bool
    state: str  # good (committed), trying (tries left), bad (given up), empty


class UpdateStatus(msgspec.Struct, frozen=True):
    slots: list[SlotView]
    last: record.UpdateRecord | None


def status(data_dir: Path) -> UpdateStatus:
    """Both slots, which runs and which boots next, each one's state, and the last update."""
    booted = entries.boot_slot()
    versions = _installed_versions()
    upcoming = entries.next_boot(ESP)
    views = []
    for slot in entries.SLOTS:
        entry = entries.entry_of(ESP, slot)
        version = running_version() if slot == booted else versions.get(slot)
        state = "empty" if entry is None else entry.state
        if entry is not None and slot == booted and entry.on_trial:
            state = "trying"  # its last try, running now
        views.append(
            SlotView(
                slot=slot,
                version=version,
                booted=slot == booted,
                boots_next=upcoming is not None and upcoming.slot == slot,
                state=state,
            )
        )
    return UpdateStatus(slots=views, last=record.load(data_dir))


def publish_slots(data_dir: Path) -> None:
    """Both slots as root sees them, for the panel: the appliance may read neither the ESP
    nor RAUC's bus. Written whenever root's update steps run (each boot once an update was
    started, after an install, after a commit), so it is as current as the boot entries."""
    try:
        view = status(data_dir)
        write_atomic(data_dir / SLOTS, msgspec.json.encode(view.slots), mode=0o644)
    except OSError as err:  # the panel shows less; the update step itself goes on
        print(f"qey update: could not publish the slots for the panel: {err}", flush=True)


def published_slots(data_dir: Path) -> list[SlotView] | None:
    """What ``publish_slots`` last wrote, None before any update step ran."""
    try:
        return msgspec.json.decode((data_dir / SLOTS).read_bytes(), type=list[SlotView])
    except (OSError, msgspec.DecodeError):
        return None


def _installed_versions() -> dict[str, str]:
    """What RAUC recorded installing into each slot (its status file on the data partition)."""
    try:
        done = subprocess.run(
            ["rauc", "status", "--output-format=json"], capture_output=True, text=True, check=True
        )
        found = msgspec.json.decode(bundles.json_part(done.stdout))
    except (OSError, subprocess.CalledProcessError, msgspec.DecodeError):
        return {}
    versions = {}
    for group in found.get("slots", []):
        for info in group.values():
            bundle = (info.get("slot_status") or {}).get("bundle") or {}
            if info.get("bootname") and bundle.get("version"):
                versions[info["bootname"]] = bundle["version"]
    return versions


def running_version() -> str:
    try:
        return IMAGE_VERSION.read_text().strip()
    except OSError:
        return __version__


def system_config(path: Path = SYSTEM_CONF) -> tuple[str, Path]:
    """This appliance's compatible string and update keyring, from RAUC's own config."""
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise UpdateFailed(f"{path}: missing: this system cannot be updated (not the image?)")
    return parser["system"]["compatible"], Path(parser["keyring"]["path"])


def install(bundle: Path, data_dir: Path, *, allow_downgrade: bool) -> record.UpdateRecord:
    """Check the bundle, write it into the slot not running, and set that slot to be tried
    at the next boot; the database is copied aside first. Nothing is written for a bundle
    that fails any check, and the record says why it was refused or failed."""
    started = time.time()
    version = ""
    try:
        compatible, keyring = system_config()
        info = bundles.inspect(bundle, keyring)
        version = info.version
        bundles.check_target(
            info, compatible=compatible, current=running_version(), allow_downgrade=allow_downgrade
        )
        print(f"checking {bundle.name} (version {info.version}) ...", flush=True)
        bundles.check_payload(bundle, info, progress=_progress("checked"))
        return _write(bundle, data_dir, info, started)
    except BundleRefused as err:
        _ended(data_dir, "refused", str(err), started, version)
        raise
    except UpdateFailed as err:
        _ended(data_dir, "failed", str(err), started, version)
        raise


def _write(
    bundle: Path, data_dir: Path, info: bundles.BundleInfo, started: float
) -> record.UpdateRecord:
    version = info.version
    from_slot = _booted_slot()
    rec = record.UpdateRecord(
        state="installing",
        version=version,
        from_version=running_version(),
        from_slot=from_slot,
        to_slot=entries.other(from_slot),
        started_at=started,
    )
    record.save(data_dir, rec)
    done = subprocess.run(["rauc", "install", str(bundle)], check=False, text=True)
    if done.returncode != 0:
        raise UpdateFailed(
            f"rauc install exited {done.returncode} (journalctl -u rauc); slot {from_slot} "
            "still boots, as before"
        )
    _read_back(info, rec.to_slot, from_slot)
    db = data_dir / "qey.db"
    copied = db.exists()
    if copied:
        record.snapshot(db, data_dir)
    rec = msgspec.structs.replace(rec, state="trying", snapshot=copied)
    record.save(data_dir, rec)
    return rec


def _read_back(info: bundles.BundleInfo, slot: Slot, from_slot: Slot) -> None:
    """RAUC wrote the slot from verified data; this reads it back, so storage that dropped
    or changed what it was given is caught before the slot is ever booted."""
    device = slot_device(slot)
    for image in info.images:
        print(f"verifying slot {slot} as written ...", flush=True)
        if not bundles.written_intact(device, image, progress=_progress("verified")):
            entries.mark(ESP, slot, "bad")
            raise UpdateFailed(
                f"slot {slot} does not read back as written (its storage may be failing); "
                f"slot {from_slot} still boots, as before"
            )


def _booted_slot() -> Slot:
    booted = entries.boot_slot()
    if booted not in entries.SLOTS:
        raise UpdateFailed(f"not booted from a slot (qey.slot={booted}): nothing to update")
    return entries.slot_of(booted)


def _ended(data_dir: Path, state: record.State, reason: str, started: float, version: str) -> None:
    booted = entries.boot_slot()
    slot = entries.slot_of(booted) if booted in entries.SLOTS else "a"
    record.save(
        data_dir,
        record.UpdateRecord(
            state=state,
            version=version,
            from_version=running_version(),
            from_slot=slot,
            to_slot=entries.other(slot),
            started_at=started,
            finished_at=time.time(),
            reason=reason,
        ),
    )


def apply_request(data_dir: Path) -> str:
    """Root's side of a panel upload: install the handed-over bundle (its outcome recorded
    either way), clear the hand-over, and reboot if asked."""
    if not (data_dir / handoff.REQUEST).exists():
        return "nothing handed over"  # the boot's check dropped an interrupted one
    try:
        wanted = handoff.read_request(data_dir)
        bundle = handoff.bundle_path(data_dir, wanted)
    except handoff.BadHandOff as err:
        _ended(data_dir, "refused", str(err), time.time(), "")
        _handed_back(data_dir)
        raise
    try:
        rec = install(bundle, data_dir, allow_downgrade=wanted.allow_downgrade)
    finally:
        _handed_back(data_dir)
    if wanted.reboot_at is not None:
        when = schedule_reboot(wanted.reboot_at)
    else:
        when = "rebooting into it" if wanted.reboot else "it is tried at the next boot"
    said = f"version {rec.version} installed in slot {rec.to_slot}; {when}"
    print(f"qey update: {said}", flush=True)  # before the reboot takes the console
    if wanted.reboot and wanted.reboot_at is None:
        subprocess.run(["systemctl", "reboot"], check=True)
    return said


def _handed_back(data_dir: Path) -> None:
    """The slots first, then the hand-over goes: its going is what the panel takes for
    'root is done', and the slots it then shows must be the new ones."""
    publish_slots(data_dir)
    handoff.clear(data_dir)


REBOOT_UNIT = "qey-update-reboot"


def schedule_reboot(at: str) -> str:
    """Reboot at the next ``at`` (HH:MM, the device's local time) with a transient timer of
    PID 1's (logind, which ``shutdown -r TIME`` needs, is not in the image). A later
    schedule replaces an earlier one; the timer is gone after the reboot."""
    handoff.time_of_day(at)
    subprocess.run(["systemctl", "stop", f"{REBOOT_UNIT}.timer"], check=False, capture_output=True)
    done = subprocess.run(
        ["systemd-run", f"--unit={REBOOT_UNIT}", f"--on-calendar=*-*-* {at}:00",
         "--timer-property=AccuracySec=1s", "--description=qEY-0 update: reboot into it",
         "/usr/bin/systemctl", "reboot"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise UpdateFailed(f"could not schedule the reboot at {at}: {done.stderr.strip()}")
    return f"rebooting into it at {at}"


def boot_check(data_dir: Path, *, booted: str | None = None, esp: Path = ESP) -> str:
    """At boot, before the appliance starts: if the slot being tried was given up on and the
    old one booted instead, say so in the record and give the old version its data back."""
    rec = record.load(data_dir)
    booted = booted or entries.boot_slot()
    if rec is not None and rec.state == "installing":
        return _interrupted(data_dir, rec, booted, esp)
    if rec is None or rec.state != "trying":
        return "nothing to check"
    if booted != rec.from_slot:
        return f"trying version {rec.version} in slot {rec.to_slot}"
    entry = entries.entry_of(esp, rec.to_slot)
    why = (
        f"slot {rec.to_slot} (version {rec.version}) did not become healthy within its "
        f"{TRIES} tries; back on slot "
        f"{rec.from_slot} (version {rec.from_version})"
    )
    if entry is not None and entry.state != "bad":
        entries.mark(esp, rec.to_slot, "bad")  # a manual boot of the old slot: stop trying
        why = f"slot {rec.from_slot} was booted while slot {rec.to_slot} was being tried"
    restored = rec.snapshot and record.restore(data_dir / "qey.db", data_dir)
    if restored:
        why += "; the data was restored to how it was before the update"
    record.finish(data_dir, rec, "rolled-back", why)
    return why


def _interrupted(data_dir: Path, rec: record.UpdateRecord, booted: str, esp: Path) -> str:
    """The device restarted while RAUC was writing (a power cut, a crash). On the old slot
    the new one is left unbootable and the bundle is dropped: nothing retries by itself in a
    loop, and the next upload starts afresh. On the new slot RAUC had finished: it is tried
    like any other (without the snapshot, which was not taken)."""
    if booted == rec.to_slot:
        record.save(data_dir, msgspec.structs.replace(rec, state="trying", snapshot=False))
        return f"trying version {rec.version} in slot {rec.to_slot} (its install had finished)"
    entry = entries.entry_of(esp, rec.to_slot)
    if entry is not None and entry.state != "bad":
        entries.mark(esp, rec.to_slot, "bad")
    handoff.clear(data_dir)
    why = (
        f"the device restarted while version {rec.version} was being written into slot "
        f"{rec.to_slot}; slot {rec.from_slot} (version {rec.from_version}) runs as before; "
        "install the bundle again"
    )
    record.finish(data_dir, rec, "failed", why)
    return why


def gate(
    data_dir: Path,
    socket: Path,
    *,
    healthy_for_s: float,
    timeout_s: float,
    booted: str | None = None,
    esp: Path = ESP,
) -> str:
    """The health gate: the slot being tried is committed once the appliance has answered,
    healthy, for ``healthy_for_s`` in a row; not within ``timeout_s``, it fails (and its unit
    reboots the device, costing the slot one of its tries)."""
    booted = booted or entries.boot_slot()
    entry = entries.entry_of(esp, entries.slot_of(booted)) if booted in entries.SLOTS else None
    if entry is None or not entry.on_trial:
        return "nothing to commit: this slot is already known good"
    asyncio.run(_healthy(socket, healthy_for_s, timeout_s))
    subprocess.run(["rauc", "status", "mark-good", "booted"], check=True)
    entries.mark(esp, entry.slot, "good")  # rauc's mark-good did this through the backend
    rec = record.load(data_dir)
    if rec is not None and rec.state == "trying" and rec.to_slot == entry.slot:
        record.finish(data_dir, rec, "committed", f"healthy for {healthy_for_s:.0f} s")
        (data_dir / record.SNAPSHOT).unlink(missing_ok=True)
    return f"slot {entry.slot} committed"


async def _healthy(socket: Path, healthy_for_s: float, timeout_s: float) -> None:
    from appliance.client import ControlClient

    deadline = time.monotonic() + timeout_s
    since: float | None = None
    last = "no answer yet"
    while time.monotonic() < deadline:
        health: str | None = None
        try:
            async with ControlClient(socket) as client:
                health = await client.health()
        except (ApplianceError, OSError) as err:  # not up yet, or not answering: wait
            last = str(err)
        if health is not None and health != "failed":
            since = since or time.monotonic()
            if time.monotonic() - since >= healthy_for_s:
                return
        else:
            since = None
            last = f"health {health}" if health is not None else last
        await asyncio.sleep(1)
    raise UpdateFailed(f"not healthy for {healthy_for_s:.0f} s in a row ({last})")


def _progress(verb: str) -> Callable[[int, int], None]:
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct // 10 != last[0] // 10:
            last[0] = pct
            print(f"  {verb} {pct}% ({done / 1e6:.0f} of {total / 1e6:.0f} MB)", flush=True)

    return show

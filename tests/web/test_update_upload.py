"""An update through the panel: the bundle is streamed to the data directory and handed to
root's update service with a request it can trust the shape of; what was asked and the last
update's record come back from GET /api/v1/update. Bad uploads are refused in words."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from appliance.update import console, handoff, record

pytestmark = pytest.mark.unit

BUNDLE = bytes(range(256)) * 8192  # 2 MiB: more than one chunk


def ended(data_dir: Path, state: record.State, reason: str, version: str) -> None:
    """The record root's update service leaves when it is done with an update."""
    record.save(
        data_dir,
        record.UpdateRecord(
            state=state,
            version=version,
            from_version="0.1.0+100",
            from_slot="a",
            to_slot="b",
            started_at=1.0,
            finished_at=2.0,
            reason=reason,
        ),
    )


def headers(
    client: TestClient[Any, Any], media: str = "application/octet-stream"
) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf, "Content-Type": media}  # type: ignore[attr-defined]


async def test_an_upload_is_handed_to_root_whole(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    resp = await client.post("/api/v1/update?reboot=1", data=BUNDLE, headers=headers(client))
    assert resp.status == 202, await resp.text()
    bundle = data_dir / handoff.INCOMING
    assert bundle.read_bytes() == BUNDLE
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o644
    wanted = handoff.read_request(data_dir)
    assert (wanted.reboot, wanted.allow_downgrade, wanted.size) == (True, False, len(BUNDLE))
    assert handoff.bundle_path(data_dir, wanted) == bundle
    view = await (await client.get("/api/v1/update")).json()
    assert view["requested"] is True
    assert view["booted_slot"] == "host"
    assert view["last"] is None


async def test_bad_uploads_are_refused_and_leave_nothing(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    empty = await client.post("/api/v1/update", data=b"", headers=headers(client))
    assert empty.status == 400
    assert "empty" in (await empty.json())["message"]
    as_form = await client.post(
        "/api/v1/update", data=BUNDLE, headers=headers(client, "text/plain")
    )
    assert as_form.status == 400
    assert "application/octet-stream" in (await as_form.json())["message"]
    assert not (data_dir / handoff.REQUEST).exists()
    update = data_dir / "update"
    assert not update.exists() or not any(update.iterdir())  # no half-written bundle left


async def test_the_upload_needs_the_sessions_csrf_token(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/update",
        data=BUNDLE,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status == 403


async def test_the_last_update_record_is_what_the_panel_shows(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    ended(data_dir, "refused", "version 0.1.0+50 is older than the running 0.1.0+100", "0.1.0+50")
    view = await (await client.get("/api/v1/update")).json()
    last = msgspec.convert(view["last"], record.UpdateRecord)
    assert (last.state, last.reason) == (
        "refused",
        "version 0.1.0+50 is older than the running 0.1.0+100",
    )


async def test_off_the_image_the_update_page_says_so(client: TestClient[Any, Any]) -> None:
    page = await (await client.get("/update")).text()
    assert "ordinary machine" in page and 'id="slots"' not in page
    assert 'data-upload="/api/v1/update"' in page


async def test_the_update_page_shows_both_slots_the_last_result_and_an_upload(
    client: TestClient[Any, Any], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("appliance.web.update.boot_slot", lambda: "b")  # the kernel's word
    page = await (await client.get("/update")).text()
    assert 'id="slots"' in page and "empty" in page, "before any update: slot B never written"
    assert "None yet." in page
    assert 'data-upload="/api/v1/update"' in page and 'type="file"' in page
    assert "<progress" in page

    slots = [
        console.SlotView(
            slot="a", version="0.1.0+100", booted=False, boots_next=False, state="good"
        ),
        console.SlotView(
            slot="b", version="0.1.0+200 <b>", booted=True, boots_next=True, state="trying"
        ),
    ]
    (data_dir / console.SLOTS).write_bytes(msgspec.json.encode(slots))
    ended(data_dir, "rolled-back", "slot b did not become healthy within its 3 tries", "0.1.0+200")
    view = await (await client.get("/api/v1/update")).json()
    assert msgspec.convert(view["slots"], list[console.SlotView]) == slots
    page = await (await client.get("/update")).text()
    assert "0.1.0+200 &lt;b&gt;" in page, "what root published is escaped like any text"
    assert "rolled-back" in page and "did not become healthy within its 3 tries" in page
    assert "boots next" in page


async def test_slots_published_by_root_that_do_not_decode_read_as_unknown(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    (data_dir / console.SLOTS).write_bytes(b'[{"slot": "c"')
    view = await (await client.get("/api/v1/update")).json()
    assert view["slots"] is None
    assert (await client.get("/update")).status == 200


def test_root_publishes_what_it_sees_of_the_slots(tmp_path: Path) -> None:
    console.publish_slots(tmp_path)  # off the image: no ESP, no RAUC
    slots = console.published_slots(tmp_path)
    assert slots is not None and [s.slot for s in slots] == ["a", "b"]
    assert stat.S_IMODE((tmp_path / console.SLOTS).stat().st_mode) == 0o644


def test_a_hand_over_that_is_not_a_plain_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "update").mkdir()
    (tmp_path / "elsewhere").write_bytes(b"x")
    (tmp_path / handoff.INCOMING).symlink_to(tmp_path / "elsewhere")
    wanted = handoff.UpdateRequest(allow_downgrade=False, reboot=False, at=0.0, size=1)
    with pytest.raises(handoff.BadHandOff, match="not a plain file"):
        handoff.bundle_path(tmp_path, wanted)
    (tmp_path / handoff.REQUEST).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(handoff.BadHandOff, match="unreadable update request"):
        handoff.read_request(tmp_path)


async def test_a_reboot_at_a_time_of_day_is_handed_over_and_a_bad_one_refused(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    resp = await client.post(
        "/api/v1/update?reboot_at=03:30&reboot=1", data=BUNDLE, headers=headers(client)
    )
    assert resp.status == 202, await resp.text()
    wanted = handoff.read_request(data_dir)
    assert (wanted.reboot, wanted.reboot_at) == (False, "03:30"), "at that time, not at once"
    handoff.clear(data_dir)
    for query, why in (
        ("reboot_at=3:30", "HH:MM"),
        ("reboot_at=24:00", "HH:MM"),
        ("reboot_at=03:30;reboot", "HH:MM"),
    ):
        bad = await client.post(f"/api/v1/update?{query}", data=BUNDLE, headers=headers(client))
        assert bad.status == 400, query
        assert why in (await bad.json())["message"]
        assert not (data_dir / handoff.REQUEST).exists()


def test_a_hand_over_with_a_reboot_time_root_cannot_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "update").mkdir()
    (tmp_path / handoff.REQUEST).write_text(
        '{"allow_downgrade": false, "reboot": false, "at": 1.0, "size": 1, '
        '"reboot_at": "now; reboot"}'
    )
    with pytest.raises(handoff.BadHandOff, match="HH:MM"):
        handoff.read_request(tmp_path)

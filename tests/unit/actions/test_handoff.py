"""The hand-off to root's firewall unit: the appliance's request, root's checks (addresses
only, no links followed), its confirmation, and a failure when no confirmation comes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from appliance.actions import firewall
from appliance.actions.handoff import REQUEST, HandOff, apply_request, digest
from appliance.errors import ActionFailed

pytestmark = pytest.mark.unit

WANTED = firewall.Entries(blocked=("127.0.0.3",), allowed=("::1",))


def test_root_loads_what_was_asked_and_the_appliance_hears_of_it(tmp_path: Path) -> None:
    stamp = tmp_path / "run" / "actions-applied"
    loaded: list[firewall.Entries] = []

    def root() -> None:  # qey-actions.service, started when the request file changes
        while not (tmp_path / REQUEST).exists():
            time.sleep(0.01)
        apply_request(tmp_path, stamp=stamp, load=loaded.append)

    unit = threading.Thread(target=root)
    unit.start()
    HandOff(tmp_path, stamp=stamp, timeout_s=10)(WANTED)
    unit.join()
    assert loaded == [WANTED]
    assert stamp.read_text().strip() == digest(WANTED)
    assert (tmp_path / REQUEST).stat().st_mode & 0o777 == 0o644


def test_no_confirmation_in_time_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="did not load the change within 1 s"):
        HandOff(tmp_path, stamp=tmp_path / "never", timeout_s=1)(WANTED)


def test_an_old_confirmation_is_not_this_one(tmp_path: Path) -> None:
    stamp = tmp_path / "stamp"
    stamp.write_text(digest(firewall.Entries()) + "\n")
    with pytest.raises(ActionFailed):
        HandOff(tmp_path, stamp=stamp, timeout_s=0.5)(WANTED)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"blocked": ["127.0.0.3; flush ruleset"]}', "not an IP address"),
        (b'{"blocked": ["127.0.0.3"], "rules": "flush ruleset"}', "not a list of entries"),
        (b"not json", "not a list of entries"),
    ],
)
def test_root_loads_nothing_but_addresses(tmp_path: Path, body: bytes, message: str) -> None:
    (tmp_path / REQUEST).parent.mkdir()
    (tmp_path / REQUEST).write_bytes(body)
    loaded: list[firewall.Entries] = []
    with pytest.raises(ActionFailed, match=message):
        apply_request(tmp_path, stamp=tmp_path / "stamp", load=loaded.append)
    assert loaded == [] and not (tmp_path / "stamp").exists()


def test_root_follows_no_link_the_appliance_could_plant(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"blocked": ["127.0.0.7"]}')
    (tmp_path / REQUEST).parent.mkdir()
    os.symlink(secret, tmp_path / REQUEST)
    with pytest.raises(ActionFailed, match="cannot read"):
        apply_request(tmp_path, stamp=tmp_path / "stamp", load=lambda e: None)
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(tmp_path / REQUEST.parent, data / REQUEST.parent)  # the folder a link
    with pytest.raises(ActionFailed, match="cannot read"):
        apply_request(data, stamp=tmp_path / "stamp", load=lambda e: None)


def test_nothing_asked_yet_is_an_empty_table(tmp_path: Path) -> None:
    loaded: list[firewall.Entries] = []
    apply_request(tmp_path, stamp=tmp_path / "stamp", load=loaded.append)
    assert loaded == [firewall.Entries()]

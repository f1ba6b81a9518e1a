"""Actions end to end, as an admin meets them: "block 127.0.0.3" submitted to a running
appliance (in a network namespace this test makes, so its firewall is the namespace's own)
waits for an approval; ``qey approvals approve`` puts the block on the real nftables table,
``qey undo`` takes it off, a rejected one never reaches it, and ``qey actions`` tells the
story. The graph records each step against the executor's task."""

from __future__ import annotations

import json
import subprocess
import time

import msgspec
import pytest

from appliance.actions.store import ActionRecord
from appliance.runtime import Store
from appliance.settings import Settings
from tests.integration.processes import running_appliance
from tests.integration.test_cli import _write_config, qey
from tests.support import new_network_namespace

pytestmark = pytest.mark.integration

IN_NAMESPACE = [*new_network_namespace(), "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def _records(settings: Settings, *args: str) -> list[ActionRecord]:
    run = qey(settings, *args, "--json")
    assert run.returncode == 0, run.stderr
    return msgspec.json.decode(run.stdout, type=list[ActionRecord])


def _one(settings: Settings, *args: str) -> ActionRecord:
    run = qey(settings, *args, "--json")
    assert run.returncode == 0, run.stderr
    return msgspec.json.decode(run.stdout, type=ActionRecord)


def _blocked(pid: int) -> list[str]:
    """The addresses in the appliance's namespace's blocked set (none: no table yet)."""
    listed = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "nft", "-j", "list", "set", "inet", "qey_actions",
         "blocked_v4"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    if listed.returncode != 0:
        assert "No such file or directory" in listed.stderr, listed.stderr
        return []
    for item in json.loads(listed.stdout)["nftables"]:
        if "set" in item:
            return [str(e) for e in item["set"].get("elem", [])]
    return []


def _pending(settings: Settings, count: int) -> list[ActionRecord]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = _records(settings, "approvals")
        if len(waiting) >= count:
            return waiting
        time.sleep(0.2)
    raise AssertionError(f"expected {count} pending approvals")


def test_a_block_waits_for_the_admin_then_is_on_the_firewall_until_undone(
    settings: Settings,
) -> None:
    _write_config(settings)
    with running_appliance(settings, prefix=IN_NAMESPACE) as appliance:
        submitted = qey(settings, "submit", "block 127.0.0.3", "--wait", "--json")
        assert submitted.returncode == 0, submitted.stderr
        (pending,) = _pending(settings, 1)
        assert (pending.what, pending.state, pending.approval) == (
            "block 127.0.0.3",
            "pending",
            "admin",
        )
        assert _blocked(appliance.pid) == []  # nothing destructive runs on a guess

        applied = _one(settings, "approvals", "approve", pending.id)
        assert (applied.state, applied.decided_by) == ("applied", "admin (console)")
        assert _blocked(appliance.pid) == ["127.0.0.3"]
        again = qey(settings, "approvals", "approve", pending.id)
        assert again.returncode == 1 and "applied, not pending" in again.stderr

        qey(settings, "submit", "quarantine 127.0.0.4", "--wait")
        (second,) = _pending(settings, 1)
        assert _one(settings, "approvals", "reject", second.id).state == "rejected"

        undone = _one(settings, "undo", pending.id)
        assert undone.state == "undone" and _blocked(appliance.pid) == []
        outside = qey(settings, "submit", "block 10.9.9.9", "--wait")
        assert "outside" in outside.stdout + outside.stderr

        story = [(r.what, r.state) for r in _records(settings, "actions")]
        assert story == [("block 127.0.0.3", "undone"), ("quarantine 127.0.0.4", "rejected")]

    store = Store(settings.db_path)
    try:
        rows = store.read_now(
            lambda db: db.execute(
                "SELECT json_extract(body, '$.state'), json_extract(body, '$.agent_type') "
                "FROM journal WHERE kind = 'action.decided' "
                "AND json_extract(body, '$.action_id') = ? ORDER BY seq",
                [pending.id],
            ).fetchall()
        )
    finally:
        store.close()
    assert rows == [("pending", "executor"), ("applied", "executor"), ("undone", "executor")]


def test_an_approval_nobody_gives_in_time_expires_and_nothing_is_blocked(
    settings: Settings,
) -> None:
    """A deadline passing means not done, recorded: the running appliance's own watch over
    the approvals closes it, and the firewall never sees the host."""
    _write_config(settings)
    config = settings.data_dir / "config.toml"
    config.write_text(config.read_text() + "admin_deadline_s = 1.5\n")
    with running_appliance(settings, prefix=IN_NAMESPACE) as appliance:
        qey(settings, "submit", "block 127.0.0.5", "--wait")
        (pending,) = _pending(settings, 1)
        deadline = time.monotonic() + 30
        while (record := _records(settings, "actions")[0]).state == "pending":
            assert time.monotonic() < deadline, "the approval never expired"
            time.sleep(0.3)
        assert (record.id, record.state) == (pending.id, "expired")
        assert _blocked(appliance.pid) == []
        late = qey(settings, "approvals", "approve", pending.id)
        assert late.returncode == 1 and "expired, not pending" in late.stderr

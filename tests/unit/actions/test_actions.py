"""Actions from request to effect: what runs at once, what waits for an admin, who decides,
the deadline, undo, idempotence, the scope, and the graph's record of each step. The
firewall loader is the edge here (the table it would load is captured); the real nft is
tested in tests/integration/test_action_firewall.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.actions import firewall
from appliance.actions.model import (
    AllowList,
    Block,
    Notify,
    Quarantine,
    Revoke,
    decode_action,
    encode_action,
)
from appliance.actions.service import Actions, expire_approvals
from appliance.errors import ActionFailed, ActionNotAllowed, OutOfScope, UnknownAction
from appliance.events import ActionDecided
from appliance.runtime import FakeClock, Store
from appliance.scope import Scope

pytestmark = pytest.mark.unit

ASKED = {"job_id": "job-1", "task_id": "t-1"}


class Loaded:
    """The tables the service asked the firewall to load, in order; fails when told to."""

    def __init__(self) -> None:
        self.tables: list[firewall.Entries] = []
        self.fail: str | None = None

    def __call__(self, entries: firewall.Entries) -> None:
        if self.fail:
            raise ActionFailed(self.fail)
        self.tables.append(entries)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "qey.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def loaded() -> Loaded:
    return Loaded()


@pytest.fixture
def recorded() -> list[ActionDecided]:
    return []


@pytest.fixture
def actions(
    store: Store, clock: FakeClock, loaded: Loaded, recorded: list[ActionDecided]
) -> Actions:
    return Actions(
        store,
        clock,
        Scope(["127.0.0.0/24"]),
        record=recorded.append,
        load_firewall=loaded,
        deadline_s=60,
    )


def test_a_block_waits_for_an_admin_and_then_blocks(
    actions: Actions, loaded: Loaded, recorded: list[ActionDecided]
) -> None:
    pending = actions.request(Block(address="127.0.0.3", reason="telnet open"), **ASKED)
    assert (pending.state, pending.approval, pending.destructive) == ("pending", "admin", True)
    assert loaded.tables == []  # nothing destructive runs on a guess
    applied = actions.approve(pending.id, by="admin")
    assert (applied.state, applied.decided_by) == ("applied", "admin")
    assert loaded.tables == [firewall.Entries(blocked=("127.0.0.3",))]
    assert [(r.state, r.decided_by, r.task_id) for r in recorded] == [
        ("pending", "", "t-1"),
        ("applied", "admin", "t-1"),
    ]


def test_a_rejected_block_does_nothing_and_says_who_said_no(
    actions: Actions, loaded: Loaded
) -> None:
    pending = actions.request(Quarantine(address="127.0.0.4"), **ASKED)
    rejected = actions.reject(pending.id, by="admin", why="it is the printer")
    assert (rejected.state, rejected.detail) == ("rejected", "it is the printer")
    assert loaded.tables == []
    with pytest.raises(ActionNotAllowed, match="rejected, not pending"):
        actions.approve(pending.id)


async def test_a_deadline_passing_means_not_done(
    actions: Actions, clock: FakeClock, loaded: Loaded, recorded: list[ActionDecided]
) -> None:
    pending = actions.request(Block(address="127.0.0.3"), **ASKED)
    watcher = asyncio.create_task(expire_approvals(actions, clock, every_s=5))
    try:
        await clock.advance(30)
        assert actions.log.get(pending.id).state == "pending"
        for _ in range(500):  # five seconds a step; each expiry runs in a thread
            await clock.advance(5)
            if actions.log.get(pending.id).state != "pending":
                break
            await asyncio.sleep(0.02)
        assert clock.now() - pending.requested_at >= 60  # not before its deadline
    finally:
        watcher.cancel()
    expired = actions.log.get(pending.id)
    assert (expired.state, expired.decided_by) == ("expired", "deadline")
    assert loaded.tables == [] and recorded[-1].state == "expired"
    with pytest.raises(ActionNotAllowed):
        actions.approve(pending.id)  # too late


def test_what_changes_nothing_runs_at_once(actions: Actions, loaded: Loaded) -> None:
    shown: list[str] = []
    actions.show_on_display = shown.append
    note = actions.request(Notify(message="telnet is open on 127.0.0.3"), **ASKED)
    assert (note.state, note.decided_by) == ("applied", "policy: not destructive")
    assert shown == ["telnet is open on 127.0.0.3"]
    allowed = actions.request(AllowList(address="127.0.0.9"), **ASKED)
    assert allowed.state == "applied"
    assert loaded.tables[-1] == firewall.Entries(allowed=("127.0.0.9",))


def test_the_same_action_twice_is_one_action(actions: Actions, loaded: Loaded) -> None:
    first = actions.request(Block(address="127.0.0.3"), **ASKED)
    assert actions.request(Block(address="127.0.0.3"), **ASKED).id == first.id
    actions.approve(first.id)
    again = actions.request(Block(address="127.0.0.3"), job_id="job-2", task_id="t-9")
    assert again.id == first.id and again.state == "applied"
    assert len(loaded.tables) == 1


def test_an_allow_listed_host_is_not_blocked_until_its_entry_is_revoked(
    actions: Actions, loaded: Loaded
) -> None:
    actions.request(AllowList(address="127.0.0.3"), **ASKED)
    with pytest.raises(ActionNotAllowed, match="allow list: revoke"):
        actions.request(Block(address="127.0.0.3"), **ASKED)
    revoke = actions.request(Revoke(address="127.0.0.3"), **ASKED)
    assert revoke.state == "pending"  # taking an exemption back is destructive
    actions.approve(revoke.id)
    assert loaded.tables[-1] == firewall.Entries()
    block = actions.request(Block(address="127.0.0.3"), **ASKED)
    actions.approve(block.id)
    assert loaded.tables[-1] == firewall.Entries(blocked=("127.0.0.3",))


def test_undo_takes_a_block_back_and_a_notice_cannot_be(
    actions: Actions, loaded: Loaded, recorded: list[ActionDecided]
) -> None:
    block = actions.request(Block(address="127.0.0.3"), **ASKED)
    actions.approve(block.id)
    undone = actions.undo(block.id, by="admin")
    assert undone.state == "undone" and loaded.tables[-1] == firewall.Entries()
    assert recorded[-1].state == "undone"
    note = actions.request(Notify(message="hello"), **ASKED)
    with pytest.raises(ActionNotAllowed, match="cannot be undone"):
        actions.undo(note.id)
    with pytest.raises(ActionNotAllowed, match="undone, not applied"):
        actions.undo(block.id)
    with pytest.raises(UnknownAction):
        actions.undo("act-00000000")


def test_a_target_outside_the_scope_is_refused_before_anything(actions: Actions) -> None:
    with pytest.raises(OutOfScope):
        actions.request(Block(address="10.1.2.3"), **ASKED)
    assert actions.log.records() == []


def test_a_firewall_that_refuses_leaves_the_action_failed_saying_why(
    actions: Actions, loaded: Loaded, recorded: list[ActionDecided]
) -> None:
    block = actions.request(Block(address="127.0.0.3"), **ASKED)
    loaded.fail = "this process may not change the firewall (CAP_NET_ADMIN)"
    with pytest.raises(ActionFailed):
        actions.approve(block.id)
    failed = actions.log.get(block.id)
    assert failed.state == "failed" and "CAP_NET_ADMIN" in failed.detail
    assert recorded[-1].state == "failed"


def test_a_restart_loads_the_same_firewall_again(
    store: Store, clock: FakeClock, loaded: Loaded, recorded: list[ActionDecided], actions: Actions
) -> None:
    for address in ("127.0.0.3", "127.0.0.5"):
        actions.approve(actions.request(Block(address=address), **ASKED).id)
    actions.approve(actions.request(Quarantine(address="127.0.0.7"), **ASKED).id)
    after = Loaded()
    Actions(
        store, clock, Scope(["127.0.0.0/24"]), record=recorded.append, load_firewall=after
    ).restore()
    assert after.tables == [
        firewall.Entries(blocked=("127.0.0.3", "127.0.0.5"), quarantined=("127.0.0.7",))
    ]


def test_actions_round_trip_with_their_tag() -> None:
    for action in (
        Block(address="127.0.0.3", reason="r"),
        Notify(message="m", channels=("journal",)),
    ):
        assert decode_action(encode_action(action)) == action
    assert b'"action":"quarantine"' in encode_action(Quarantine(address="::1"))


def test_the_ruleset_names_every_set_and_exempts_first() -> None:
    rules = firewall.ruleset(firewall.Entries(blocked=("127.0.0.3", "::5"), allowed=("127.0.0.9",)))
    assert "set blocked_v4 { type ipv4_addr; elements = { 127.0.0.3 }; }" in rules
    assert "set blocked_v6 { type ipv6_addr; elements = { ::5 }; }" in rules
    input_chain = rules.split("chain input")[1]
    assert input_chain.index("@allowed_v4 accept") < input_chain.index("@blocked_v4 drop")
    assert "qey_egress" not in rules  # the egress policy's table is not ours to touch


def test_the_display_shows_what_waits_for_an_approval(actions: Actions) -> None:
    shown: list[str] = []
    actions.show_on_display = shown.append
    first = actions.request(Block(address="127.0.0.3"), **ASKED)
    actions.request(Quarantine(address="127.0.0.4"), **ASKED)
    assert shown[-1] == "approve? block 127.0.0.3 (+1)"
    actions.approve(first.id)
    assert shown[-1] == "approve? quarantine 127.0.0.4"
    actions.reject(actions.records(("pending",))[0].id)
    assert shown[-1] == ""

"""The executor's reading of a command into actions: the verb, the hosts, and the refusals
that say what to do instead."""

from __future__ import annotations

import pytest

from appliance.actions.model import AllowList, Block, Notify, Quarantine, Revoke, Ticket
from appliance.agents.acting import actions_for, addresses_in
from appliance.agents.messages import Finding
from appliance.errors import BadCommand

pytestmark = pytest.mark.unit

TELNET = Finding(
    host="127.0.0.3",
    port=23,
    service="telnet",
    severity="critical",
    title="telnet open",
    advice="x",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("block 127.0.0.3", [Block(address="127.0.0.3", reason="block 127.0.0.3")]),
        (
            "isolate 127.0.0.4 now",
            [Quarantine(address="127.0.0.4", reason="isolate 127.0.0.4 now")],
        ),
        ("whitelist 127.0.0.9", [AllowList(address="127.0.0.9", reason="whitelist 127.0.0.9")]),
        (
            "remove 127.0.0.9 from the allow list",
            [Revoke(address="127.0.0.9", reason="remove 127.0.0.9 from the allow list")],
        ),
        (
            "revoke the allow-list entry of 127.0.0.9",
            [Revoke(address="127.0.0.9", reason="revoke the allow-list entry of 127.0.0.9")],
        ),
    ],
)
def test_the_verb_picks_the_action_and_the_text_the_host(text: str, expected: list[object]) -> None:
    assert actions_for(text, [a.split("/")[0] for a in addresses_in(text)], []) == expected


def test_with_no_host_named_the_findings_name_them() -> None:
    assert actions_for("block it", [], [TELNET]) == [
        Block(address="127.0.0.3", reason="critical: telnet open")
    ]
    assert actions_for("tell me", [], [TELNET]) == [
        Notify(message="critical: telnet open on 127.0.0.3:23", reason="tell me")
    ]


def test_a_report_entry_is_no_action() -> None:
    assert actions_for("record the findings in the report", [], [TELNET]) is None


@pytest.mark.parametrize(
    ("text", "targets", "message"),
    [
        ("block 127.0.0.0/24", ["127.0.0.0/24"], r"network of 256 addresses"),
        ("quarantine it", [], r"names nobody to quarantine"),
        ("unblock 127.0.0.3", ["127.0.0.3"], r"qey undo"),
    ],
)
def test_what_it_cannot_do_is_refused_saying_what_to_do(
    text: str, targets: list[str], message: str
) -> None:
    with pytest.raises(BadCommand, match=message):
        actions_for(text, targets, [])


def test_a_ticket_per_finding_or_one_for_the_sentence() -> None:
    (ticket,) = actions_for("open a ticket for it", [], [TELNET])
    assert isinstance(ticket, Ticket) and ticket.about == "127.0.0.3"
    assert ticket.title == "critical: telnet open on 127.0.0.3:23"
    (alone,) = actions_for("raise a ticket about the printer", [], [])
    assert isinstance(alone, Ticket) and alone.title == "raise a ticket about the printer"


def test_with_neither_targets_nor_findings_the_hosts_seen_before() -> None:
    assert actions_for("quarantine it", [], [], ["127.0.0.3"]) == [
        Quarantine(address="127.0.0.3", reason="quarantine it")
    ]

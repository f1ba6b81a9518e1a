from __future__ import annotations

import pytest

from appliance.router.structure import clauses_of, is_sequenced, shape_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("command", "shape"),
    [
        ("scan 127.0.0.1 every night at 2am", "scheduled"),
        ("schedule a daily scan of 10.0.0.0/24", "scheduled"),
        ("at 23:30 audit the lab", "scheduled"),
        ("if port 23 is open, record it", "conditional"),
        ("scan 10.0.0.9 and if so analyze the risk", "conditional"),
        ("unless the scan finds nothing, write a report", "conditional"),
        ("check if anything is listening on port 3306", None),  # a question, not a condition
        ("test if port 3389 is open on 10.1.1.1", None),
        ("scan 127.0.0.1 for open ports", None),
        # a question that opens with "when" asks for a time; it sets no condition
        ("when does the ssl cert of 127.0.0.1 expire", None),
        ("when was port 22 last open on the nas", None),
        ("when the scan of 127.0.0.1 finishes, analyze it", "conditional"),
        # "repeat" once is a rescan; only a repetition in time is a schedule
        ("repeat the port scan of the nvr", None),
        ("repeat the audit every week", "scheduled"),
    ],
)
def test_schedules_and_conditions_are_recognised(command: str, shape: str | None) -> None:
    assert shape_of(command) == shape


@pytest.mark.parametrize(
    ("command", "clauses"),
    [
        ("scan the network then write a report", ["scan the network", "write a report"]),
        (
            "scan all hosts, analyze the findings and report the critical ones",
            ["scan all hosts", "analyze the findings", "report the critical ones"],
        ),
        ("analyze ports 22, 80 and 443 on 10.0.0.80", ["analyze ports 22"]),
        ("scan 127.0.0.1", ["scan 127.0.0.1"]),
    ],
)
def test_commands_split_into_clauses_that_start_with_a_word(
    command: str, clauses: list[str]
) -> None:
    assert clauses_of(command) == clauses


@pytest.mark.parametrize(
    ("command", "sequenced"),
    [
        ("first discover the hosts, then scan them", True),
        ("scan 127.0.0.1 and then analyze the results", True),
        ("scan the hosts; after that, rate the findings", True),
        ("discover hosts and open ports on 127.0.0.0/29", False),
        ("scan ports 22, 80 and 443 on 127.0.0.1", False),
        ("which hosts are up on the lab network", False),
    ],
)
def test_ordered_steps_are_told_from_lists(command: str, sequenced: bool) -> None:
    assert is_sequenced(command) is sequenced

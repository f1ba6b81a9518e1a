"""The planner's grammar on generated commands: any text is a plan's parts or a clear
refusal (an ApplianceError), never a crash."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.agents import BUILTIN_TYPES
from appliance.errors import ApplianceError
from appliance.planner.planner import Planner
from appliance.router import RouteDecision
from appliance.scope import Scope

pytestmark = pytest.mark.property

WORDS = [
    "scan",
    "then",
    "if",
    "and",
    ",",
    ";",
    "port",
    "ports",
    "22",
    "23-25",
    "127.0.0.1",
    "10.0.0.1",
    "::1",
    "unless",
    "only",
    "critical",
    "ones",
    "every",
    "hour",
    "at",
    "02:00",
    "first",
    "after",
    "that",
    "the",
    "results",
    "from",
    "this",
    "morning",
    "yesterday",
    "last",
    "week",
    "compared",
    "with",
    "in",
    "parallel",
    "record",
    "it",
    "tell",
    "me",
    "1.2.3.4-5",
    "localhost",
    "nas.lan",
    "999999",
    "-",
    "/",
    ":",
    "x@y.com",
    "when",
    "is",
    "open",
    "closed",
    "nothing",
    "anything",
]


async def _never(_clauses: object) -> list[RouteDecision]:
    raise AssertionError("parse does not route")


PLANNER = Planner(
    _never,
    threshold=0.4,
    agent_class={cls.name: cls for cls in BUILTIN_TYPES}.__getitem__,
    check_target=Scope(["127.0.0.0/8"]).check,
    now=lambda: datetime(2026, 11, 29, 20, 0),
)


@given(st.lists(st.sampled_from(WORDS), max_size=16) | st.lists(st.text(max_size=12)))
def test_any_command_parses_or_is_refused_clearly(words: list[str]) -> None:
    text = " ".join(" ".join(words).split())
    try:
        parsed = PLANNER.parse(text)
    except ApplianceError:
        return
    assert all(p.clause.text for p in parsed.clauses)

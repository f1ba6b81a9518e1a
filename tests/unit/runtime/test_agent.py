from __future__ import annotations

import msgspec
import pytest

from appliance.events import Started
from appliance.runtime import Agent, Context, accepted_kinds
from tests.support import Add, Counter, Get

pytestmark = pytest.mark.unit


def test_handlers_are_discovered_from_type_hints() -> None:
    assert Counter.handlers[Add] is Counter.on_add
    assert "test.get" in accepted_kinds(Counter)


def test_a_union_annotation_handles_each_member() -> None:
    class Both(Agent):
        name = "both"
        description = "either"

        async def on_either(self, event: Add | Get, ctx: Context[msgspec.Struct]) -> None:
            pass

    assert set(Both.handlers) == {Add, Get}


def test_two_handlers_for_one_event_type_are_refused() -> None:
    with pytest.raises(TypeError, match="both"):

        class Twice(Agent):
            name = "twice"
            description = "ambiguous"

            async def one(self, event: Started, ctx: Context[msgspec.Struct]) -> None:
                pass

            async def two(self, event: Started, ctx: Context[msgspec.Struct]) -> None:
                pass


def test_an_agent_type_must_name_and_describe_itself() -> None:
    with pytest.raises(TypeError, match="description"):

        class Nameless(Agent):
            name = "nameless"

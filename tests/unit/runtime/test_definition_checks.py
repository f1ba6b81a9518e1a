"""Mistakes in an agent type are refused where they are made, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.runtime import Agent, Context, NoState, Runtime, Store
from appliance.runtime.agent import DuplicateAgentType
from tests.support import Add

pytestmark = pytest.mark.unit


def test_a_public_async_method_without_an_event_annotation_is_refused() -> None:
    with pytest.raises(TypeError) as err:

        class Checker(Agent):
            name = "checker"
            description = "checks"

            async def on_check(self, event, ctx: Context[NoState]) -> None:  # type: ignore[no-untyped-def]
                pass

    message = str(err.value)
    assert "Checker" in message and "on_check()" in message
    assert "annotate" in message and "_on_check" in message


def test_a_handler_annotated_with_a_non_event_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"on_text\(\).*not annotated with an Event subclass"):

        class Texts(Agent):
            name = "texts"
            description = "takes text"

            async def on_text(self, event: str, ctx: Context[NoState]) -> None:
                pass


def test_a_private_async_helper_is_not_a_handler() -> None:
    class Helped(Agent):
        name = "helped"
        description = "has a helper"

        async def on_add(self, event: Add, ctx: Context[NoState]) -> None:
            await self._helper("x")

        async def _helper(self, text: str) -> None:
            pass

    assert set(Helped.handlers) == {Add}


def test_a_duplicate_type_name_is_refused_at_registration_naming_both(tmp_path: Path) -> None:
    class First(Agent):
        name = "twin"
        description = "the first"

    class Second(Agent):
        name = "twin"
        description = "the second"

    runtime = Runtime(Store(tmp_path / "qey.db"))
    runtime.register(First)
    with pytest.raises(DuplicateAgentType) as err:
        runtime.register(Second)
    message = str(err.value)
    assert "Second" in message and "First" in message and "'twin'" in message
    assert "name of its own" in message
    assert isinstance(err.value, TypeError)
    assert [cls.name for cls in runtime.agent_types] == ["twin"]
    assert runtime.agent_class("twin") is First

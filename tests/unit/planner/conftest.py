from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.planner.planner import Planner
from appliance.router import RouteDecision, Router
from appliance.runtime import Agent
from appliance.scope import Scope

NOW = datetime(2026, 11, 29, 20, 0)


@pytest.fixture(scope="module")
def router() -> Router:
    """The real model, loaded once per module, with the built-in agent types."""
    r = Router()
    for cls in BUILTIN_TYPES:
        r.add_type(cls)
    return r


@pytest.fixture
def types() -> dict[str, type[Agent]]:
    return {cls.name: cls for cls in BUILTIN_TYPES}


def make_planner(
    router: Router,
    types: dict[str, type[Agent]],
    scope: Scope,
    names: dict[str, str] | None = None,
) -> Planner:
    """The planner on the real router, ``scope`` and a fixed local time."""

    async def route_many(clauses: Sequence[str]) -> list[RouteDecision]:
        return await asyncio.to_thread(router.route_many, clauses) if clauses else []

    return Planner(
        route_many,
        threshold=router.settings.threshold,
        agent_class=types.__getitem__,
        check_target=scope.check,
        now=lambda: NOW,
        names=names,
    )


@pytest.fixture
def planner(router: Router, types: dict[str, type[Agent]]) -> Planner:
    """The planner with a loopback scope."""
    return make_planner(router, types, Scope(["127.0.0.0/8"]))

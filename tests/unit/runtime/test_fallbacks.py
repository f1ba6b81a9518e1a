"""A root task whose handler refuses its command hands it to the next candidate type."""

from __future__ import annotations

import asyncio

import pytest

from appliance.errors import BadCommand
from appliance.events import Started
from appliance.runtime import Agent, Context, NoState, Runtime
from appliance.supervisor import Supervisor

pytestmark = pytest.mark.unit


@pytest.fixture
def supervised(runtime: Runtime) -> Runtime:
    """The appliance's policy: bad input is a refusal, not a crash."""
    Supervisor(runtime)
    runtime.register(Picky)
    return runtime


class Picky(Agent):
    """Parses nothing up front, then refuses at run time (like an analysis of a host that
    was never scanned)."""

    name = "picky"
    description = "refuses every command in its handler"

    async def on_start(self, event: Started, ctx: Context[NoState]) -> str:
        raise BadCommand(f"picky can't do {event.objective!r}")


async def test_a_refused_root_is_handed_to_the_next_candidate(supervised: Runtime) -> None:
    runtime = supervised
    job, root = runtime.submit("hello", "picky", fallbacks=["picky", "echo"])
    async with asyncio.timeout(5):
        outcome = await runtime.wait_task(root)
    await runtime.commit()
    tree = await runtime.graph.tree(job.job_id)
    assert (outcome.status, outcome.result) == ("done", "HELLO")
    assert "echo took it after picky refused it" in outcome.detail
    kids = tree.children()
    assert [n.agent_type for n in kids[root.task_id]] == ["picky"]  # the second picky refused
    second = kids[root.task_id][0]
    assert [n.agent_type for n in kids[second.task_id]] == ["echo"]


async def test_with_no_candidate_left_the_refusal_stands(supervised: Runtime) -> None:
    runtime = supervised
    _, root = runtime.submit("hello", "picky", fallbacks=["picky"])
    async with asyncio.timeout(5):
        outcome = await runtime.wait_task(root)
    assert outcome.status == "failed"
    assert "picky took it after picky refused it" in outcome.detail
    assert "refused: BadCommand: picky can't do 'hello'" in outcome.detail

"""An agent type marked ``internal`` runs only when the appliance starts it: ``submit`` (what
every edge calls) refuses it, ``start_internal`` starts it, and a client may send none of the
events only internal types take."""

from __future__ import annotations

import msgspec
import pytest

from appliance.errors import EventNotAllowed, InternalAgentType
from appliance.events import Envelope, Event, JobContext, TopicRef
from appliance.runtime import Agent, Context, Runtime
from tests.support import Add, Get

pytestmark = pytest.mark.unit


class Tick(Event, frozen=True, tag="test.tick"):
    """What only the appliance itself sends (as the hardware layer sends device events)."""


class Ticker(Agent):
    name = "ticker"
    description = "the appliance's own: counts ticks"
    topics = ("ticks",)
    internal = True

    async def on_tick(self, event: Tick, ctx: Context[msgspec.Struct]) -> None:
        pass

    async def on_add(self, event: Add, ctx: Context[msgspec.Struct]) -> None:
        pass


async def test_submit_refuses_an_internal_type_and_records_nothing(runtime: Runtime) -> None:
    runtime.register(Ticker)
    with pytest.raises(InternalAgentType, match=r"'ticker' is internal.*counter, echo, parent"):
        runtime.submit("tick along", "ticker")
    await runtime.commit()
    assert await runtime.graph.jobs() == []
    assert runtime.startable_types() == ["counter", "echo", "parent"]


async def test_the_appliance_starts_its_internal_type_itself(runtime: Runtime) -> None:
    runtime.register(Ticker)
    job, root = runtime.start_internal("tick along", "ticker")
    assert [i.ref for i in runtime.instances("ticker")] == [root]
    tree = await runtime.graph.tree(job.job_id)
    assert tree.autonomous


async def test_a_client_may_not_send_what_only_internal_types_take(
    runtime: Runtime, job: JobContext
) -> None:
    runtime.register(Ticker)
    _job, ticker = runtime.start_internal("tick along", "ticker")
    assert "test.tick" not in runtime.client_kinds() and "test.add" in runtime.client_kinds()
    for target in (TopicRef("ticks"), ticker):
        with pytest.raises(EventNotAllowed, match=r"'test\.tick'.*test\.add"):
            runtime.deliver(Envelope(event=Tick(), job=job, target=target))
    # a kind a client may send, yet addressed to the internal type: refused too
    with pytest.raises(EventNotAllowed, match="ticker"):
        runtime.deliver(Envelope(event=Add(), job=job, target=ticker))
    counter = runtime.spawn("counter", job, "count")
    runtime.deliver(Envelope(event=Add(by=2), job=job, target=counter))
    assert await runtime.wait_idle(5)
    assert runtime.instances("ticker")[0].handled == 0
    assert await runtime.request(counter, Get(), job=job) == 2

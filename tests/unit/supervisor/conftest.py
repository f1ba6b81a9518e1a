from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import msgspec
import pytest

from appliance.errors import ResourceError, TransientError
from appliance.events import Event, Started, VoteCast, VoteRequested
from appliance.runtime import Agent, Context, FakeClock, Runtime, Store, running
from appliance.supervisor import Backoff, ConsensusTracker, ScalingPolicy, Supervisor


class Bump(Event, frozen=True, tag="sup.bump"):
    by: int = 1


class Read(Event, frozen=True, tag="sup.read"):
    pass


class Flaky(Event, frozen=True, tag="sup.flaky"):
    """Fails with a transient error until it has been tried ``fails`` times."""

    key: str
    fails: int


class Corrupt(Event, frozen=True, tag="sup.corrupt"):
    """Changes the state, then dies of a bug: the change must not survive."""


class Reject(Event, frozen=True, tag="sup.reject"):
    pass


class Starve(Event, frozen=True, tag="sup.starve"):
    pass


class Hold(Event, frozen=True, tag="sup.hold"):
    """Waits for the test's gate; counts once it got through."""


class Stubborn(Event, frozen=True, tag="sup.stubborn"):
    """Ignores the first cancellation: only the supervisor's progress check can free it."""


class Tally(msgspec.Struct):
    count: int = 0


ATTEMPTS: dict[str, int] = {}


class _Gate:
    """A gate the tests open; made anew per test, as each test has its own event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def reset(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


GATE = _Gate()


class Worker(Agent):
    name = "worker"
    description = "does work that fails in every way the supervisor knows"
    State = Tally
    handler_timeout_s = 0.3
    max_restarts = 3
    restart_window_s = 60.0
    pool_min = 1
    pool_max = 3

    async def on_bump(self, event: Bump, ctx: Context[Tally]) -> int:
        ctx.state.count += event.by
        return ctx.state.count

    async def on_read(self, event: Read, ctx: Context[Tally]) -> int:
        return ctx.state.count

    async def on_flaky(self, event: Flaky, ctx: Context[Tally]) -> str:
        ATTEMPTS[event.key] = ATTEMPTS.get(event.key, 0) + 1
        if ATTEMPTS[event.key] <= event.fails:
            raise TransientError(f"try {ATTEMPTS[event.key]} failed")
        return "ok"

    async def on_corrupt(self, event: Corrupt, ctx: Context[Tally]) -> None:
        ctx.state.count += 1000
        raise KeyError("a bug")

    async def on_reject(self, event: Reject, ctx: Context[Tally]) -> None:
        raise ValueError("bad input")

    async def on_starve(self, event: Starve, ctx: Context[Tally]) -> None:
        raise ResourceError("no connections left")

    async def on_hold(self, event: Hold, ctx: Context[Tally]) -> None:
        await GATE.wait()
        ctx.state.count += 1

    async def on_stubborn(self, event: Stubborn, ctx: Context[Tally]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()


class Team(Worker):
    name = "team"
    description = "restarts one-for-all"
    restart_strategy = "one_for_all"


class Voter(Agent):
    name = "voter"
    description = "votes yes when its objective says yes, twice when it says twice"

    async def on_start(self, event: Started, ctx: Context[msgspec.Struct]) -> None:
        pass

    async def on_vote(self, event: VoteRequested, ctx: Context[msgspec.Struct]) -> None:
        if "silent" in ctx.objective:
            return
        cast = VoteCast(vote_id=event.vote_id, voter=ctx.task_id, accept="yes" in ctx.objective)
        ctx.publish_nowait(event.tracker, cast)
        if "twice" in ctx.objective:
            ctx.publish_nowait(event.tracker, cast)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def supervised(
    store: Store, fake_clock: FakeClock
) -> AsyncIterator[tuple[Runtime, Supervisor]]:
    ATTEMPTS.clear()
    GATE.reset()
    runtime = Runtime(store, clock=fake_clock)
    for cls in (Worker, Team, Voter, ConsensusTracker):
        runtime.register(cls)
    supervisor = Supervisor(
        runtime,
        backoff=Backoff(base_s=1.0, max_attempts=3, rng=random.Random(7)),
        scaling=ScalingPolicy(window=2, patience=1),
    )
    async with running(runtime, grace_s=0.1):
        yield runtime, supervisor
        GATE.set()

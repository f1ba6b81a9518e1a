"""Request deadlines: one timer per timeout value, answered requests cost nothing, and a
stuck one fails on time however many others were answered behind it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from appliance.errors import RequestTimeout, RuntimeStopped
from appliance.runtime.deadlines import Deadlines

pytestmark = pytest.mark.unit


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def test_an_unanswered_request_fails_at_its_deadline_and_an_answered_one_never() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    stuck, answered = _future(), _future()
    deadlines.watch(stuck, 0.05, "slow")
    deadlines.watch(answered, 0.05, "quick")
    answered.set_result(1)
    with pytest.raises(RequestTimeout, match=r"slow did not reply within 0\.05s"):
        await asyncio.wait_for(stuck, 2)
    assert answered.result() == 1


async def test_each_timeout_value_keeps_its_own_order() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    late, early = _future(), _future()
    deadlines.watch(late, 5.0, "late")  # a long timeout first must not hold up a short one
    deadlines.watch(early, 0.02, "early")
    with pytest.raises(RequestTimeout):
        await asyncio.wait_for(early, 2)
    assert not late.done()
    deadlines.close()
    with pytest.raises(RuntimeStopped, match="before late replied"):
        await late


async def test_answered_requests_behind_a_stuck_one_are_compacted_away() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    stuck = _future()
    deadlines.watch(stuck, 60.0, "stuck")
    for n in range(5000):
        reply = _future()
        deadlines.watch(reply, 60.0, f"r{n}")
        reply.set_result(n)
    waiting = deadlines._waiting[60.0]
    assert len(waiting) <= 1025  # never all 5001: answered ones are dropped as it grows
    assert waiting[0][1] is stuck
    deadlines.close()
    with pytest.raises(RuntimeStopped):
        await stuck

"""The hand-made eager start (runtime/eager.py, for Python below 3.12): a coroutine that ends
without waiting needs no Task; one that waits is driven to its end by ``resume`` with its
values, exceptions and cancellation passing through as under a plain ``await``."""

from __future__ import annotations

import asyncio

import pytest

from appliance.runtime import eager

pytestmark = pytest.mark.unit


async def _no_wait() -> int:
    return 7


async def _waits(gate: asyncio.Future[int]) -> int:
    got = await gate
    return got * 2


async def _catches(gate: asyncio.Future[int]) -> str:
    try:
        await gate
    except ValueError as err:
        return f"caught {err}"
    return "not raised"


async def test_a_coroutine_that_never_waits_finishes_in_its_first_step() -> None:
    assert eager.first_step(_no_wait()) == (True, 7)


async def test_a_waiting_coroutine_resumes_in_a_task_with_the_value_it_waited_for() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro = _waits(gate)
    finished, step = eager.first_step(coro)
    assert not finished
    task = asyncio.ensure_future(eager.resume(coro, step))
    await asyncio.sleep(0)
    gate.set_result(21)
    assert await task == 42


async def test_an_exception_thrown_in_reaches_the_coroutine() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro = _catches(gate)
    _, step = eager.first_step(coro)
    task = asyncio.ensure_future(eager.resume(coro, step))
    await asyncio.sleep(0)
    gate.set_exception(ValueError("no"))
    assert await task == "caught no"


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro = _waits(gate)
    _, step = eager.first_step(coro)
    task = asyncio.ensure_future(eager.resume(coro, step))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled()  # the cancellation reached the await inside the coroutine


async def test_a_fresh_coroutine_runs_from_its_start() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(eager.resume(_waits(gate), eager.FRESH))
    await asyncio.sleep(0)
    gate.set_result(5)
    assert await task == 10


async def test_an_error_in_the_first_step_is_raised_by_it() -> None:
    async def broken() -> None:
        raise KeyError("first")

    with pytest.raises(KeyError, match="first"):
        eager.first_step(broken())

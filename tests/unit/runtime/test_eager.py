"""The hand-made eager start (runtime/eager.py, for Python below 3.12): a coroutine that ends
without waiting needs no Task; one that waits is driven to its end from what ``detach``
returns, with its values, exceptions and cancellation passing through as under a plain
``await``; the starter goes on with the next coroutine either way."""

from __future__ import annotations

import asyncio

import pytest

from appliance.runtime import eager

pytestmark = pytest.mark.unit


async def _returns(value: int) -> int:
    return value


async def _waits(gate: asyncio.Future[int]) -> int:
    got = await gate
    return got * 2


async def _catches(gate: asyncio.Future[int]) -> str:
    try:
        await gate
    except ValueError as err:
        return f"caught {err}"
    return "not raised"


async def test_coroutines_that_never_wait_finish_in_their_first_step_one_after_another() -> None:
    starter = eager.Starter()
    for value in (7, 8, 9):
        assert starter.send(_returns(value)) is eager.DONE
        assert starter.box[0] == value


async def test_a_waiting_coroutine_resumes_in_a_task_with_the_value_it_waited_for() -> None:
    starter = eager.Starter()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    step = starter.send(_waits(gate))
    assert step is gate
    task = asyncio.ensure_future(starter.detach(step))
    # the starter runs the next coroutine while the first still waits
    assert starter.send(_returns(3)) is eager.DONE
    assert starter.box[0] == 3
    await asyncio.sleep(0)
    gate.set_result(21)
    assert await task == 42
    assert starter.box[0] == 3  # the detached handler's result went to its own task


async def test_an_exception_thrown_in_reaches_the_coroutine() -> None:
    starter = eager.Starter()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(starter.detach(starter.send(_catches(gate))))
    await asyncio.sleep(0)
    gate.set_exception(ValueError("no"))
    assert await task == "caught no"


async def test_an_error_after_the_wait_is_raised_by_the_task() -> None:
    async def fails_later(gate: asyncio.Future[int]) -> None:
        await gate
        raise KeyError("later")

    starter = eager.Starter()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(starter.detach(starter.send(fails_later(gate))))
    await asyncio.sleep(0)
    gate.set_result(1)
    with pytest.raises(KeyError, match="later"):
        await task


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    starter = eager.Starter()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(starter.detach(starter.send(_waits(gate))))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled()  # the cancellation reached the await inside the coroutine


async def test_an_error_in_the_first_step_is_raised_by_send_and_renew_starts_again() -> None:
    async def broken() -> None:
        raise KeyError("first")

    starter = eager.Starter()
    with pytest.raises(KeyError, match="first"):
        starter.send(broken())
    starter.renew()
    assert starter.send(_returns(5)) is eager.DONE
    assert starter.box[0] == 5

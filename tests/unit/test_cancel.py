"""Stopping tasks for good (``runtime/cancel.py``), against the lost cancellation it is for."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import pytest

from appliance.runtime.cancel import cancel_and_wait


def swallowing(answer: asyncio.Future[str]) -> asyncio.Task[None]:
    """A task like the fleet link's graph sender: it awaits through ``asyncio.wait_for`` (as
    the NATS client does), then goes back to waiting for more work."""

    async def sender() -> None:
        while True:
            await asyncio.wait_for(answer, 10)
            await asyncio.Event().wait()  # nothing more to send: waits for more

    return asyncio.create_task(sender())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's wait_for loses no cancellation")
async def test_python_3_11_loses_a_cancellation_arriving_with_wait_fors_answer() -> None:
    """What ``cancel_and_wait`` is for (python/cpython#86296): cancelled once, the task
    carries on. If this test fails, the Python running it no longer has the bug."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = swallowing(answer)
    await asyncio.sleep(0)  # into wait_for
    answer.set_result("the broker's reply")
    task.cancel()  # in the same turn as the answer
    await asyncio.sleep(0.05)
    assert not task.done() and task.cancelling() == 1  # cancelled, and running all the same
    await cancel_and_wait([task], again_s=0.01)


async def test_a_task_that_carried_on_after_its_cancellation_is_cancelled_again() -> None:
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = swallowing(answer)
    await asyncio.sleep(0)
    answer.set_result("the broker's reply")
    async with asyncio.timeout(5):  # asyncio.gather after one cancel waits here for ever
        await cancel_and_wait([task], again_s=0.01)
    assert task.cancelled()


async def test_a_task_that_ends_when_cancelled_is_cancelled_once_and_its_error_kept_quiet() -> None:
    cancels: list[int] = []

    async def polite() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancels.append(1)
            raise

    async def failing() -> None:
        raise ValueError("failed before it was stopped")

    unheard: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unheard.append(context))
    try:
        tasks = [asyncio.create_task(polite()), asyncio.create_task(failing())]
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await cancel_and_wait(tasks, again_s=0.01)
        assert cancels == [1]
        assert tasks[0].cancelled() and isinstance(tasks[1].exception(), ValueError)
        del tasks
        gc.collect()  # a task whose error nobody retrieved says so when it goes
        assert unheard == []
    finally:
        loop.set_exception_handler(None)


async def test_nothing_to_stop_returns_at_once() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    async with asyncio.timeout(1):
        await cancel_and_wait([])
        await cancel_and_wait([done])

"""The status LED service: the runtime's state, shown on the board profile's mock pins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from appliance.events import JobContext
from appliance.hal.board import BoardProfile
from appliance.hal.leds import GpioStatusLeds
from appliance.hal.status import StatusLedService, UpdatePhase
from appliance.runtime import FakeClock, Runtime, Store, running
from tests.support import Counter, Crash, Pause

pytestmark = pytest.mark.unit


async def wait_for(condition: Callable[[], bool], clock: FakeClock, step: float = 0.2) -> None:
    """Tick the fake clock until ``condition`` holds, under a real deadline."""
    async with asyncio.timeout(3):
        while not condition():
            await clock.advance(step)
            await asyncio.sleep(0)


async def test_leds_go_booting_ready_error_ready(
    runtime: Runtime, leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any, job: JobContext
) -> None:
    clock = FakeClock()
    red = pin_factory.pin(board.leds.status.red)
    service = StatusLedService(runtime, leds, clock=clock, error_hold_s=5.0)
    assert service.state == "booting"
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        await wait_for(lambda: service.state == "ready", clock)
        ref = runtime.spawn("counter", job, "count")
        runtime.publish_nowait(ref, Crash(), job=job)
        await wait_for(lambda: service.state == "error", clock)
        assert red.state == 1 or any(s.state for s in red.states)
        await clock.advance(5.0)
        await wait_for(lambda: service.state == "ready", clock)
        task.cancel()
    assert all(pin_factory.pin(p).state == 0 for p in board.leds.all)


async def test_busy_while_a_handler_runs_with_load_from_live_tasks(
    store: Store, leds: GpioStatusLeds, job: JobContext
) -> None:
    gate = asyncio.Event()
    runtime = Runtime(store)
    runtime.register(Counter, lambda: Counter(gate))
    clock = FakeClock()
    service = StatusLedService(runtime, leds, clock=clock)
    async with running(runtime), asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        await wait_for(lambda: service.state == "ready", clock)
        for i in range(3):
            runtime.publish_nowait(runtime.spawn("counter", job, f"c{i}"), Pause(), job=job)
        await wait_for(lambda: service.state == "busy", clock)
        assert service.load == 3
        gate.set()
        await wait_for(lambda: service.state == "ready", clock)
        task.cancel()


async def test_an_update_being_installed_wins_over_everything_and_a_tried_one_over_ready(
    runtime: Runtime, leds: GpioStatusLeds
) -> None:
    clock = FakeClock()
    phase: list[UpdatePhase | None] = ["installing"]
    service = StatusLedService(
        runtime, leds, clock=clock, error_hold_s=5.0, update_phase=lambda: phase[0]
    )
    runtime.fail_type("counter", "restarted too often")
    assert service.decide() == "updating"  # over an error: the device is being rewritten
    phase[0] = "trying"
    assert service.decide() == "updating", "asked once a second, not at every tick"
    await clock.advance(1.0)
    assert service.decide() == "error", "an error says more than an update on trial"
    runtime.reset_type("counter")
    assert service.decide() == "trying"
    phase[0] = None
    await clock.advance(1.0)
    assert service.decide() == "ready"


async def test_an_unreadable_update_record_leaves_the_leds_going(
    runtime: Runtime, leds: GpioStatusLeds
) -> None:
    def unreadable() -> UpdatePhase | None:
        raise PermissionError("/data/qey/update.json")

    service = StatusLedService(runtime, leds, clock=FakeClock(), update_phase=unreadable)
    assert service.decide() == "ready"


async def test_a_type_the_supervisor_gave_up_on_keeps_the_leds_on_error(
    runtime: Runtime, leds: GpioStatusLeds
) -> None:
    clock = FakeClock()
    service = StatusLedService(runtime, leds, clock=clock, error_hold_s=1.0)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        await wait_for(lambda: service.state == "ready", clock)
        runtime.fail_type("counter", "restarted too often")
        await wait_for(lambda: service.state == "error", clock)
        await clock.advance(30)  # long past any crash's hold: still an error
        assert service.state == "error"
        runtime.reset_type("counter")
        await wait_for(lambda: service.state == "ready", clock)
        task.cancel()


def test_a_restarted_task_still_counts_as_live(runtime: Runtime, leds: GpioStatusLeds) -> None:
    from appliance.events import TaskSpawned, TaskStatusChanged

    service = StatusLedService(runtime, leds, clock=FakeClock())
    service.note(TaskSpawned(job_id="j", task_id="t", agent_type="a", objective="o"))
    service.note(TaskStatusChanged(job_id="j", task_id="t", agent_type="a", status="restarted"))
    assert service.load == 1
    service.note(TaskStatusChanged(job_id="j", task_id="t", agent_type="a", status="done"))
    assert service.load == 0

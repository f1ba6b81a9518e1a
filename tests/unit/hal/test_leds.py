"""Status LED patterns, asserted on gpiozero's mock pins' state history."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from appliance.hal.board import BoardProfile
from appliance.hal.leds import BUSY_HALF_PERIOD_S, GpioStatusLeds, pattern_for

pytestmark = pytest.mark.unit


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """The blinks run in gpiozero's threads: wait for what they do, under a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def pins(board: BoardProfile, factory: Any) -> dict[str, Any]:
    s = board.leds.status
    return {
        "power": factory.pin(board.leds.power),
        "activity": factory.pin(board.leds.activity),
        "red": factory.pin(s.red),
        "green": factory.pin(s.green),
        "blue": factory.pin(s.blue),
    }


def levels(pin: Any) -> list[float]:
    return [float(s.state) for s in pin.states]


def rising_edges(pin: Any) -> int:
    values = levels(pin)
    return sum(1 for a, b in itertools.pairwise(values) if a < 0.5 <= b)


def test_ready_is_steady_green_with_power_on(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    p = pins(board, pin_factory)
    leds.show("ready")
    assert p["power"].state == 1 and p["green"].state == 1
    assert p["red"].state == 0 and p["blue"].state == 0 and p["activity"].state == 0
    assert levels(p["green"]) == [0.0, 1.0]


def test_error_blinks_red_only(leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any) -> None:
    p = pins(board, pin_factory)
    leds.show("error")
    wait_until(lambda: rising_edges(p["red"]) >= 2)
    assert max(levels(p["green"])) == 0 and max(levels(p["blue"])) == 0
    assert p["power"].state == 1


def test_booting_pulses_blue_through_intermediate_levels(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    p = pins(board, pin_factory)
    leds.show("booting")
    wait_until(lambda: any(0.2 < v < 0.8 for v in levels(p["blue"])))
    assert max(levels(p["red"])) == 0


def test_updating_pulses_amber(leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any) -> None:
    p = pins(board, pin_factory)
    leds.show("updating")
    wait_until(lambda: max(levels(p["red"])) > 0.9 and max(levels(p["green"])) > 0.4)
    assert max(levels(p["green"])) <= 0.5 + 1e-9 and max(levels(p["blue"])) == 0


def test_trying_a_new_version_blinks_amber_slowly(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    p = pins(board, pin_factory)
    leds.show("trying")
    wait_until(lambda: rising_edges(p["red"]) >= 2, timeout=10)
    assert set(levels(p["red"])) <= {0.0, 1.0}, "on and off, not a pulse"
    assert max(levels(p["green"])) == pytest.approx(0.5) and max(levels(p["blue"])) == 0


def test_showing_the_same_state_again_keeps_the_rhythm(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    p = pins(board, pin_factory)
    leds.show("busy", load=2)
    leds.show("busy", load=3)  # same load level: the same pattern, nothing restarts
    wait_until(lambda: rising_edges(p["activity"]) >= 2)
    before = levels(p["green"])
    leds.show("busy", load=2)
    assert levels(p["green"]) == before == [0.0, 1.0]


def half_periods(leds: GpioStatusLeds, pin: Any, load: int, edges: int) -> float:
    pin.clear_states()
    leds.show("busy", load=load)
    wait_until(lambda: rising_edges(pin) >= edges, timeout=10)
    return statistics.median(s.timestamp for s in pin.states[2:])


def test_busy_blinks_activity_faster_under_more_load(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    activity = pins(board, pin_factory)["activity"]
    slow = half_periods(leds, activity, load=1, edges=3)
    leds.show("ready")
    fast = half_periods(leds, activity, load=100, edges=6)
    assert slow == pytest.approx(BUSY_HALF_PERIOD_S, rel=0.5)
    assert fast < slow / 3  # 8x by the table; thread timing on a busy host needs slack


def test_off_turns_everything_off(
    leds: GpioStatusLeds, board: BoardProfile, pin_factory: Any
) -> None:
    p = pins(board, pin_factory)
    leds.show("error")
    leds.show("off")
    assert all(pin.state == 0 for pin in p.values())


@pytest.mark.parametrize(
    ("load", "half_period"),
    [(0, 0.25), (1, 0.25), (3, 0.25), (4, 0.125), (16, 0.0625), (999, 1 / 32)],
)
def test_busy_rate_doubles_per_load_step(load: int, half_period: float) -> None:
    assert pattern_for("busy", load).activity_half_period_s == pytest.approx(half_period)


def test_only_busy_lights_the_activity_led() -> None:
    states = ("off", "booting", "ready", "busy", "error", "updating", "trying")
    lit = [s for s in states if pattern_for(s, 5).activity_half_period_s > 0]
    assert lit == ["busy"]

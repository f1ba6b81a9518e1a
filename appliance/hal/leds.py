"""The status LEDs: what each appliance state looks like, and gpiozero devices that show it.

The board has three: ``power`` (an LED, on while the appliance runs), ``activity`` (a PWMLED
that blinks faster as load grows) and ``status`` (an RGBLED whose colour and rhythm say the
state). The patterns are data (``PATTERNS``) so what an operator sees is written down in one
place and tested without pins; ``GpioStatusLeds`` only plays them.
"""

from __future__ import annotations

from typing import Literal, Protocol, TypeAlias

import msgspec

from appliance.hal.board import LedPins
from appliance.hal.gpio import PinFactory

LedState: TypeAlias = Literal["off", "booting", "ready", "busy", "error", "updating", "trying"]
Rgb: TypeAlias = tuple[float, float, float]

BLACK: Rgb = (0.0, 0.0, 0.0)
GREEN: Rgb = (0.0, 1.0, 0.0)
BLUE: Rgb = (0.0, 0.0, 1.0)
RED: Rgb = (1.0, 0.0, 0.0)
AMBER: Rgb = (1.0, 0.5, 0.0)

LOAD_STEPS = (1, 4, 16, 64)
"""Load (tasks in flight) at which the activity blink doubles its rate: visible steps, not a
continuous rate the eye cannot read, and few enough that a changing load rarely restarts it."""
BUSY_HALF_PERIOD_S = 0.25


class Pattern(msgspec.Struct, frozen=True):
    """One look of the LEDs. ``mode`` is how ``status`` shows ``color``; ``half_period_s`` is
    the on (and off) time of a blink, or the fade time of a pulse; ``activity_half_period_s``
    is 0 for an activity LED that stays off."""

    power: bool
    color: Rgb
    mode: Literal["solid", "blink", "pulse"] = "solid"
    half_period_s: float = 0.0
    activity_half_period_s: float = 0.0


PATTERNS: dict[LedState, Pattern] = {
    "off": Pattern(power=False, color=BLACK),
    "booting": Pattern(power=True, color=BLUE, mode="pulse", half_period_s=1.0),
    "ready": Pattern(power=True, color=GREEN),
    "busy": Pattern(power=True, color=GREEN, activity_half_period_s=BUSY_HALF_PERIOD_S),
    "error": Pattern(power=True, color=RED, mode="blink", half_period_s=0.25),
    "updating": Pattern(power=True, color=AMBER, mode="pulse", half_period_s=0.5),
    # a new version runs and is not committed yet: amber on and off, slowly, until the
    # health gate commits it (or the device goes back to the old one)
    "trying": Pattern(power=True, color=AMBER, mode="blink", half_period_s=1.0),
}


def load_level(load: int) -> int:
    """0 when idle, then 1..len(LOAD_STEPS) as load passes each step."""
    return sum(1 for step in LOAD_STEPS if load >= step)


def pattern_for(state: LedState, load: int = 0) -> Pattern:
    """The pattern for a state; when busy, the activity blink halves per load level."""
    pattern = PATTERNS[state]
    if state != "busy":
        return pattern
    level = max(load_level(load), 1)
    return msgspec.structs.replace(
        pattern, activity_half_period_s=BUSY_HALF_PERIOD_S / 2 ** (level - 1)
    )


class StatusLeds(Protocol):
    """Shows the appliance's state on whatever LEDs the board has."""

    def show(self, state: LedState, load: int = 0) -> None: ...

    def close(self) -> None: ...


class GpioStatusLeds:
    """The status LEDs as gpiozero devices, on the pin factory the board profile chose.

    ``show`` is cheap to call often: it changes the pins only when the pattern changes, so a
    blink keeps its rhythm instead of restarting on every call. Blinks and pulses run in
    gpiozero's own background threads, never on the event loop.
    """

    def __init__(self, pins: LedPins, *, pin_factory: PinFactory) -> None:
        from gpiozero import LED, PWMLED, RGBLED

        high = pins.active_high
        self._power = LED(pins.power, active_high=high, pin_factory=pin_factory)
        self._activity = PWMLED(pins.activity, active_high=high, pin_factory=pin_factory)
        s = pins.status
        self._status = RGBLED(
            s.red, s.green, s.blue, active_high=high, pwm=True, pin_factory=pin_factory
        )
        self._shown: Pattern | None = None

    def show(self, state: LedState, load: int = 0) -> None:
        pattern = pattern_for(state, load)
        if pattern == self._shown:
            return
        self._shown = pattern
        if pattern.power:
            self._power.on()
        else:
            self._power.off()
        if pattern.activity_half_period_s > 0:
            t = pattern.activity_half_period_s
            self._activity.blink(on_time=t, off_time=t)
        else:
            self._activity.off()
        t = pattern.half_period_s
        if pattern.mode == "blink":
            self._status.blink(on_time=t, off_time=t, on_color=pattern.color)
        elif pattern.mode == "pulse":
            self._status.pulse(fade_in_time=t, fade_out_time=t, on_color=pattern.color)
        else:
            self._status.color = pattern.color

    def close(self) -> None:
        """Stop the blink threads and release the pins."""
        for device in (self._status, self._activity, self._power):
            device.close()

"""The gpiozero pin factory a board profile asks for, made once and passed to each device.

Never gpiozero's global default (``Device.pin_factory``): a global would let a test's mock
pins leak into the next test, and would let code that forgot the profile drive real pins.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from appliance.hal.board import GpioConfig
from appliance.hal.errors import HardwareUnavailable

PinFactory: TypeAlias = Any
"""A ``gpiozero.Factory`` (gpiozero ships no type hints)."""


def make_pin_factory(gpio: GpioConfig) -> PinFactory:
    """``MockFactory`` with PWM-capable pins for ``mock``; ``LGPIOFactory`` on the board."""
    if gpio.pin_factory == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory(chip=gpio.chip)
    except Exception as err:  # ImportError without lgpio; lgpio.error on a missing chip
        raise HardwareUnavailable(f"cannot open GPIO chip {gpio.chip} with lgpio: {err}") from err

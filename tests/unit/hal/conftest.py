from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from appliance.hal.board import BoardProfile, load_board
from appliance.hal.gpio import make_pin_factory
from appliance.hal.leds import GpioStatusLeds


@pytest.fixture
def board() -> BoardProfile:
    """The host's profile: the same one ``./build.sh run`` uses, mock pins and all."""
    return load_board("sim")


@pytest.fixture
def pin_factory(board: BoardProfile) -> Any:
    """A fresh MockFactory per test, so no pin history leaks between tests."""
    return make_pin_factory(board.gpio)


@pytest.fixture
def leds(board: BoardProfile, pin_factory: Any) -> Iterator[GpioStatusLeds]:
    leds = GpioStatusLeds(board.leds, pin_factory=pin_factory)
    yield leds
    leds.close()

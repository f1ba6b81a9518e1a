"""The board's devices as services, built from its profile: status LEDs, display, hot-plug.

The same code runs on the device and on a host: the profile picks the pin factory and the
display's port, and nothing else differs. Hardware is optional to the appliance's purpose,
so a part that fails (no udev in a container, a bug in the display service) is logged and
stops alone; the runtime and the other parts run on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from appliance.hal.board import BoardProfile
from appliance.hal.display.service import DisplayService
from appliance.hal.gpio import make_pin_factory
from appliance.hal.hotplug import DeviceChanged, DeviceMonitor, HotplugService, UdevMonitor
from appliance.hal.leds import GpioStatusLeds
from appliance.hal.status import StatusLedService, UpdatePhase
from appliance.runtime import Clock, Runtime

log = logging.getLogger(__name__)


class Hardware:
    def __init__(
        self,
        board: BoardProfile,
        runtime: Runtime,
        *,
        clock: Clock,
        hotplug_sink: Callable[[DeviceChanged], None],
        monitor: DeviceMonitor | None = None,
        appliance_version: str = "",
        update_phase: Callable[[], UpdatePhase | None] | None = None,
    ) -> None:
        self.board = board
        self.leds = GpioStatusLeds(board.leds, pin_factory=make_pin_factory(board.gpio))
        self.status = StatusLedService(runtime, self.leds, clock=clock, update_phase=update_phase)
        self.display = DisplayService(
            runtime,
            board.display,
            clock=clock,
            board=board.name,
            appliance_version=appliance_version,
        )
        self.hotplug = HotplugService(
            monitor or UdevMonitor(now=clock.now),
            hotplug_sink,
            display_match=board.display.match,
            on_display=self.display.poke,
        )

    async def run(self) -> None:
        """Run every part until cancelled; the LEDs go dark and the pins are freed at the end."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_alone("status LEDs", self.status.run()))
                tg.create_task(_alone("display", self.display.run()))
                tg.create_task(_alone("hot-plug", self.hotplug.run()))
        finally:
            self.leds.close()


async def _alone(part: str, work: Coroutine[Any, Any, None]) -> None:
    """Run one part; if it fails, say so once and let the others run on."""
    try:
        await work
    except Exception as err:  # CancelledError is not an Exception: it passes
        log.error("%s stopped: %s: %s", part, type(err).__name__, err, exc_info=err)

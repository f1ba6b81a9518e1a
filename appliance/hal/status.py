"""Which state the status LEDs show, decided from what the runtime does.

booting until the runtime runs; then ready when idle, busy while handlers run (the blink rate
follows the number of live tasks); error while the supervisor holds an agent type failed, and
for ``error_hold_s`` after a handler crashed or a task failed, so a crash that lasts a
millisecond is still seen. An update comes first: updating while a bundle is checked and
written, trying while a new version runs uncommitted (``update_phase``, which reads the update
record root keeps on the data partition; asked once a second). The state is re-decided on a
fixed tick rather than per event, so a storm of events costs the LEDs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

from appliance.events import HandlerCrashed, TaskSpawned, TaskStatusChanged
from appliance.hal.leds import LedState, StatusLeds
from appliance.runtime import Clock, Runtime, Watch

log = logging.getLogger(__name__)

_FOLLOWED = ("task.spawned", "task.status", "handler.crashed")
UpdatePhase = Literal["installing", "trying"]
PHASE_EVERY_S = 1.0


class StatusLedService:
    def __init__(
        self,
        runtime: Runtime,
        leds: StatusLeds,
        *,
        clock: Clock,
        tick_s: float = 0.2,
        error_hold_s: float = 5.0,
        update_phase: Callable[[], UpdatePhase | None] | None = None,
    ) -> None:
        self._runtime = runtime
        self._leds = leds
        self._clock = clock
        self._tick_s = tick_s
        self._error_hold_s = error_hold_s
        self._error_until = float("-inf")
        self._update_phase = update_phase
        self._phase: UpdatePhase | None = None
        self._phase_at = float("-inf")
        self._live: set[str] = set()
        self.state: LedState = "booting"
        leds.show("booting")

    @property
    def load(self) -> int:
        """Tasks spawned and not yet ended: what the activity blink rate follows."""
        return len(self._live)

    async def run(self) -> None:
        """Follow the runtime and keep the LEDs current until cancelled; then turn them off."""
        try:
            await self._runtime.wait_running()
            with self._runtime.watch(kinds=_FOLLOWED, limit=10_000) as watch:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._follow(watch))
                    while True:
                        self._show()
                        await self._clock.sleep(self._tick_s)
        finally:
            self._leds.show("off")

    async def _follow(self, watch: Watch) -> None:
        async for env in watch:
            self.note(env.event)
        # the runtime stopped: what it did last is over
        self._live.clear()

    def note(self, event: object) -> None:
        """Take one runtime record into account (public so a test can feed records)."""
        if type(event) is TaskSpawned:
            self._live.add(event.task_id)
        elif type(event) is TaskStatusChanged:
            if event.status in ("done", "failed", "cancelled"):  # restarted: still running
                self._live.discard(event.task_id)
            if event.status == "failed":
                self._error_until = self._clock.monotonic() + self._error_hold_s
        elif type(event) is HandlerCrashed:
            self._error_until = self._clock.monotonic() + self._error_hold_s

    def decide(self) -> LedState:
        phase = self._update()
        if phase == "installing":
            return "updating"
        if self._runtime.failed_types() or self._clock.monotonic() < self._error_until:
            return "error"  # a type the supervisor gave up on stays an error until reset
        if phase == "trying":
            return "trying"
        return "busy" if self._runtime.busy else "ready"

    def _update(self) -> UpdatePhase | None:
        if self._update_phase is None:
            return None
        now = self._clock.monotonic()
        if now - self._phase_at >= PHASE_EVERY_S:
            self._phase_at = now
            try:
                self._phase = self._update_phase()
            except OSError as err:  # the data partition unreadable: the LEDs go on
                log.warning("status LEDs: cannot read the update record: %s", err)
                self._phase = None
        return self._phase

    def _show(self) -> None:
        state = self.decide()
        if state != self.state:
            log.debug("status LEDs: %s -> %s", self.state, state)
        self.state = state
        self._leds.show(state, self.load)

"""The supervisor: keeps agents alive and pools sized without a person, so a crash or a
surge of work never needs someone at the device.

It is the runtime's supervision policy (``on_failure``) and a service (``run``) that ticks on
the injected clock: each tick it checks that busy instances make progress, samples pool
occupancy and scales pools, and pings systemd's watchdog, so the pings stop when this loop
stops. Every decision is an event in the runtime's journal.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from typing import TYPE_CHECKING

import msgspec

from appliance.events import JobContext, PoolScaled
from appliance.runtime import Action, Decision, Failure, Runtime
from appliance.runtime.agent import Agent
from appliance.supervisor.intensity import RestartIntensity
from appliance.supervisor.policy import Backoff, classify
from appliance.supervisor.systemd import SystemdNotifier

if TYPE_CHECKING:
    import random

log = logging.getLogger(__name__)


class ScalingPolicy(msgspec.Struct, frozen=True):
    """Grow above ``high``, shrink below ``low`` utilisation, judged over ``window`` ticks;
    ``patience`` windows in a row before acting and one quiet window after (hysteresis)."""

    high: float = 0.8
    low: float = 0.2
    window: int = 10
    patience: int = 2


class _Pool:
    def __init__(self, window: int) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.streak = 0  # windows in a row past a threshold, signed: + above, - below
        self.cooldown = 0


class Supervisor:
    def __init__(
        self,
        runtime: Runtime,
        *,
        tick_s: float = 0.5,
        backoff: Backoff | None = None,
        scaling: ScalingPolicy | None = None,
        notifier: SystemdNotifier | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._runtime = runtime
        self._clock = runtime.clock
        self.tick_s = tick_s
        self._backoff = backoff or Backoff(rng=rng)
        self._scaling = scaling or ScalingPolicy()
        self._notifier = notifier or SystemdNotifier()
        self._intensity: dict[str, RestartIntensity] = {}
        self._pools: dict[str, _Pool] = defaultdict(lambda: _Pool(self._scaling.window))
        self._progress: dict[str, tuple[int, float]] = {}
        self._job: JobContext | None = None
        self.ticks = 0
        runtime.supervision = self

    # -- failures (called by the runtime, synchronously) ----------------------------------

    def on_failure(self, failure: Failure) -> Decision:
        error_class = classify(failure.agent, failure.error)
        if error_class == "transient":
            delay = self._backoff.delay(failure.attempt)
            if delay is not None:
                return Decision(Action.RETRY, delay)
            return Decision(
                Action.FAIL,
                reason=f"gave up after {failure.attempt} attempts: "
                f"{type(failure.error).__name__}: {failure.error}",
            )
        if error_class == "rejected":
            return Decision(Action.REFUSE)
        if error_class == "resource":
            self._grow(failure.agent.name, "out of resources")
            return Decision(Action.SHED, reason=f"shed: {failure.error}")
        return self._restart_decision(
            failure.agent, f"{type(failure.error).__name__}: {failure.error}"
        )

    def _restart_decision(self, agent: type[Agent], reason: str) -> Decision:
        intensity = self._intensity.get(agent.name)
        if intensity is None:
            intensity = self._intensity[agent.name] = RestartIntensity(
                agent.max_restarts, agent.restart_window_s
            )
        level = intensity.record(self._clock.monotonic())
        if level >= 2:
            return Decision(
                Action.FAIL_TYPE,
                reason=f"restarted more than "
                f"{agent.max_restarts} times in {agent.restart_window_s}s "
                f"even as a group; last: {reason}",
            )
        if level == 1 or agent.restart_strategy == "one_for_all":
            return Decision(Action.RESTART_GROUP, reason=reason)
        return Decision(Action.RESTART, reason=reason)

    # -- the periodic loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Tick until cancelled: health, scaling, watchdog."""
        last_ping = self._clock.monotonic()
        while True:
            await self._clock.sleep(self.tick_s)
            self.tick()
            interval = self._notifier.watchdog_interval_s
            now = self._clock.monotonic()
            if interval is not None and now - last_ping >= interval:
                self._notifier.ping()
                last_ping = now

    def tick(self) -> None:
        self.ticks += 1
        self._check_progress()
        self._scale_pools()

    def _check_progress(self) -> None:
        """An instance with work that finished nothing for twice its handler deadline is
        stuck past what the deadline could cut (a handler that ignores cancellation, a
        blocked loop): restart it."""
        now = self._clock.monotonic()
        seen: dict[str, tuple[int, float]] = {}
        for info in self._runtime.instances():
            task_id = info.ref.task_id
            if info.inflight + info.queued == 0:
                continue
            handled, since = self._progress.get(task_id, (info.handled, now))
            if handled != info.handled:
                handled, since = info.handled, now
            seen[task_id] = (handled, since)
            limit = self._agent(info.ref.agent_type).handler_timeout_s * 2
            if now - since > limit:
                reason = f"no progress for {now - since:.1f}s with work waiting"
                log.warning("%s: %s; restarting", info.ref, reason)
                decision = self._restart_decision(self._agent(info.ref.agent_type), reason)
                if decision.action is Action.FAIL_TYPE:
                    self._runtime.fail_type(info.ref.agent_type, decision.reason)
                else:
                    self._runtime.restart(info.ref, reason)
                seen.pop(task_id)
        self._progress = seen

    def _scale_pools(self) -> None:
        policy = self._scaling
        for cls in self._runtime.agent_types:
            loads = self._runtime.pool_loads(cls.name)
            if not loads or self._runtime.pinned_pool(cls.name) is not None:
                continue
            pool = self._pools[cls.name]
            pool.samples.append(sum(1 for load in loads if load > 0) / len(loads))
            if len(pool.samples) < policy.window:
                continue
            utilisation = sum(pool.samples) / len(pool.samples)
            pool.samples.clear()
            if pool.cooldown:
                pool.cooldown -= 1
                continue
            if utilisation > policy.high and len(loads) < cls.pool_max:
                pool.streak = max(pool.streak, 0) + 1
            elif utilisation < policy.low and len(loads) > cls.pool_min:
                pool.streak = min(pool.streak, 0) - 1
            else:
                pool.streak = 0
            if abs(pool.streak) >= policy.patience:
                self._scale(cls, up=pool.streak > 0, utilisation=utilisation)
                pool.streak = 0
                pool.cooldown = 1

    def _scale(self, cls: type[Agent], *, up: bool, utilisation: float) -> None:
        if up:
            self._runtime.add_to_pool(cls.name, self._system_job())
        elif self._runtime.remove_from_pool(cls.name) is None:
            return
        size = len(self._runtime.pool_loads(cls.name))
        self._runtime.record(
            PoolScaled(
                agent_type=cls.name,
                size=size,
                utilisation=round(utilisation, 3),
                direction="up" if up else "down",
                at=self._clock.now(),
            )
        )

    def _grow(self, agent_type: str, why: str) -> None:
        cls = self._agent(agent_type)
        size = len(self._runtime.pool_loads(agent_type))
        if 0 < size < cls.pool_max:
            log.info("%s: %s; growing its pool", agent_type, why)
            self._scale(cls, up=True, utilisation=1.0)

    def _system_job(self) -> JobContext:
        if self._job is None:
            self._job = self._runtime.open_job("supervisor: scale agent pools")
        return self._job

    def _agent(self, name: str) -> type[Agent]:
        return self._runtime.agent_class(name)

    def ready(self, status: str) -> None:
        """Tell systemd (when it started us) that the appliance is up."""
        self._notifier.ready(status)

    def stopping(self) -> None:
        """Tell systemd the appliance is on its way down: the watchdog's silence while the
        store closes is then a stop, not a hang, and ``systemctl status`` says "deactivating"."""
        self._notifier.stopping()

"""Per-type counts of what supervision did since start: restarts, crashes, pool changes.

The runtime keeps no such totals (an instance's ``generation`` dies with it), so the panel
follows the records itself. It is a service in the panel's TaskGroup: one bounded watch,
a few dict increments per record, nothing stored.
"""

from __future__ import annotations

from collections import Counter

from appliance.events import (
    AgentTypeFailed,
    AgentTypeReset,
    HandlerCrashed,
    InstanceRestarted,
    PoolScaled,
)
from appliance.runtime import Runtime

KINDS = (
    "instance.restarted",
    "handler.crashed",
    "pool.scaled",
    "agent_type.failed",
    "agent_type.reset",
)


class Activity:
    def __init__(self) -> None:
        self.restarts: Counter[str] = Counter()
        self.crashes: Counter[str] = Counter()
        self.scalings: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.missed = 0  # records the watch dropped: counts are then a little low

    async def run(self, runtime: Runtime) -> None:
        await runtime.wait_running()
        with runtime.watch(kinds=KINDS, limit=10_000) as watch:
            async for env in watch:
                self.note(env.event)
                self.missed = watch.dropped

    def note(self, event: object) -> None:
        if type(event) is InstanceRestarted:
            self.restarts[event.agent_type] += 1
        elif type(event) is HandlerCrashed:
            self.crashes[event.agent_type] += 1
        elif type(event) is PoolScaled:
            self.scalings[event.agent_type] += 1
        elif type(event) is AgentTypeFailed:
            self.failures[event.agent_type] += 1
        elif type(event) is AgentTypeReset:
            pass  # the runtime's failed_types() says the type is back; the count stays

"""A type's pool: the idle instances that serve events sent to the type as a whole.

A task gets an instance of its own; work addressed to a type (``TypeRef``) goes to the
least-loaded pool member instead, the first one made on demand. The supervisor grows and
shrinks pools with load, and an admin can pin a size it then leaves alone.
"""

from __future__ import annotations

from typing import Any, Protocol

from appliance.events import Envelope, JobContext, TaskRef
from appliance.runtime.instance import AgentKind, Instance
from appliance.runtime.journal import Journal
from appliance.runtime.registry import TypeRegistry


class Spawner(Protocol):
    """What pools need of the runtime: making an idle instance, and retiring one."""

    def spawn_idle(self, kind: AgentKind, job: JobContext, caller: TaskRef | None) -> Instance: ...

    def retire(self, inst: Instance) -> None: ...


class Pools:
    def __init__(self, types: TypeRegistry, journal: Journal, spawner: Spawner) -> None:
        self._types = types
        self._journal = journal
        self._spawner = spawner

    def pick(self, kind: AgentKind, env: Envelope[Any]) -> Instance:
        """The least-loaded member; with none yet, the first is made for this event's job."""
        if not kind.pool:
            self._grow(kind, env.job, env.caller)
        return min(kind.pool, key=lambda inst: inst.load)

    def grow(self, agent_type: str, job: JobContext) -> TaskRef:
        return self._grow(self._types.kind(agent_type), job, None).ref

    def _grow(self, kind: AgentKind, job: JobContext, caller: TaskRef | None) -> Instance:
        inst = self._spawner.spawn_idle(kind, job, caller)
        inst.pooled = True
        kind.pool.append(inst)
        return inst

    def shrink(self, agent_type: str) -> TaskRef | None:
        kind = self._types.kind(agent_type)
        idle = next((i for i in reversed(kind.pool) if i.load == 0), None)
        if idle is None:
            return None
        self._spawner.retire(idle)
        self._journal.status(
            idle.home.job_id, idle.ref.task_id, kind.name, "done", "retired: pool scaled down"
        )
        return idle.ref

    def pin(self, agent_type: str, size: int | None) -> None:
        self._types.kind(agent_type).pinned = size

    def pinned(self, agent_type: str) -> int | None:
        return self._types.kind(agent_type).pinned

    def loads(self, agent_type: str) -> list[int]:
        return [i.load for i in self._types.kind(agent_type).pool]

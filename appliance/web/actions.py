"""What an admin can do to the running agents, through the runtime's public API only.

Each action checks what it can before it changes anything, so a refused action changes
nothing, and each leaves a record in the journal like the supervisor's own decisions do.
"""

from __future__ import annotations

from appliance.errors import BadCommand, UnknownTask
from appliance.events import PoolScaled
from appliance.runtime import InstanceInfo, Runtime
from appliance.web.errors import ActionRefused


def find_instance(runtime: Runtime, task_id: str) -> InstanceInfo:
    for info in runtime.instances():
        if info.ref.task_id == task_id:
            return info
    raise UnknownTask(f"no live instance {task_id!r}")


def restart_instance(runtime: Runtime, task_id: str, reason: str) -> InstanceInfo:
    """Restart a live instance from its last committed state (the events it had in flight
    run again in the new incarnation)."""
    info = find_instance(runtime, task_id)
    runtime.restart(info.ref, reason)
    return find_instance(runtime, task_id)


async def cancel_job(runtime: Runtime, job_id: str) -> list[str]:
    """Cancel every task of a job that has not ended, running handlers included; pool
    instances serve every job and stay. Returns the task ids cancelled."""
    await runtime.graph.tree(job_id)  # UnknownJob for a job that never was
    stopped = runtime.cancel_job(job_id, "cancelled from the admin panel")
    if not stopped:
        raise ActionRefused(f"job {job_id} has no running task to cancel")
    return [ref.task_id for ref in stopped]


def scale_pool(runtime: Runtime, agent_type: str, size: int) -> int:
    """Grow or shrink a type's pool to ``size`` within its ``pool_min``..``pool_max``.
    Shrinking takes only idle instances, so it may stop short: returns the size reached.
    The size is pinned: the supervisor's autoscaling leaves this pool alone from now on."""
    cls = runtime.startable(agent_type)  # UnknownAgentType, InternalAgentType
    if not cls.pool_min <= size <= cls.pool_max:
        raise BadCommand(
            f"{agent_type}'s pool may hold {cls.pool_min} to {cls.pool_max} instances, not {size}"
        )
    before = len(runtime.pool_loads(agent_type))
    if size > before:
        job = runtime.open_job(f"scale the {agent_type} pool to {size} (admin)")
        for _ in range(size - before):
            runtime.add_to_pool(agent_type, job)
    else:
        for _ in range(before - size):
            if runtime.remove_from_pool(agent_type) is None:
                break  # the rest are busy
    runtime.pin_pool(agent_type, size)
    loads = runtime.pool_loads(agent_type)
    if len(loads) != before:
        runtime.record(
            PoolScaled(
                agent_type=agent_type,
                size=len(loads),
                utilisation=round(sum(1 for x in loads if x > 0) / len(loads), 3) if loads else 0,
                direction="up" if len(loads) > before else "down",
                at=runtime.clock.now(),
            )
        )
    return len(loads)


def reset_type(runtime: Runtime, agent_type: str) -> None:
    """Take a type the supervisor marked failed back into service."""
    runtime.agent_class(agent_type)  # UnknownAgentType
    if agent_type not in runtime.failed_types():
        raise ActionRefused(f"agent type {agent_type!r} is not marked failed")
    runtime.reset_type(agent_type)

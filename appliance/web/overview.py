"""The at-a-glance view: agent types, their instances and pools, health, the board, the router.

One builder serves the status endpoint, the overview page and the benchmark, so what the
page shows and what the API returns never drift apart. It reads only in-memory state (no
store query), so it is cheap enough to poll.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from appliance.runtime import InstanceInfo, Runtime, accepted_kinds
from appliance.web.activity import Activity
from appliance.web.capabilities import DeviceStatus, DeviceView, RouterStatus


class InstanceView(msgspec.Struct, frozen=True):
    agent_type: str
    task_id: str
    job_id: str
    objective: str
    status: str
    inflight: int
    queued: int
    handled: int
    generation: int
    pooled: bool
    fault: str | None = None  # its last crash, while it has not recovered from it


class TypeView(msgspec.Struct, frozen=True):
    name: str
    description: str
    accepts: list[str]
    instances: int
    busy: int
    pool_size: int
    pool_min: int
    pool_max: int
    restarts: int  # since start: the history; health says how things are now
    crashes: int
    failed: str | None
    health: str  # ok, busy, degraded (an instance is failing now), failed (marked so)
    failing: int = 0  # live instances whose last handler crashed, not restarted since


class StatusView(msgspec.Struct, frozen=True):
    health: str
    busy: bool
    handled: int
    crashed: int
    router_provider: str  # the provider's name alone: router.provider
    failed_types: dict[str, str]
    types: list[TypeView]
    instances: list[InstanceView]
    device: DeviceStatus | None
    # extension entry points that failed to load at start, and why: their types are absent
    failed_extensions: dict[str, str] = {}
    # where the router's model runs: provider, device, vendor, and why not the board's first
    # wish when it is not (None: this appliance has no router)
    router: RouterStatus | None = None


def instance_view(info: InstanceInfo) -> InstanceView:
    return InstanceView(
        agent_type=info.ref.agent_type,
        task_id=info.ref.task_id,
        job_id=info.job_id,
        objective=info.objective,
        status=info.status,
        inflight=info.inflight,
        queued=info.queued,
        handled=info.handled,
        generation=info.generation,
        pooled=info.pooled,
        fault=info.fault,
    )


def build_status(
    runtime: Runtime,
    activity: Activity,
    router: RouterStatus | None,
    device: DeviceView | None,
    failed_extensions: Mapping[str, str] | None = None,
) -> StatusView:
    failed = runtime.failed_types()
    instances = [instance_view(i) for i in runtime.instances()]
    types = []
    for cls in runtime.agent_types:
        mine = [i for i in instances if i.agent_type == cls.name]
        busy = sum(1 for i in mine if i.inflight + i.queued > 0)
        failing = sum(1 for i in mine if i.fault is not None)
        restarts, crashes = activity.restarts[cls.name], activity.crashes[cls.name]
        # the condition now, not the counts since start: once what failed is restarted,
        # scaled away or handles events again, the type is healthy again
        if cls.name in failed:
            health = "failed"
        elif failing:
            health = "degraded"
        else:
            health = "busy" if busy else "ok"
        types.append(
            TypeView(
                name=cls.name,
                description=cls.description,
                accepts=accepted_kinds(cls),
                instances=len(mine),
                busy=busy,
                pool_size=len(runtime.pool_loads(cls.name)),
                pool_min=cls.pool_min,
                pool_max=cls.pool_max,
                restarts=restarts,
                crashes=crashes,
                failed=failed.get(cls.name),
                health=health,
                failing=failing,
            )
        )
    overall = (
        "failed" if failed else ("degraded" if any(t.health == "degraded" for t in types) else "ok")
    )
    return StatusView(
        health=overall,
        busy=runtime.busy,
        handled=runtime.handled,
        crashed=runtime.crashed,
        router_provider=router.provider if router is not None else "",
        failed_types=failed,
        types=types,
        instances=instances,
        device=device.status() if device is not None else None,
        failed_extensions=dict(failed_extensions or {}),
        router=router,
    )

"""The network watcher: the appliance acting on its own when its network changes.

When udev reports a network interface appearing, renamed or changed, the watcher starts a
rescan of the whole scope on its own: a new job with no parent task and no user command
behind it, which the coordination graph records as autonomous (``qey jobs`` marks it). The
job's command names the trigger, and a ``job.triggered`` record links it in the graph to the
watcher's task and the device event it reacted to. Bursts
(a link flapping, several interfaces at boot) make one rescan per ``cooldown_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import msgspec

from appliance.events import Event, JobContext, JobTriggered, Started, TaskRef, TopicRef
from appliance.hal.hotplug import HOTPLUG_TOPIC, DeviceChanged
from appliance.runtime import Agent, Context, Runtime
from appliance.scope import Scope

log = logging.getLogger(__name__)

RESCAN_ACTIONS = ("add", "move", "change")
IGNORED_INTERFACES = ("lo", "veth", "docker", "virbr", "br-")
"""Interfaces that are not a network the appliance watches: loopback and container plumbing."""


class StartsJobs(Protocol):
    """``Runtime.submit``: how an agent starts a job that nothing asked for."""

    def __call__(
        self,
        command: str,
        agent_type: str,
        *,
        start: Event | None = None,
        autonomous: bool = False,
    ) -> tuple[JobContext, TaskRef]: ...


class WatcherState(msgspec.Struct):
    last_rescan: float = float("-inf")
    rescans: int = 0
    ignored: int = 0


class NetworkWatcher(Agent):
    name = "network_watcher"
    description = (
        "Watches the appliance's own network interfaces and, when one appears or its link "
        "changes, starts a rescan of the scope by itself; it takes no commands."
    )
    topics = (HOTPLUG_TOPIC,)
    routable = False
    internal = True  # one standing job, started by the appliance; device events only from hal
    State = WatcherState
    concurrency = 1  # decisions in arrival order: the cooldown sees every earlier rescan

    def __init__(
        self,
        scope: Scope,
        start_job: StartsJobs,
        record: Callable[[JobTriggered], None],
        *,
        cooldown_s: float = 30.0,
        rescan_agent: str = "coordinator",
    ) -> None:
        """``start_job`` and ``record``: the runtime's ``submit`` and ``record``."""
        self._scope = scope
        self._start_job = start_job
        self._record = record
        self._cooldown_s = cooldown_s
        self._rescan_agent = rescan_agent

    @staticmethod
    def should_rescan(event: DeviceChanged) -> bool:
        return (
            event.subsystem == "net"
            and event.action in RESCAN_ACTIONS
            and not event.sys_name.startswith(IGNORED_INTERFACES)
        )

    async def on_device(self, event: DeviceChanged, ctx: Context[WatcherState]) -> str | None:
        """Start the rescan job (its id is the result), or None if this event needs none."""
        state = ctx.state
        if not self.should_rescan(event):
            return None
        now = ctx.clock.monotonic()
        if now - state.last_rescan < self._cooldown_s:
            state.ignored += 1
            return None
        state.last_rescan = now
        state.rescans += 1
        targets = " ".join(str(n) for n in self._scope.networks)
        command = f"analyze network security posture of {targets}"
        job, root = self._start_job(
            f"{command} (autonomous: {event.sys_name} {event.action})",
            self._rescan_agent,
            start=Started(objective=command),
            autonomous=True,
        )
        self._record(
            JobTriggered(
                job_id=job.job_id,
                task_id=root.task_id,
                agent_type=root.agent_type,
                by_job_id=ctx.job.job_id,
                by_task_id=ctx.task_id,
                by_agent=self.name,
                because=f"{event.__struct_config__.tag} {event.subsystem} "
                f"{event.sys_name} {event.action}",
                at=ctx.clock.now(),
            )
        )
        log.info(
            "network %s %s: rescan of %s started as job %s",
            event.sys_name,
            event.action,
            targets,
            job.job_id,
            extra=ctx.extra,
        )
        return job.job_id


WATCH_COMMAND = "watch the network interfaces and rescan the scope when they change"


def start_watching(runtime: Runtime) -> Callable[[DeviceChanged], None]:
    """Start the watcher as a standing autonomous job; returns the sink for device events.

    The sink publishes each event on the ``hotplug`` topic under that job, so every device
    event the appliance reacted to is on the record of the job that reacted to it.
    """
    job, _root = runtime.start_internal(WATCH_COMMAND, NetworkWatcher.name)

    def sink(event: DeviceChanged) -> None:
        runtime.publish_nowait(TopicRef(HOTPLUG_TOPIC), event, job=job)

    return sink

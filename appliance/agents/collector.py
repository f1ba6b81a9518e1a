"""The data collector: a real TCP connect scan of one in-scope target, then analysis per host."""

from __future__ import annotations

from collections.abc import Callable

from appliance.agents.messages import (
    AnalysisReport,
    AnalysisRequested,
    HostPorts,
    ScanProgressed,
    ScanReport,
    ScanRequested,
)
from appliance.agents.portscan import scan
from appliance.agents.scope import Scope, hosts_of
from appliance.events import TopicRef
from appliance.runtime import Agent, Context, NoState
from appliance.settings import Settings

PROGRESS = TopicRef("progress")

HostRecord = dict[str, list[int]]


class DataCollector(Agent):
    name = "data_collector"
    description = "Collects data about hosts: scans an address or network for open TCP ports."
    capabilities = ("scan ports", "discover hosts", "tcp connect scan")
    examples = ("scan 127.0.0.1 for open ports",)
    State = NoState
    eager = False  # opens a TaskGroup at once; I/O-bound, so a Task per scan costs nothing
    handler_timeout_s = 1800.0

    def __init__(self, scope: Scope, settings: Settings) -> None:
        self._scope = scope
        self._timeout = settings.probe_timeout_s
        self._concurrency = settings.scan_concurrency

    async def on_scan(self, event: ScanRequested, ctx: Context[NoState]) -> ScanReport:
        hosts = list(hosts_of(self._scope.check(event.target)))

        def progress(probed: int, total: int) -> None:
            ctx.publish_nowait(
                PROGRESS,
                ScanProgressed(
                    target=event.target,
                    probed=probed,
                    total=total,
                    open=0,
                ),
            )

        found = await scan(
            hosts,
            event.ports,
            concurrency=self._concurrency,
            timeout=self._timeout,
            progress=progress,
        )
        for host, ports in found.items():
            ctx.knowledge.update(
                f"hosts/{host}",
                _replace_with({"open_ports": ports}),
                type=dict[str, list[int]],
                default={},
            )
        outcomes = await ctx.fan_out(
            "analyzer",
            [
                (
                    f"{host}: open {', '.join(map(str, ports))}",
                    AnalysisRequested(host=host, open_ports=ports),
                )
                for host, ports in found.items()
            ],
        )
        analyses = [o.result_as(AnalysisReport) for o in outcomes if o.ok]
        return ScanReport(
            target=event.target,
            hosts_probed=len(hosts),
            open=[HostPorts(host=h, open_ports=p) for h, p in found.items()],
            findings=[f for a in analyses for f in a.findings],
            failed_analyses=sum(1 for o in outcomes if not o.ok),
        )


def _replace_with(value: HostRecord) -> Callable[[HostRecord], HostRecord]:
    """A knowledge update that replaces the old value: the latest scan is the truth."""
    return lambda _old: value

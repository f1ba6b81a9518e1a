"""The panel's pages on a well-used appliance: how long each takes to answer, signed in over
loopback TCP, against a static file and the status API served by the same panel in the same
run (the floor any page has).

The appliance holds 200 finished scan jobs (each a coordinator and two collectors, their
results carrying findings) and an inventory of 254 devices with 3 findings each, written by
the inventory's own ``record_scan``; a schedule and the usual agent types are registered.
Each page is fetched 30 times in turn; p50 and p99 of the whole answer.

Goal (issue 17): every page under 300 ms on this machine.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import figure, goal, header, percentile
from aiohttp import web

from appliance import inventory
from appliance.agents.messages import Finding, HostPorts, ScanReport
from appliance.events import Started
from appliance.runtime import Agent, Context, NoState, Runtime, Store, running
from appliance.schedules.cadence import Every
from appliance.schedules.store import Schedules
from appliance.web.credentials import Credentials
from appliance.web.panel import Panel, make_panel

PASSWORD = "benchmark password"
JOBS = 200
DEVICES = 254
ROUNDS = 30
GOAL_MS = 300.0


class Scan(Agent):
    name = "scan"
    description = "a finished scan of ten hosts"

    async def on_start(self, event: Started, ctx: Context[NoState]) -> ScanReport:
        hosts = [f"127.1.0.{i}" for i in range(1, 11)]
        return ScanReport(
            target=event.objective,
            hosts_probed=len(hosts),
            open=[HostPorts(host=h, open_ports=[22, 23, 80]) for h in hosts],
            findings=[_finding(h, p) for h in hosts for p in (22, 23, 80)],
        )


class Posture(Agent):
    name = "posture"
    description = "a coordinator over two scans"

    async def on_start(self, event: Started, ctx: Context[NoState]) -> list[object]:
        target = event.objective
        halves = [(f"{target} {half}", Started(objective=target)) for half in "ab"]
        return [o.result for o in await ctx.fan_out("scan", halves)]


def _finding(host: str, port: int) -> Finding:
    severity = {22: "low", 23: "critical", 80: "medium"}[port]
    return Finding(host, port, "svc", severity, f"port {port} is open", "Close it if unused.")  # type: ignore[arg-type]


async def _fill(runtime: Runtime) -> str:
    last = ""
    for n in range(JOBS):
        job, root = runtime.submit(f"scan 127.1.{n}.0/28", "posture")
        await runtime.wait_task(root)
        last = job.job_id
    now = time.time()
    hosts = [f"127.2.0.{i}" for i in range(1, DEVICES + 1)]
    inventory.record_scan(
        runtime.knowledge,
        job_id=last,
        at=now,
        probed=set(hosts),
        found={h: [22, 23, 80] for h in hosts},
        findings=[_finding(h, p) for h in hosts for p in (22, 23, 80)],
    )
    await runtime.commit()
    return last


async def _time(session: aiohttp.ClientSession, url: str) -> list[float]:
    out = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def main() -> None:
    header(f"panel pages: {JOBS} jobs, {DEVICES} devices; p50 / p99 of {ROUNDS} fetches each")
    with tempfile.TemporaryDirectory(prefix="qey-bench-pages-") as tmp:
        store = Store(Path(tmp) / "qey.db")
        runtime = Runtime(store)
        runtime.register(Scan)
        runtime.register(Posture)
        try:
            async with running(runtime), asyncio.TaskGroup() as tg:
                last = await _fill(runtime)
                schedules = Schedules(store, runtime.clock)
                schedules.add("scan 127.1.0.0/24", Every(count=1, unit="hour"), job_id=last)
                creds = Credentials(Path(tmp))
                creds.set_password(PASSWORD)

                async def submit(command: str, agent_type: str | None) -> object:
                    raise NotImplementedError

                app: web.Application = make_panel(
                    runtime,
                    submit,  # type: ignore[arg-type]
                    creds,
                    provider="bench",
                    schedules=schedules,
                )
                panel = Panel(app, ["127.0.0.1:0"])
                server = tg.create_task(panel.run())
                await panel.listening.wait()
                base = panel.urls[0].rstrip("/")
                jar = aiohttp.CookieJar(unsafe=True)  # cookies from an IP address
                async with aiohttp.ClientSession(cookie_jar=jar) as session:
                    form = await (await session.get(f"{base}/login")).text()
                    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
                    assert token
                    data = {"csrf_token": token.group(1), "password": PASSWORD}
                    signed = await session.post(f"{base}/login", data=data)
                    assert signed.status == 200, (signed.status, await signed.text())
                    floor = {
                        "baseline: static file": "/static/panel.css",
                        "baseline: status API": "/api/v1/status",
                    }
                    pages = {
                        "home": "/",
                        "devices": "/devices",
                        "a device": "/devices/127.2.0.9",
                        "jobs": "/jobs",
                        "a job": f"/jobs/{last}",
                        "notifications": "/notices",
                        "system": "/system",
                        "schedules": "/schedules",
                        "settings": "/settings",
                        "home API": "/api/v1/home",
                    }
                    worst = 0.0
                    for label, path in {**floor, **pages}.items():
                        times = await _time(session, base + path)
                        p50, p99 = percentile(times, 50), percentile(times, 99)
                        figure(f"{label} ({path}) p50", p50, "ms")
                        figure(f"{label} p99", p99, "ms")
                        if label in pages:
                            worst = max(worst, p99)
                    goal("slowest page's p99", worst, GOAL_MS, "ms")
                server.cancel()
        finally:
            store.close()


if __name__ == "__main__":
    asyncio.run(main())

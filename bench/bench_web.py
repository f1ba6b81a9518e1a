"""9. The admin panel under load: status requests/s and p99 while 10k events/s flow through
the runtime, and the events/s a WebSocket client receives.

Ours: the panel (make_panel, signed in over loopback TCP) answering GET /api/v1/status from 8
concurrent clients (bounded: 3 s or 3,000 requests) while a paced generator delivers 10,000
events/s to 16 counter instances. Baseline, in the same run: the same requests with no event
flow. Then a WebSocket client on /api/v1/live?traffic=1 for 3 s of the same 10k events/s
(and of an unpaced flood): events received per second and how many the bounded watch dropped.
Client, server and runtime share one process and event loop (as on the device: 2 cores).

Goals: p99 of the status endpoint under load <= 50 ms; the WebSocket carries >= 9,000 of the
10,000 events/s.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import JOB, Counter, Ping, bench_runtime, figure, goal, header, percentile, ratio
from aiohttp import web

from appliance.events import TaskRef
from appliance.runtime import Runtime
from appliance.web.credentials import Credentials
from appliance.web.panel import Panel, make_panel

PASSWORD = "benchmark password"
RATE = 10_000
CLIENTS = 8
SECONDS = 3.0
MAX_REQUESTS = 3_000


async def _flow(runtime: Runtime, refs: list[TaskRef], rate: float, stop: asyncio.Event) -> int:
    """Deliver ``rate`` events/s (0: as fast as possible) in 1 ms slices until ``stop``."""
    loop = asyncio.get_running_loop()
    sent, start, i = 0, loop.time(), 0
    while not stop.is_set():
        due = int((loop.time() - start) * rate) if rate else sent + 500
        while sent < due:
            runtime.publish_nowait(refs[i % len(refs)], Ping(n=sent), job=JOB)
            sent, i = sent + 1, i + 1
        await asyncio.sleep(0.001)
    return sent


async def _status_load(session: aiohttp.ClientSession, base: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def client() -> None:
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
            t0 = time.perf_counter()
            async with session.get(f"{base}/api/v1/status") as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(CLIENTS):
            tg.create_task(client())
    return len(latencies) / (time.perf_counter() - t0), latencies


async def _sign_in(session: aiohttp.ClientSession, base: str) -> str:
    form = await (await session.get(f"{base}/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    await session.post(f"{base}/login", data={"csrf_token": token.group(1), "password": PASSWORD})
    page = await (await session.get(f"{base}/")).text()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf, "sign-in failed"
    return csrf.group(1)


async def _ws_rate(
    session: aiohttp.ClientSession, base: str, runtime: Runtime, refs: list[TaskRef], rate: float
) -> tuple[float, int, int]:
    received, dropped = 0, 0
    stop = asyncio.Event()
    async with session.ws_connect(f"{base}/api/v1/live?traffic=1&kinds=bench.ping") as ws:
        async with asyncio.TaskGroup() as tg:
            flow = tg.create_task(_flow(runtime, refs, rate, stop))
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < SECONDS:
                try:
                    msg = await ws.receive(timeout=0.5)
                except TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = msg.json()
                received += len(data["events"])
                dropped = data["dropped"]
            elapsed = time.perf_counter() - t0
            stop.set()
        sent = flow.result()
    return received / elapsed, sent, dropped


async def main() -> None:
    header("web panel: status endpoint under a 10k events/s flow; WebSocket events/s")
    async with bench_runtime(Counter) as runtime:
        refs = [runtime.spawn("counter", JOB, f"c{i}") for i in range(16)]
        with tempfile.TemporaryDirectory(prefix="qey-bench-web-") as tmp:
            creds = Credentials(Path(tmp))
            creds.set_password(PASSWORD)

            async def submit(command: str, agent_type: str | None) -> object:
                raise NotImplementedError

            app: web.Application = make_panel(runtime, submit, creds, provider="bench")  # type: ignore[arg-type]
            panel = Panel(app, ["127.0.0.1:0"])
            async with asyncio.TaskGroup() as tg:
                server = tg.create_task(panel.run())
                await panel.listening.wait()
                base = panel.urls[0].rstrip("/")
                connector = aiohttp.TCPConnector(limit=CLIENTS)
                jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
                async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
                    await _sign_in(session, base)
                    base_rps, base_lat = await _status_load(session, base)
                    stop = asyncio.Event()
                    flow = tg.create_task(_flow(runtime, refs, RATE, stop))
                    t0 = time.perf_counter()
                    rps, lat = await _status_load(session, base)
                    stop.set()
                    sent = await flow
                    flowed = sent / (time.perf_counter() - t0)
                    figure("events/s delivered during the status load", flowed, "ev/s")
                    figure(
                        "status requests/s, 10k ev/s flowing",
                        rps,
                        "req/s",
                        note=f"{len(lat)} requests",
                    )
                    figure("status p50, 10k ev/s flowing", percentile(lat, 50) * 1e3, "ms")
                    figure("status p99, 10k ev/s flowing", percentile(lat, 99) * 1e3, "ms")
                    figure("baseline: status requests/s, idle runtime", base_rps, "req/s")
                    figure(
                        "baseline: status p99, idle runtime", percentile(base_lat, 99) * 1e3, "ms"
                    )
                    ratio("requests/s under load vs idle", rps, base_rps, higher_is_better=True)
                    goal("status p99 under 10k ev/s", percentile(lat, 99) * 1e3, 50.0, "ms")
                    ws_rps, ws_sent, ws_dropped = await _ws_rate(session, base, runtime, refs, RATE)
                    figure(
                        "WebSocket events/s received (10k/s offered)",
                        ws_rps,
                        "ev/s",
                        note=f"sent {ws_sent}, watch dropped {ws_dropped}",
                    )
                    goal(
                        "WebSocket carries the 10k ev/s flow",
                        ws_rps,
                        9_000.0,
                        "ev/s",
                        at_least=True,
                    )
                    flood_rps, flood_sent, flood_dropped = await _ws_rate(
                        session, base, runtime, refs, 0
                    )
                    figure(
                        "WebSocket events/s received (unpaced flood)",
                        flood_rps,
                        "ev/s",
                        note=f"sent {flood_sent}, watch dropped {flood_dropped}",
                    )
                server.cancel()


if __name__ == "__main__":
    asyncio.run(main())

"""6. The display service: events/s it absorbs, and what it puts on a 115200-baud link.

Ours: the display service watching every delivered event (``watch(traffic=True)``) of a
runtime that handles one-way events to 64 counter instances, writing to the emulated display
over a socket pair paced at 115200 baud 8N1 (11,520 bytes/s), the emulator decoding every
frame. Baseline: the same runtime and workload with no display attached, in the same run.

Then the link alone, for 5 s of load: frames/s, bytes/frame and bytes/s the service puts on
the line, and the frames it dropped, at the profile's 10 fps with the emulator's 16 lines,
and at 60 fps with 64 lines (more than the link can carry, so frames must drop).
During a flood the runtime rarely yields, so the shallow traffic watch drops deliveries
(counted: activity only); the records watch must drop none.

Goals: the runtime keeps >= 0.7x its events/s with the display attached; at 10 fps / 16
lines the link stays under 50% of its capacity and drops nothing.

Last, the overload that once stopped the service for good (``overload`` runs it alone): over
a pty at 115200 baud, a display that claims 65,535 lines (and a huge or a small ``max_body``),
112 busy instances, then 16 jobs at once whose commands are 60 emoji each (3 kB of names).
Goals: the link never drops, no frame is unsendable, the setup token stays shown.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from _common import JOB, Counter, Ping, bench_runtime, figure, goal, header, median, ratio

from appliance.events import Envelope, TaskRef, TaskSpawned, TopicRef
from appliance.hal.board import load_board
from appliance.hal.display.emulator import DisplayEmulator, PtyEndpoint
from appliance.hal.display.link import FdLink, Link
from appliance.hal.display.scene import Scene
from appliance.hal.display.screen import DEFAULT_CAPABILITIES, Screen
from appliance.hal.display.service import DisplayService
from appliance.runtime import Runtime

INSTANCES = 64
N = 50_000
REPS = 3
LINK_S = 5.0
BAUD = 115_200


class PairEndpoint:
    """A socket pair per connection: the service writes one end, the emulator reads the other."""

    description = "socketpair"

    def __init__(self) -> None:
        self._pending: asyncio.Queue[socket.socket] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def open_for_service(self) -> Link:
        a, b = socket.socketpair()
        self._loop.call_soon_threadsafe(self._pending.put_nowait, b)
        return FdLink(a.fileno(), "service", owned=a)

    def accept(self) -> Link:
        b = asyncio.run_coroutine_threadsafe(self._pending.get(), self._loop).result()
        return FdLink(b.fileno(), "display", owned=b)

    def close(self) -> None:
        pass


async def load(runtime: Runtime, n: int) -> float:
    """Send ``n`` one-way events round-robin to INSTANCES counters; events/s."""
    refs = [runtime.spawn("counter", JOB, f"c{i}") for i in range(INSTANCES)]
    start = time.perf_counter()
    for i in range(n):
        await runtime.send(refs[i % INSTANCES], Ping(n=i), job=JOB)
    for ref in refs:
        await runtime.request(ref, Ping(), job=JOB)
    elapsed = time.perf_counter() - start
    for ref in refs:
        runtime.stop_instance(ref)
    return n / elapsed


async def with_display(
    fps: float, lines: int, work: float | None = None
) -> tuple[float, DisplayService, DisplayEmulator, float]:
    """Run the load (``work`` None: N events) or ``work`` seconds of steady load with the
    display attached; returns events/s, the service, the emulator and the seconds spent."""
    board = load_board("sim")
    config = msgspec.structs.replace(board.display, fps=fps, baud=BAUD)
    async with bench_runtime(Counter) as runtime:
        endpoint = PairEndpoint()
        service = DisplayService(
            runtime, config, clock=runtime.clock, open_link=endpoint.open_for_service
        )
        caps = msgspec.structs.replace(DEFAULT_CAPABILITIES, lines=lines)
        emulator = DisplayEmulator(endpoint, screen=Screen(caps))
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(service.run()), tg.create_task(emulator.run())]
            async with asyncio.timeout(10):
                while service.capabilities is None:  # noqa: ASYNC110 - set by the reader task
                    await asyncio.sleep(0.01)
            start = time.perf_counter()
            if work is None:
                rate = await load(runtime, N)
            else:
                rate, deadline = 0.0, start + work
                while time.perf_counter() < deadline:
                    rate = await load(runtime, 2_000)
                    await asyncio.sleep(0.05)  # let frames go out between bursts
            elapsed = time.perf_counter() - start
            for task in tasks:
                task.cancel()
    return rate, service, emulator, elapsed


def scene_capacity() -> float:
    """Envelopes/s the scene itself takes in: the ceiling of what the service can absorb."""
    scene = Scene()
    spawn = TaskSpawned(job_id=JOB.job_id, task_id="t1", agent_type="counter", objective="o")
    scene.note(Envelope(event=spawn, job=JOB, target=TopicRef("runtime")), 0.0)
    env = Envelope(event=Ping(n=1), job=JOB, target=TaskRef("counter", "t1"))
    start = time.perf_counter()
    for _ in range(N):
        scene.note(env, 0.0)
    return N / (time.perf_counter() - start)


async def bare() -> float:
    async with bench_runtime(Counter) as runtime:
        return await load(runtime, N)


async def overload(max_body: int) -> None:
    """The overload that used to stop the display: see the module's docstring."""
    header(f"overload over a pty: lines=65535, max_body={max_body}, 16 emoji jobs at once")
    token = "setup token 1234-5678"
    commands = [f"{i:02d} " + "🔥" * 60 for i in range(16)]
    board = load_board("sim")
    caps = msgspec.structs.replace(DEFAULT_CAPABILITIES, lines=65535, max_body=max_body)
    with tempfile.TemporaryDirectory(prefix="qey-bench-") as tmp:
        port = Path(tmp) / "display"
        config = msgspec.structs.replace(board.display, port=str(port), baud=BAUD)
        endpoint = PtyEndpoint(port)
        emulator = DisplayEmulator(endpoint, screen=Screen(caps))
        async with bench_runtime(Counter) as runtime, asyncio.TaskGroup() as tg:
            service = DisplayService(runtime, config, clock=runtime.clock, board=board.name)
            stopped: list[BaseException] = []

            async def serve() -> None:
                try:
                    await service.run()
                except Exception as err:  # as the appliance's Hardware does: it runs on without
                    stopped.append(err)

            tasks = [tg.create_task(emulator.run()), tg.create_task(serve())]
            async with asyncio.timeout(10):
                while service.capabilities is None:  # noqa: ASYNC110 - set by the reader task
                    await asyncio.sleep(0.01)
            service.show_notice(token)
            crowd = [runtime.spawn("counter", JOB, f"c{i}") for i in range(112)]
            start = time.perf_counter()
            jobs = [runtime.open_job(command) for command in commands]
            emoji = [runtime.spawn("counter", job, "count") for job in jobs]
            while time.perf_counter() - start < LINK_S:
                for i in range(2_000):
                    await runtime.send(crowd[i % len(crowd)], Ping(n=i), job=JOB)
                for ref, job in zip(emoji, jobs, strict=True):  # the newest activity: shown
                    await runtime.send(ref, Ping(), job=job)
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - start
            screen = emulator.screen
            shown = {line.job for line in screen.lines()}
            jobs_shown = sum(any(c.startswith(j) and len(j) > 4 for j in shown) for c in commands)
            s = service.stats
            figure("lines per frame (of 65535 claimed)", service.lines, "lines")
            figure("frames built", s.frames_built / elapsed, "frames/s")
            figure("frames sent", s.frames_sent / elapsed, "frames/s")
            figure("frames dropped (oldest first, link busy)", s.frames_dropped, "frames")
            figure("frames unsendable (dropped, counted)", s.frames_unsendable, "frames")
            figure("bytes on the line", s.bytes_sent / elapsed, "B/s")
            figure("frames the emulator decoded", screen.frames, "frames")
            figure("display's decode errors", emulator.rx_errors, "")
            figure("emoji jobs on the display", jobs_shown, f"of {len(commands)}")
            figure("connects", s.connects, "")
            goal("service still running", float(not stopped), 1, "", at_least=True)
            goal("link still up", float(service.connected.is_set()), 1, "", at_least=True)
            goal("token shown", float(screen.texts.get(2) == token), 1, "", at_least=True)
            goal("frames unsendable", s.frames_unsendable, 0, "frames")
            for task in tasks:
                task.cancel()
        endpoint.close()


async def main() -> None:
    if sys.argv[1:] == ["overload"]:
        for max_body in (65535, 300):
            await overload(max_body)
        return
    header("display service: events absorbed (64 instances, one-way events)")
    base = median([await bare() for _ in range(REPS)])
    runs = [await with_display(10.0, 16) for _ in range(REPS)]
    ours = median([r[0] for r in runs])
    service = runs[-1][1]
    figure("runtime alone", base, "events/s")
    figure("runtime + display service", ours, "events/s")
    figure("events the service took into its scene", service.stats.events, "events")
    figure("records its watch dropped (must be 0)", service.stats.records_dropped, "events")
    figure("deliveries its watch dropped", service.stats.traffic_dropped, "events")
    figure("what the scene alone can take in", scene_capacity(), "events/s")
    r = ratio("with display / alone", ours, base, higher_is_better=True)
    goal("events/s ratio", r, 0.7, "x", at_least=True)

    capacity = BAUD / 10
    for fps, lines in ((10.0, 16), (60.0, 64)):
        header(f"115200-baud link: {fps:g} fps, {lines} lines, {LINK_S:g} s under load")
        _rate, service, emulator, elapsed = await with_display(fps, lines, work=LINK_S)
        s = service.stats
        figure("frames built", s.frames_built / elapsed, "frames/s")
        figure("frames sent", s.frames_sent / elapsed, "frames/s")
        figure("frames dropped (oldest first)", s.frames_dropped, "frames")
        per_frame = s.bytes_sent / max(s.frames_sent, 1)
        figure("bytes per frame sent (with names, texts)", per_frame, "B")
        figure("bytes on the line", s.bytes_sent / elapsed, "B/s")
        figure("link used", 100 * s.bytes_sent / elapsed / capacity, "%")
        figure("frames the emulator decoded", emulator.screen.frames, "frames")
        figure("display's decode errors", emulator.rx_errors, "")
        figure("display's nacks", s.nacks, "")
        if fps == 10.0:
            goal("link used at 10 fps", 100 * s.bytes_sent / elapsed / capacity, 50, "%")
            goal("frames dropped at 10 fps", s.frames_dropped, 0, "frames")
    for max_body in (65535, 300):
        await overload(max_body)


if __name__ == "__main__":
    asyncio.run(main())

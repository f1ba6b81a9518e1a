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
"""

from __future__ import annotations

import asyncio
import socket
import time

import msgspec
from _common import JOB, Counter, Ping, bench_runtime, figure, goal, header, median, ratio

from appliance.events import Envelope, TaskRef, TaskSpawned, TopicRef
from appliance.hal.board import load_board
from appliance.hal.display.emulator import DisplayEmulator
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


async def main() -> None:
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


if __name__ == "__main__":
    asyncio.run(main())

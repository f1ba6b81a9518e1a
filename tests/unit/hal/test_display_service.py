"""The display service against the emulator over a socket pair: frames at a fixed rate,
oldest frames dropped (and counted) when the link is slow, the port reopened when it fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from appliance.events import JobContext
from appliance.hal.board import BoardProfile
from appliance.hal.display.emulator import DisplayEmulator
from appliance.hal.display.link import FdLink, Link
from appliance.hal.display.messages import Capabilities
from appliance.hal.display.render import render_text
from appliance.hal.display.screen import DEFAULT_CAPABILITIES, Screen
from appliance.hal.display.service import DisplayService
from appliance.hal.errors import DisplayUnavailable
from appliance.runtime import FakeClock, Runtime
from tests.support import Add

pytestmark = pytest.mark.unit


class SocketPairEndpoint:
    """Both ends of a fresh socket pair per connection: the service gets one, the emulator
    the other. ``unplug`` closes them, as pulling the adapter would; ``plug`` allows the next."""

    description = "socketpair"

    def __init__(self) -> None:
        self.plugged = True
        self._pending: asyncio.Queue[socket.socket] = asyncio.Queue()
        self._ends: list[socket.socket] = []
        self._loop = asyncio.get_running_loop()

    def open_for_service(self) -> Link:
        if not self.plugged:
            raise DisplayUnavailable("unplugged")
        a, b = socket.socketpair()
        self._ends += [a, b]
        self._loop.call_soon_threadsafe(self._pending.put_nowait, b)
        return FdLink(a.fileno(), "service-end", owned=a)

    def accept(self) -> Link:
        b = asyncio.run_coroutine_threadsafe(self._pending.get(), self._loop).result()
        return FdLink(b.fileno(), "display-end", owned=b)

    def unplug(self) -> None:
        self.plugged = False
        for end in self._ends:
            end.shutdown(socket.SHUT_RDWR)
        self._ends.clear()

    def close(self) -> None:
        pass


async def until(condition: Callable[[], bool], clock: FakeClock, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await clock.advance(0.01)
            await asyncio.sleep(0.001)


Rig = tuple[DisplayService, DisplayEmulator, SocketPairEndpoint, FakeClock]


@contextlib.asynccontextmanager
async def running_display(
    runtime: Runtime, board: BoardProfile, capabilities: Capabilities = DEFAULT_CAPABILITIES
) -> AsyncIterator[Rig]:
    """The display service at 10 fps and the emulator (advertising ``capabilities``), joined
    by a socket pair."""
    clock = FakeClock()
    endpoint = SocketPairEndpoint()
    config = msgspec.structs.replace(board.display, fps=10.0)
    service = DisplayService(
        runtime, config, clock=clock, board="sim", open_link=endpoint.open_for_service
    )
    emulator = DisplayEmulator(endpoint, screen=Screen(capabilities))
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(service.run()), tg.create_task(emulator.run())]
        yield service, emulator, endpoint, clock
        for task in tasks:
            task.cancel()


@pytest.fixture
async def rig(runtime: Runtime, board: BoardProfile) -> AsyncIterator[Rig]:
    async with running_display(runtime, board) as started:
        yield started


async def test_the_display_greets_and_shows_live_agents(
    rig: Rig, runtime: Runtime, job: JobContext
) -> None:
    service, emulator, _, clock = rig
    await until(lambda: service.capabilities is not None, clock)
    assert service.lines == emulator.screen.capabilities.lines
    ref = runtime.spawn("counter", job, "count things")
    runtime.publish_nowait(ref, Add(by=1), job=job)
    await until(lambda: any(s.agent == "counter" for s in emulator.screen.lines()), clock)
    assert emulator.screen.texts[0].startswith("qEY-0 ")
    await until(lambda: service.stats.acks >= 1, clock)
    assert service.stats.rx_errors == 0 and emulator.rx_errors == 0


async def test_a_storm_of_events_still_makes_ten_frames_a_second(
    rig: Rig, runtime: Runtime, job: JobContext
) -> None:
    service, _, _, clock = rig
    await until(lambda: service.stats.frames_sent >= 1, clock)
    refs = [runtime.spawn("counter", job, f"count {i}") for i in range(5)]
    before = service.stats.frames_built
    for _ in range(10):  # one second of fake time, 200 events per tick
        for ref in refs:
            for _ in range(40):
                runtime.publish_nowait(ref, Add(), job=job)
        await asyncio.sleep(0)
        await clock.advance(0.1)
    assert service.stats.events >= 2000
    assert 9 <= service.stats.frames_built - before <= 11


async def test_a_slow_link_drops_the_oldest_frames_and_counts_them(
    runtime: Runtime, board: BoardProfile, job: JobContext
) -> None:
    clock = FakeClock()
    endpoint = SocketPairEndpoint()
    slow = msgspec.structs.replace(board.display, fps=10.0, baud=1200)  # 120 bytes/s
    service = DisplayService(runtime, slow, clock=clock, open_link=endpoint.open_for_service)
    emulator = DisplayEmulator(endpoint)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(service.run()), tg.create_task(emulator.run())]
        await until(lambda: service.stats.acks >= 1, clock)
        sent, built = service.stats.bytes_sent, service.stats.frames_built
        ref = runtime.spawn("counter", job, "count")
        for step in range(50):
            runtime.publish_nowait(ref, Add(seq=step), job=job)
            await asyncio.sleep(0.001)
            await clock.advance(0.1)
        stats = service.stats
        queued = stats.frames_built - stats.frames_sent - stats.frames_dropped
        assert stats.frames_built - built >= 45  # the frame rate held
        assert stats.frames_dropped >= 15 and 0 <= queued <= 2
        assert stats.bytes_sent - sent <= 120 * 5 + 200  # 5 s at 120 bytes/s, plus one write
        for task in tasks:
            task.cancel()


async def test_the_port_is_reopened_after_it_vanishes(
    rig: Rig, runtime: Runtime, job: JobContext
) -> None:
    service, emulator, endpoint, clock = rig
    await until(lambda: service.stats.acks >= 1, clock)
    endpoint.unplug()
    await until(lambda: not service.connected.is_set(), clock)
    await clock.advance(10.0)  # retries fail while it is gone
    assert service.stats.connects == 1
    endpoint.plugged = True
    service.poke()  # what the hot-plug monitor does when the adapter is back
    await until(lambda: service.stats.connects == 2 and service.connected.is_set(), clock)
    ref = runtime.spawn("counter", job, "after replug")
    runtime.publish_nowait(ref, Add(), job=job)
    await until(lambda: any(s.agent == "counter" for s in emulator.screen.lines()), clock)
    assert emulator.connections == 2


async def test_an_instance_older_than_the_display_shows_its_jobs_command(
    runtime: Runtime, board: BoardProfile
) -> None:
    """The display can start after the runtime (a replugged adapter, the appliance's own
    start order): the jobs of instances it did not see begin are read from the store."""
    job = runtime.open_job("watch the lab network")
    runtime.spawn("counter", job, "count things")
    await runtime.commit()
    async with running_display(runtime, board) as (_, emulator, _, clock):
        await until(lambda: len(emulator.screen.texts) > 1 and emulator.screen.texts[1], clock)
        assert emulator.screen.texts[0].endswith("· 1 job · 1 agent")
        assert emulator.screen.texts[1] == "* watch the lab network"


EMOJI_COMMANDS = [f"{i:02d} " + "🔥" * 60 for i in range(16)]
TOKEN = "setup token 1234-5678"


def shows_every_job(screen: Screen, commands: list[str]) -> bool:
    """Each command's job is on a line, cut (if at all) at a character, not a byte."""
    shown = {line.job for line in screen.lines()}
    return all(any(c.startswith(s) and len(s) >= 4 for s in shown) for c in commands)


async def test_sixteen_emoji_commands_at_once_leave_the_display_up_and_the_token_shown(
    runtime: Runtime, board: BoardProfile
) -> None:
    """Their names, 16 x 48 emoji, are 3 kB: more than one frame may carry."""
    async with running_display(runtime, board) as (service, emulator, _, clock):
        await until(lambda: service.capabilities is not None, clock)
        service.show_notice(TOKEN)
        for command in EMOJI_COMMANDS:
            runtime.spawn("counter", runtime.open_job(command), "count")
        await until(lambda: shows_every_job(emulator.screen, EMOJI_COMMANDS), clock)
        await until(lambda: emulator.screen.texts.get(2) == TOKEN, clock)
        assert service.connected.is_set() and service.stats.connects == 1
        assert emulator.rx_errors == 0 and service.stats.nacks == 0
        assert service.stats.frames_unsendable == 0  # split and cut: nothing had to go
        assert all(len(line.job.encode()) <= 96 for line in emulator.screen.lines())


@pytest.mark.parametrize("max_body", [65535, 300])
async def test_a_display_advertising_absurd_sizes_gets_frames_that_fit(
    runtime: Runtime, board: BoardProfile, max_body: int
) -> None:
    """``lines=65535`` once made a 120-instance frame too big to send; what it says it takes
    (``max_body``) is honoured within sane bounds, and the emulator drops anything larger."""
    caps = msgspec.structs.replace(DEFAULT_CAPABILITIES, lines=65535, max_body=max_body)
    async with running_display(runtime, board, caps) as (service, emulator, _, clock):
        await until(lambda: service.capabilities is not None, clock)
        service.show_notice(TOKEN)
        for command in EMOJI_COMMANDS:
            job = runtime.open_job(command)
            for i in range(8):
                runtime.spawn("counter", job, f"count {i}")
        screen = emulator.screen
        await until(lambda: screen.frame is not None and screen.frame.total == 128, clock)
        await until(lambda: screen.texts.get(2) == TOKEN, clock)
        assert 1 <= len(screen.lines()) == service.lines < 128
        assert service.connected.is_set() and service.stats.connects == 1
        assert emulator.rx_errors == 0 and service.stats.nacks == 0
        assert service.stats.frames_unsendable == 0


async def test_commands_cannot_write_over_the_setup_token(
    runtime: Runtime, board: BoardProfile
) -> None:
    """A command is shown on the display: its control characters (a terminal's clear
    screen, a carriage return, a right-to-left override) are not passed on."""
    command = "\x1b[2J\x1b[H\r\u202e" + "x" * 200
    async with running_display(runtime, board) as (service, emulator, _, clock):
        await until(lambda: service.capabilities is not None, clock)
        service.show_notice(TOKEN)
        runtime.spawn("counter", runtime.open_job(command), "count")
        await until(lambda: emulator.screen.texts.get(1, "").endswith("xxx"), clock)
        picture = render_text(emulator.screen, color=False)
        assert TOKEN in picture
        assert not any(c in picture for c in "\x1b\r\u202e")
        assert len(emulator.screen.texts[1].encode()) <= 160


class FlakyLink:
    """A port whose first write fails in a way no one foresaw (not DisplayUnavailable)."""

    def __init__(self, inner: Link, fail: bool) -> None:
        self._inner, self._fail = inner, fail

    def write(self, data: bytes) -> None:
        if self._fail:
            raise RuntimeError("driver bug")
        self._inner.write(data)

    def read(self) -> bytes:
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


async def test_any_failure_of_the_link_ends_in_a_reconnect_not_a_dark_display(
    runtime: Runtime, board: BoardProfile, job: JobContext
) -> None:
    clock = FakeClock()
    endpoint = SocketPairEndpoint()
    opened: list[Link] = []

    def open_link() -> Link:
        opened.append(FlakyLink(endpoint.open_for_service(), fail=not opened))
        return opened[-1]

    service = DisplayService(runtime, board.display, clock=clock, open_link=open_link)
    emulator = DisplayEmulator(endpoint)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(service.run()), tg.create_task(emulator.run())]
        runtime.spawn("counter", job, "after the failure")
        await until(lambda: any(s.agent == "counter" for s in emulator.screen.lines()), clock)
        assert service.stats.connects == 2
        for task in tasks:
            task.cancel()


async def test_a_message_no_frame_can_hold_is_dropped_counted_and_logged_once(
    runtime: Runtime, board: BoardProfile, job: JobContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A board name of 5,000 bytes makes a Hello no frame can hold, on every connection:
    that message goes, counted, with one warning in the log; the display still shows."""
    clock = FakeClock()
    endpoint = SocketPairEndpoint()
    service = DisplayService(
        runtime, board.display, clock=clock, board="b" * 5000, open_link=endpoint.open_for_service
    )
    emulator = DisplayEmulator(endpoint)
    with caplog.at_level(logging.WARNING, logger="appliance.hal.display.service"):
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(service.run()), tg.create_task(emulator.run())]
            runtime.spawn("counter", job, "count")
            await until(lambda: any(s.agent == "counter" for s in emulator.screen.lines()), clock)
            endpoint.unplug()
            await until(lambda: not service.connected.is_set(), clock)
            endpoint.plugged = True
            service.poke()
            await until(lambda: service.stats.connects == 2 and service.stats.acks >= 2, clock)
            for task in tasks:
                task.cancel()
    assert service.stats.frames_unsendable == 2  # one Hello per connection
    dropped = [r.getMessage() for r in caplog.records if "cannot be sent" in r.getMessage()]
    assert len(dropped) == 1 and "dropped Hello" in dropped[0]

"""The display end to end: the service on one side of a pty pair, the emulator on the other,
a real job in the runtime, and the picture the display would show."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from appliance.hal.board import BoardProfile, load_board
from appliance.hal.display.emulator import DisplayEmulator, PtyEndpoint
from appliance.hal.display.messages import Status
from appliance.hal.display.render import render_png, render_text
from appliance.hal.display.screen import DEFAULT_CAPABILITIES, Screen
from appliance.hal.display.service import DisplayService
from appliance.hal.hotplug import HotplugService
from appliance.runtime import Runtime
from tests.support import FakeMonitor, until

pytestmark = pytest.mark.integration

DISPLAY_MATCH = {"SUBSYSTEM": "tty", "ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6015"}


@pytest.fixture
def board(tmp_path: Path) -> BoardProfile:
    """The sim board with its display on a pty, through a stable symlink as udev makes."""
    sim = load_board("sim")
    display = msgspec.structs.replace(
        sim.display, port=str(tmp_path / "qey-display"), fps=20.0, match=DISPLAY_MATCH
    )
    return msgspec.structs.replace(sim, display=display)


@pytest.fixture
async def emulator(board: BoardProfile) -> AsyncIterator[DisplayEmulator]:
    endpoint = PtyEndpoint(Path(board.display.port))
    emulator = DisplayEmulator(endpoint)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(emulator.run())
        yield emulator
        task.cancel()
    endpoint.close()


async def test_a_job_shows_on_the_emulated_display_and_in_a_picture(
    runtime: Runtime, board: BoardProfile, emulator: DisplayEmulator, tmp_path: Path
) -> None:
    service = DisplayService(runtime, board.display, clock=runtime.clock, board=board.name)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        await until(lambda: service.capabilities is not None)
        _job, root = runtime.submit("alpha beta gamma", "parent")
        shown: set[str] = set()

        def seen_all() -> bool:
            shown.update(f"{s.depth}:{s.agent}" for s in emulator.screen.lines())
            return {"0:parent", "1:echo"} <= shown

        await until(seen_all)
        assert (await runtime.wait_task(root)).status == "done"
        await until(lambda: any(s.status == Status.DONE for s in emulator.screen.lines()))
        png = tmp_path / "display.png"
        render_png(emulator.screen, png)
        task.cancel()

    with Image.open(png) as picture:
        assert picture.size == (480, 320)
        colors = picture.getcolors(maxcolors=1 << 16) or []
        assert len(colors) > 10  # text and lines were drawn, not a blank
    assert "parent#" in render_text(emulator.screen, color=False)
    assert service.stats.rx_errors == 0 and emulator.rx_errors == 0
    assert emulator.screen.unknown == 0 and service.stats.nacks == 0
    assert service.stats.acks >= 1 and service.stats.frames_dropped == 0


async def test_the_display_unplugged_and_plugged_back_without_losing_the_runtime(
    runtime: Runtime, board: BoardProfile, emulator: DisplayEmulator
) -> None:
    service = DisplayService(runtime, board.display, clock=runtime.clock, board=board.name)
    monitor = FakeMonitor()
    hotplug = HotplugService(
        monitor, lambda _event: None, display_match=DISPLAY_MATCH, on_display=service.poke
    )
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(service.run()), tg.create_task(hotplug.run())]
        await until(lambda: service.stats.acks >= 1)

        emulator.endpoint.close()  # the adapter is pulled: the pty and its symlink vanish
        monitor.add("remove", "tty", "ttyUSB0", **DISPLAY_MATCH)
        await until(lambda: not service.connected.is_set())
        _job, root = runtime.submit("while unplugged", "parent")
        assert (await runtime.wait_task(root)).status == "done"  # the runtime did not notice

        replugged = DisplayEmulator(PtyEndpoint(Path(board.display.port)))
        tasks.append(tg.create_task(replugged.run()))
        monitor.add("add", "tty", "ttyUSB0", device_node="/dev/ttyUSB0", **DISPLAY_MATCH)
        await until(lambda: service.stats.connects == 2 and replugged.screen.frame is not None)
        _job, root = runtime.submit("after replug", "parent")
        await until(lambda: any(s.agent == "echo" for s in replugged.screen.lines()))
        assert (await runtime.wait_task(root)).status == "done"
        for task in tasks:
            task.cancel()
    replugged.endpoint.close()
    assert hotplug.seen == 2


async def test_the_service_knows_what_the_display_shows_and_can_post_a_notice(
    runtime: Runtime, board: BoardProfile, emulator: DisplayEmulator
) -> None:
    service = DisplayService(runtime, board.display, clock=runtime.clock, board=board.name)
    assert service.latest_png() is None  # nothing sent yet: no picture to show
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(service.run())
        await until(lambda: service.capabilities is not None)
        service.show_notice("setup token 1234-5678")
        service.status_extra = lambda: "1 critical"  # the open serious findings (app.py's)
        runtime.submit("alpha", "parent")
        await until(lambda: "setup token 1234-5678" in emulator.screen.texts.values())
        await until(lambda: emulator.screen.texts.get(0, "").endswith(" · 1 critical"))
        await until(lambda: service.mirror.texts == emulator.screen.texts)
        png = service.latest_png()
        task.cancel()
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")


async def test_the_overload_that_once_darkened_the_display_leaves_it_up_with_the_token(
    runtime: Runtime, board: BoardProfile
) -> None:
    """A display claiming 65,535 lines, 112 busy agents, then 16 jobs whose commands are 60
    emoji each (3 kB of names): every job shows, the token stays, the link never drops."""
    caps = msgspec.structs.replace(DEFAULT_CAPABILITIES, lines=65535, max_body=65535)
    endpoint = PtyEndpoint(Path(board.display.port))
    emulator = DisplayEmulator(endpoint, screen=Screen(caps))
    service = DisplayService(runtime, board.display, clock=runtime.clock, board=board.name)
    token = "setup token 1234-5678"
    commands = [f"{i:02d} " + "🔥" * 60 for i in range(16)]
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(emulator.run()), tg.create_task(service.run())]
        await until(lambda: service.capabilities is not None)
        service.show_notice(token)
        crowd = runtime.open_job("a crowd")
        for i in range(112):
            runtime.spawn("counter", crowd, f"count {i}")
        for command in commands:
            runtime.spawn("counter", runtime.open_job(command), "count")

        def every_job_shown() -> bool:
            shown = {line.job for line in emulator.screen.lines()}
            return all(any(c.startswith(s) and len(s) > 4 for s in shown) for c in commands)

        screen = emulator.screen
        await until(lambda: screen.frame is not None and screen.frame.total == 128)
        await until(every_job_shown)
        await until(lambda: screen.texts.get(2) == token)
        for task in tasks:
            task.cancel()
    endpoint.close()
    assert len(screen.lines()) == service.lines < 128
    assert service.stats.connects == 1 and emulator.connections == 1
    assert emulator.rx_errors == 0 and service.stats.rx_errors == 0
    assert service.stats.nacks == 0 and service.stats.frames_unsendable == 0
    assert token in render_text(screen, color=False)

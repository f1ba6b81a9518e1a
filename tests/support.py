"""Agent types the tests use to exercise the runtime through its public API."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import msgspec

from appliance.events import Event, Started
from appliance.hal.hotplug import DeviceChanged
from appliance.runtime import Agent, Context


class Add(Event, frozen=True, tag="test.add"):
    by: int = 1
    seq: int = 0
    suspend: bool = False  # really wait once after starting, to take the Task path


class Get(Event, frozen=True, tag="test.get"):
    pass


class Crash(Event, frozen=True, tag="test.crash"):
    message: str = "boom"


class Hang(Event, frozen=True, tag="test.hang"):
    pass


class Pause(Event, frozen=True, tag="test.pause"):
    """Suspends until the test releases ``gate``: a handler that really waits."""


class Unhandled(Event, frozen=True, tag="test.unhandled"):
    pass


class Noticed(Event, frozen=True, tag="test.noticed"):
    what: str


class CounterState(msgspec.Struct):
    count: int = 0
    seen: list[int] = msgspec.field(default_factory=list)


class Counter(Agent):
    name = "counter"
    description = "Counts; crashes, hangs or pauses on request."
    State = CounterState
    handler_timeout_s = 0.5
    concurrency = 4
    inbox_size = 64
    topics = ("news",)

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate or asyncio.Event()
        self.noticed: list[str] = []

    async def on_add(self, event: Add, ctx: Context[CounterState]) -> int:
        ctx.state.seen.append(event.seq)  # start order: recorded before any suspension
        if event.suspend:
            await asyncio.sleep(0)
        ctx.state.count += event.by
        return ctx.state.count

    async def on_get(self, event: Get, ctx: Context[CounterState]) -> int:
        return ctx.state.count

    async def on_crash(self, event: Crash, ctx: Context[CounterState]) -> None:
        raise RuntimeError(event.message)

    async def on_hang(self, event: Hang, ctx: Context[CounterState]) -> None:
        await asyncio.Event().wait()

    async def on_pause(self, event: Pause, ctx: Context[CounterState]) -> None:
        await self.gate.wait()

    async def on_noticed(self, event: Noticed, ctx: Context[CounterState]) -> None:
        self.noticed.append(event.what)


class Echo(Agent):
    """A task-shaped agent: its start event's return value is the task's result."""

    name = "echo"
    description = "Returns its objective, or fails when the objective says so."

    async def on_start(self, event: Started, ctx: Context[msgspec.Struct]) -> str:
        await asyncio.sleep(0)
        if "fail" in event.objective:
            raise ValueError(f"asked to fail: {event.objective}")
        return event.objective.upper()


class Parent(Agent):
    """Fans out one echo child per word of its objective and joins their results."""

    name = "parent"
    description = "Fans out to echo children."

    async def on_start(self, event: Started, ctx: Context[msgspec.Struct]) -> list[str]:
        outcomes = await ctx.fan_out(
            "echo", [(word, Started(objective=word)) for word in event.objective.split()]
        )
        return [o.result if o.ok else f"!{o.status}" for o in outcomes]


def new_network_namespace() -> list[str]:
    """The command prefix that runs a command in a network namespace of its own, with only
    loopback (down until the command brings it up). Root needs no user namespace (and may not
    make one inside a chroot); anyone else gets one in which they are root."""
    if os.geteuid() == 0:
        return ["unshare", "--net"]
    return ["unshare", "--map-root-user", "--net"]


class FakeMonitor:
    """The hardware edge of hot-plug, for tests: ``add`` queues an event exactly as udev
    would deliver it (``appliance.hal.hotplug.DeviceMonitor``)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DeviceChanged] = asyncio.Queue()

    def add(self, action: str, subsystem: str, sys_name: str, **properties: str) -> None:
        node = properties.pop("device_node", "")
        self._queue.put_nowait(
            DeviceChanged(
                action=action,
                subsystem=subsystem,
                sys_name=sys_name,
                device_node=node,
                properties=properties,
            )
        )

    async def events(self) -> AsyncIterator[DeviceChanged]:
        while True:
            yield await self._queue.get()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for what other tasks or threads change (a screen, an instance's counters):
    the condition checked every 10 ms, a TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state that threads and other tasks change
            await asyncio.sleep(0.01)

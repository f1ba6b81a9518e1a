"""The one place that wires real parts together: store, runtime, agents, control API."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from aiohttp import web

from appliance import __version__
from appliance.agents import register_builtin
from appliance.agents.netwatch import start_watching
from appliance.errors import BadCommand, NoConfidentMatch
from appliance.events import JobContext, TaskRef
from appliance.hal.board import load_board
from appliance.hal.hardware import Hardware
from appliance.router import RouteDecision, Router
from appliance.runtime import Runtime, Store, running
from appliance.settings import Settings
from appliance.web.api import make_api

log = logging.getLogger(__name__)


class Submitted(NamedTuple):
    """A started job: its ids, its root task, and the router's decision (None when the
    caller named the agent type)."""

    job: JobContext
    root: TaskRef
    route: RouteDecision | None


class Appliance:
    def __init__(self, settings: Settings, router: Router | None = None) -> None:
        self.settings = settings
        self.board = load_board(settings.board)  # a bad profile fails here, naming the field
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.router = router or Router()  # a missing or corrupt model fails here, at start
        self.store = Store(settings.db_path)
        self.runtime = Runtime(self.store)
        self.runtime.on_agent_type(self.router.add_type)
        register_builtin(self.runtime, settings)

    async def submit(self, command: str, agent_type: str | None = None) -> Submitted:
        """Start a job for a command. Without an agent type the router picks one (off the
        event loop); no confident match raises NoConfidentMatch naming the candidates. If the
        routed type can't parse the command, the next candidate above the threshold tries."""
        if agent_type is not None:
            return Submitted(*self.runtime.submit(command, agent_type), None)
        route = await self.router.route(command)
        if route.agent_type is None:
            raise NoConfidentMatch(
                command, [(c.agent_type, c.confidence) for c in route.alternatives]
            )
        threshold = self.router.settings.threshold
        fallbacks = [c.agent_type for c in route.alternatives if c.confidence >= threshold]
        first_error: BadCommand | None = None
        for candidate in [route.agent_type, *fallbacks]:
            try:
                return Submitted(*self.runtime.submit(command, candidate), route)
            except BadCommand as err:
                log.info("router: %s can't take %r: %s", candidate, command, err)
                first_error = first_error or err
        assert first_error is not None
        raise first_error

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run the appliance until cancelled: the runtime plus the control API on a socket
        only this user can open (the CLI's way in; nothing listens on the network)."""
        sock = self.settings.control_socket
        sock.unlink(missing_ok=True)
        runner = web.AppRunner(make_api(self.runtime, self.submit), access_log=None)
        await runner.setup()
        try:
            async with running(self.runtime), asyncio.TaskGroup() as tg:
                tg.create_task(self._hardware().run(), name="qey-hardware")
                await self.router.prepare()
                old = os.umask(0o177)
                try:
                    await web.UnixSite(runner, str(sock)).start()
                finally:
                    os.umask(old)
                print(
                    f"qey ready {__version__} data={self.settings.data_dir} "
                    f"scope={','.join(self.settings.scope)} router={self.router.provider}",
                    flush=True,
                )
                if ready is not None:
                    ready.set()
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            sock.unlink(missing_ok=True)
            self.store.close()

    def _hardware(self) -> Hardware:
        """The board's LEDs, display and hot-plug (the sim profile on a host); device events
        go to the network watcher, which rescans the scope on its own when the network
        changes."""
        return Hardware(
            self.board,
            self.runtime,
            clock=self.runtime.clock,
            hotplug_sink=start_watching(self.runtime),
            appliance_version=__version__,
        )


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[Appliance]:
    """An appliance running inside this process (no control socket) for one-off commands."""
    appliance = Appliance(settings)
    try:
        async with running(appliance.runtime):
            await appliance.router.prepare()
            yield appliance
    finally:
        appliance.store.close()

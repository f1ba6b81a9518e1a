"""The one place that wires real parts together: store, runtime, agents, control API."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from appliance import __version__
from appliance.agents import register_builtin
from appliance.events import JobContext, TaskRef
from appliance.runtime import Runtime, Store, running
from appliance.settings import Settings
from appliance.web.api import make_api

log = logging.getLogger(__name__)

DEFAULT_AGENT = "coordinator"  # until the router picks one per command


class Appliance:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = Store(settings.db_path)
        self.runtime = Runtime(self.store)
        register_builtin(self.runtime, settings)

    def submit(self, command: str, agent_type: str | None = None) -> tuple[JobContext, TaskRef]:
        return self.runtime.submit(command, agent_type or DEFAULT_AGENT)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run the appliance until cancelled: the runtime plus the control API on a socket
        only this user can open (the CLI's way in; nothing listens on the network)."""
        sock = self.settings.control_socket
        sock.unlink(missing_ok=True)
        runner = web.AppRunner(make_api(self.runtime, self.submit), access_log=None)
        await runner.setup()
        try:
            async with running(self.runtime):
                old = os.umask(0o177)
                try:
                    await web.UnixSite(runner, str(sock)).start()
                finally:
                    os.umask(old)
                print(
                    f"qey ready {__version__} data={self.settings.data_dir} "
                    f"scope={','.join(self.settings.scope)}",
                    flush=True,
                )
                if ready is not None:
                    ready.set()
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            sock.unlink(missing_ok=True)
            self.store.close()


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[Appliance]:
    """An appliance running inside this process (no control socket) for one-off commands."""
    appliance = Appliance(settings)
    try:
        async with running(appliance.runtime):
            yield appliance
    finally:
        appliance.store.close()

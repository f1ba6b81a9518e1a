"""The owner's way in from the device's console, whatever the sign-in throttle says.

``qey passwd`` sets the admin password through ``PUT /api/v1/console/password`` on the
control socket, which only the appliance's own user can open (its file mode is its
authentication, as for every CLI command). The panel never serves this route. Setting the
password this way ends every session (their live streams close), forgets every failure the
throttle counted, spends the setup token and takes its notice off the display. When no
appliance runs, ``set_password_offline`` does the same to the data directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec
from aiohttp import web

from appliance.web.api import read_body
from appliance.web.credentials import Credentials
from appliance.web.errors import ActionRefused
from appliance.web.passwords import MAX_PASSWORD_LEN, check_new_password
from appliance.web.routes import Route, add_routes
from appliance.web.sessions import Sessions
from appliance.web.sessionstore import SESSIONS_FILE, SessionStore
from appliance.web.throttle import LoginThrottle

log = logging.getLogger(__name__)

PASSWORD_PATH = "/api/v1/console/password"


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LEN)]


class Console:
    """What the console may do to a running panel."""

    def __init__(
        self,
        credentials: Credentials,
        sessions: Sessions,
        throttle: LoginThrottle,
        on_configured: Callable[[], None],
    ) -> None:
        self._credentials = credentials
        self._sessions = sessions
        self._throttle = throttle
        self._on_configured = on_configured

    async def set_password(self, password: str) -> None:
        """Set the admin password (WeakPassword: nothing changed); everyone signs in anew."""
        check_new_password(password)
        await asyncio.to_thread(self._credentials.set_password, password)
        await self._sessions.end_all()
        self._throttle.clear()
        self._on_configured()
        log.warning("console: the admin password was set; every session ended")


CONSOLE = web.AppKey("console", Console)  # on the panel's app
ConsoleOf = Callable[[], Console | None]
CONSOLE_OF: web.AppKey[ConsoleOf] = web.AppKey("console_of")


async def put_password(request: web.Request) -> web.Response:
    body = await read_body(request, PasswordReset)
    console = request.app[CONSOLE_OF]()
    if console is None:
        raise ActionRefused("no panel runs here: stop the appliance and run qey passwd again")
    await console.set_password(body.password)
    return web.Response(status=204)


def add_console_routes(app: web.Application, console_of: ConsoleOf) -> None:
    """The console's routes, for the control socket's app only. ``console_of`` gives the
    running panel's Console (None while there is none)."""
    app[CONSOLE_OF] = console_of
    add_routes(app, (Route("PUT", PASSWORD_PATH, put_password),))


def set_password_offline(data_dir: Path, password: str) -> None:
    """``qey passwd`` with no appliance running: the same, on the data directory."""
    check_new_password(password)
    Credentials(data_dir).set_password(password)
    store = SessionStore(data_dir / SESSIONS_FILE)
    try:
        store.remove_all_but(None)
    finally:
        store.close()

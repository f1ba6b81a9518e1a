"""The owner's way in from the console (``qey passwd`` over the control socket): the password
is set whatever the throttle says, every session ends with its live streams, the throttle
forgets, and the hardware is told the setup token is spent. The setup page tells it too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.runtime import FakeClock, Runtime
from appliance.web.api import make_api
from appliance.web.console import add_console_routes
from appliance.web.credentials import Credentials
from appliance.web.panel import Panel
from tests.web.conftest import PASSWORD, form_token, make_test_panel, sign_in

pytestmark = pytest.mark.unit

NEW = "set at the console"
WRONG = "not the password at all"


class Configured:
    """The hardware's side of ``on_configured``: how often it was told."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def _control(
    runtime: Runtime, panel: web.Application | None, aiohttp_client: Any
) -> TestClient[Any, Any]:
    """The control socket's app as app.py builds it, the console's route included."""

    async def submit(command: str, agent_type: str | None) -> Any:
        return (*runtime.submit(command, agent_type or "echo"), None)

    api = make_api(runtime, submit)
    console = Panel(panel, []).console if panel is not None else None
    add_console_routes(api, lambda: console)
    client: TestClient[Any, Any] = await aiohttp_client(api)
    return client


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> bool:
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return True


async def test_the_console_sets_the_password_whatever_the_throttle_says(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    configured = Configured()
    app = make_test_panel(runtime, credentials, clock, on_configured=configured)
    owner: TestClient[Any, Any] = await aiohttp_client(app)
    assert await sign_in(owner, PASSWORD) == 303
    attacker: TestClient[Any, Any] = await aiohttp_client(app)
    for _ in range(12):  # the address is locked out for minutes
        assert await sign_in(attacker, WRONG) in (401, 429)
    assert await sign_in(attacker, PASSWORD) == 429
    control = await _control(runtime, app, aiohttp_client)
    async with owner.ws_connect("/api/v1/live") as ws:
        resp = await control.put("/api/v1/console/password", json={"password": NEW})
        assert resp.status == 204
        assert await _closed(ws)  # the session's stream ended with it
    assert (await owner.get("/api/v1/status")).status == 401  # every session ended
    # the locked-out address signs in at once (the throttle forgot), with the new password
    assert await sign_in(await aiohttp_client(app), NEW) == 303
    assert credentials.verify(NEW) and not credentials.verify(PASSWORD)
    assert configured.calls == 1


async def test_the_console_refuses_a_weak_password_and_changes_nothing(
    client: TestClient[Any, Any], runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    control = await _control(runtime, client.server.app, aiohttp_client)
    for body in ({"password": "short"}, {"password": 3}, {"pass": NEW}):
        resp = await control.put("/api/v1/console/password", json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"] in ("WeakPassword", "BadEvent")
    assert credentials.verify(PASSWORD)
    assert (await client.get("/api/v1/status")).status == 200


async def test_the_console_without_a_panel_says_what_to_do(
    runtime: Runtime, aiohttp_client: Any
) -> None:
    control = await _control(runtime, None, aiohttp_client)
    resp = await control.put("/api/v1/console/password", json={"password": NEW})
    assert resp.status == 409 and "qey passwd" in (await resp.json())["message"]


async def test_the_console_route_is_not_on_the_panel(client: TestClient[Any, Any]) -> None:
    resp = await client.put(
        "/api/v1/console/password",
        json={"password": NEW},
        headers={"X-CSRF-Token": client.csrf},  # type: ignore[attr-defined]
    )
    assert resp.status in (404, 405)


async def test_setup_tells_the_hardware_the_token_is_spent(
    runtime: Runtime, data_dir: Path, clock: FakeClock, aiohttp_client: Any
) -> None:
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None
    configured = Configured()
    client: TestClient[Any, Any] = await aiohttp_client(
        make_test_panel(runtime, creds, clock, on_configured=configured)
    )

    async def setup(tok: str) -> int:
        fields = {
            "csrf_token": form_token(await (await client.get("/setup")).text()),
            "token": tok,
            "password": PASSWORD,
            "confirm": PASSWORD,
        }
        return (await client.post("/setup", data=fields, allow_redirects=False)).status

    assert await setup("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF") == 401
    assert configured.calls == 0
    await clock.advance(5)
    assert await setup(token) == 303
    assert configured.calls == 1

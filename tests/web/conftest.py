"""Fixtures for the panel: a real runtime (the test agent types), the panel app on top, a
signed-in client. Fakes stand in only for what web/ gets from other layers (router, board,
scope), exactly as app.py would hand them over."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.runtime import FakeClock, Runtime
from appliance.scope import Scope
from appliance.web.capabilities import DeviceStatus
from appliance.web.credentials import Credentials
from appliance.web.panel import make_panel
from appliance.web.throttle import LoginThrottle

PASSWORD = "correct horse battery"


class Decision(msgspec.Struct, frozen=True):
    command: str
    agent_type: str | None
    confidence: float
    alternatives: list[str]
    provider: str = "CPUExecutionProvider"


class FakeBoard:
    def status(self) -> DeviceStatus:
        return DeviceStatus(board="sim", simulated=True, leds="ready", display_text=["qEY-0 ready"])

    def display_png(self) -> bytes | None:
        return None


class FakeScope:
    """The app's live scope without its config.toml: the same rules (``Scope``), in memory."""

    def __init__(self) -> None:
        self.networks = ["127.0.0.1/32"]

    def get(self) -> list[str]:
        return list(self.networks)

    def set(self, networks: list[str], *, confirm_large: bool = False) -> list[str]:
        checked = [str(n) for n in Scope(networks, confirm_large=confirm_large).networks]
        self.networks = checked
        return checked


def make_test_panel(
    runtime: Runtime, credentials: Credentials, clock: FakeClock | None = None, **kw: Any
) -> web.Application:
    async def submit(command: str, agent_type: str | None) -> Any:
        chosen = agent_type or "echo"
        job, root = runtime.submit(command, chosen)
        route = None if agent_type else Decision(command, chosen, 0.9, [])
        return job, root, route

    async def route(command: str) -> Decision:
        return Decision(command, "echo", 0.9, ["parent"])

    return make_panel(
        runtime,
        submit,
        credentials,
        clock=clock,
        provider="CPUExecutionProvider",
        route=route,
        device=FakeBoard(),
        scope=kw.pop("scope", FakeScope()),
        throttle=LoginThrottle(clock) if clock is not None else None,
        **kw,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def credentials(data_dir: Path) -> Credentials:
    """An appliance whose admin password is set."""
    creds = Credentials(data_dir)
    creds.set_password(PASSWORD)
    return creds


@pytest.fixture
def scope() -> FakeScope:
    return FakeScope()


@pytest.fixture
async def anon(
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    scope: FakeScope,
    aiohttp_client: Any,
) -> TestClient[Any, Any]:
    """A client with no session yet."""
    client: TestClient[Any, Any] = await aiohttp_client(
        make_test_panel(runtime, credentials, clock, scope=scope)
    )
    return client


@pytest.fixture
async def client(anon: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """A signed-in client; ``client.csrf`` is its session's CSRF token."""
    await sign_in(anon, PASSWORD)
    return anon


async def sign_in(client: TestClient[Any, Any], password: str) -> int:
    """Sign in through the form, as a browser does; returns the POST's status."""
    form = await client.get("/login")
    token = form_token(await form.text())
    resp = await client.post(
        "/login", data={"csrf_token": token, "password": password}, allow_redirects=False
    )
    if resp.status == 303:
        page = await client.get("/")
        client.csrf = csrf_of(await page.text())  # type: ignore[attr-defined]
    return resp.status


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, html
    return found.group(1)

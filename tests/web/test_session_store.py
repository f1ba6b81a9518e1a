"""Sessions outlive a restart of the appliance (they are kept in SQLite in the data
directory), and what ends a session stays ended through one: signing out, a password
change, expiry. The file is owner-only and holds no cookie."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.runtime import FakeClock, Runtime
from appliance.web.credentials import Credentials
from tests.web.conftest import PASSWORD, csrf_of, make_test_panel, sign_in

pytestmark = pytest.mark.unit


def _cookie(client: TestClient[Any, Any]) -> str:
    value: str = client.session.cookie_jar.filter_cookies(client.make_url("/"))["qey_session"].value
    return value


async def _restarted(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any, cookie: str
) -> TestClient[Any, Any]:
    """The same browser against a panel made afresh on the same data directory, as after a
    restart of the appliance."""
    client: TestClient[Any, Any] = await aiohttp_client(
        make_test_panel(runtime, Credentials(credentials.data_dir), clock)
    )
    client.session.cookie_jar.update_cookies({"qey_session": cookie})
    return client


async def test_a_restart_keeps_people_signed_in(
    client: TestClient[Any, Any],
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    aiohttp_client: Any,
) -> None:
    after = await _restarted(runtime, credentials, clock, aiohttp_client, _cookie(client))
    assert (await after.get("/api/v1/status")).status == 200
    csrf = csrf_of(await (await after.get("/")).text())
    assert csrf == client.csrf  # type: ignore[attr-defined]  # the page's token still holds
    resp = await after.post(
        "/api/v1/jobs", json={"command": "hello"}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 202


async def test_signing_out_stays_done_through_a_restart(
    client: TestClient[Any, Any],
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    aiohttp_client: Any,
) -> None:
    cookie = _cookie(client)
    resp = await client.post(
        "/logout",
        data={"csrf_token": client.csrf},  # type: ignore[attr-defined]
        allow_redirects=False,
    )
    assert resp.status == 303
    after = await _restarted(runtime, credentials, clock, aiohttp_client, cookie)
    assert (await after.get("/api/v1/status")).status == 401


async def test_a_password_change_ends_the_others_through_a_restart(
    client: TestClient[Any, Any],
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    aiohttp_client: Any,
) -> None:
    other: TestClient[Any, Any] = await aiohttp_client(client.server.app)
    assert await sign_in(other, PASSWORD) == 303
    resp = await client.post(
        "/api/v1/password",
        json={"current": PASSWORD, "new": "a brand new password"},
        headers={"X-CSRF-Token": client.csrf},  # type: ignore[attr-defined]
    )
    assert resp.status == 204
    kept = await _restarted(runtime, credentials, clock, aiohttp_client, _cookie(client))
    ended = await _restarted(runtime, credentials, clock, aiohttp_client, _cookie(other))
    assert (await kept.get("/api/v1/status")).status == 200
    assert (await ended.get("/api/v1/status")).status == 401


async def test_idle_and_absolute_expiry_hold_across_restarts(
    client: TestClient[Any, Any],
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    aiohttp_client: Any,
) -> None:
    cookie = _cookie(client)
    await clock.advance(1.5 * 3600)
    assert (await client.get("/api/v1/status")).status == 200  # seen: idle restarts here
    await clock.advance(1.5 * 3600)  # 3 h since sign-in, 1.5 h idle: still on
    after = await _restarted(runtime, credentials, clock, aiohttp_client, cookie)
    assert (await after.get("/api/v1/status")).status == 200
    await clock.advance(2 * 3600 + 60)  # idle past 2 h
    after = await _restarted(runtime, credentials, clock, aiohttp_client, cookie)
    assert (await after.get("/api/v1/status")).status == 401

    # absolute: 12 h after signing in, however busy
    fresh: TestClient[Any, Any] = await aiohttp_client(after.server.app)
    assert await sign_in(fresh, PASSWORD) == 303
    cookie = _cookie(fresh)
    for _ in range(11):  # busy every hour
        await clock.advance(3600)
        after = await _restarted(runtime, credentials, clock, aiohttp_client, cookie)
        assert (await after.get("/api/v1/status")).status == 200
    await clock.advance(3600 + 1)
    after = await _restarted(runtime, credentials, clock, aiohttp_client, cookie)
    assert (await after.get("/api/v1/status")).status == 401


def _session_files(data_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Each file of the sessions database: its mode and its bytes."""
    return {
        p.name: (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
        for p in sorted(data_dir.glob("web-sessions.db*"))
    }


async def test_the_sessions_file_is_owner_only_and_holds_no_cookie(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    sid = _cookie(client).split(".")[0]
    files = _session_files(data_dir)
    assert {"web-sessions.db", "web-sessions.db-wal"} <= set(files)  # WAL mode
    for name, (mode, raw) in files.items():
        assert mode == 0o600, name
        assert sid.encode() not in raw and client.csrf.encode() not in raw  # type: ignore[attr-defined]


async def test_a_laxer_sessions_file_is_tightened(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    path = credentials.data_dir / "web-sessions.db"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    os.chmod(path, 0o644)  # whatever the umask
    await aiohttp_client(make_test_panel(runtime, credentials, clock))
    assert _session_files(credentials.data_dir)["web-sessions.db"][0] == 0o600

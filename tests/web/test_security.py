"""The panel's security: no way in without a session, CSRF, slowed guessing, cookie flags,
no default password, secrets on disk owner-only."""

from __future__ import annotations

import asyncio
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from appliance.events import JobContext
from appliance.runtime import FakeClock, Runtime
from appliance.web.auth import set_session_cookie
from appliance.web.credentials import KEY_FILE, PASSWORD_FILE, SETUP_FILE, Credentials
from tests.web.conftest import PASSWORD, csrf_of, form_token, make_test_panel, sign_in

pytestmark = pytest.mark.unit

PUBLIC = {"/login", "/setup"}


def _routes(client: TestClient[Any, Any]) -> list[tuple[str, str]]:
    """Every route the panel has, with its placeholders filled."""
    found = []
    for route in client.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        path = path.replace("{job_id}", "job-x").replace("{task_id}", "task-x")
        path = path.replace("{agent_type}", "echo")
        if path.startswith("/static") or path in PUBLIC or route.method == "HEAD":
            continue
        found.append((route.method, path))
    return found


async def test_no_page_or_api_is_reachable_without_a_session(anon: TestClient[Any, Any]) -> None:
    routes = _routes(anon)
    assert len(routes) > 25
    for method, path in routes:
        resp = await anon.request(method, path, allow_redirects=False, json={})
        if path.startswith("/api/"):
            assert resp.status == 401, (method, path)
            assert (await resp.json())["error"] == "NotSignedIn"
        elif path == "/logout":
            assert resp.status in (303, 401), (method, path)
        else:
            assert resp.status == 303, (method, path)
            assert resp.headers["Location"].startswith("/login?next="), (method, path)


async def test_static_files_and_sign_in_need_no_session(anon: TestClient[Any, Any]) -> None:
    assert (await anon.get("/static/panel.js")).status == 200
    assert (await anon.get("/login")).status == 200


async def test_a_forged_or_stale_cookie_is_refused(
    client: TestClient[Any, Any], runtime: Runtime, tmp_path: Path, aiohttp_client: Any
) -> None:
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["qey_session"].value
    sid, sig = cookie.split(".")
    elsewhere = Credentials(tmp_path / "another-device")
    elsewhere.set_password(PASSWORD)
    other: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, elsewhere))
    for forged in (f"{sid}.{sig[::-1]}", f"{sid}x.{sig}", sid, "", cookie):
        resp = await other.get("/api/v1/status", cookies={"qey_session": forged})
        assert resp.status == 401, forged  # even the real cookie: another device issued it


async def test_there_is_no_default_password_only_a_setup_token(
    runtime: Runtime, data_dir: Path, aiohttp_client: Any
) -> None:
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None and not creds.configured
    client: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, creds))
    resp = await client.get("/", allow_redirects=False)
    assert resp.headers["Location"] == "/setup"
    assert (await client.get("/login", allow_redirects=False)).headers["Location"] == "/setup"
    for guess in ("", "admin", "password", "qey"):
        assert not creds.verify(guess)
    # the token is stored hashed only, owner-only
    stored = (data_dir / SETUP_FILE).read_text()
    assert token not in stored and token.replace("-", "") not in stored
    for name in (KEY_FILE, SETUP_FILE):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600


async def test_first_visit_sets_the_password_with_the_token_once(
    runtime: Runtime, data_dir: Path, clock: FakeClock, aiohttp_client: Any
) -> None:
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None
    client: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, creds, clock))

    async def setup(tok: str, password: str, confirm: str | None = None) -> int:
        page = await client.get("/setup")
        if page.url.path != "/setup":
            return 0
        fields = {
            "csrf_token": form_token(await page.text()),
            "token": tok,
            "password": password,
            "confirm": password if confirm is None else confirm,
        }
        resp = await client.post("/setup", data=fields, allow_redirects=False)
        return resp.status

    assert await setup(token, "short") == 400
    assert await setup(token, PASSWORD, "different password") == 400
    assert await setup("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", PASSWORD) == 401
    await clock.advance(60)  # past the backoff the wrong token earned
    assert await setup(token.lower().replace("-", " "), PASSWORD) == 303  # typed loosely
    assert (await client.get("/api/v1/status")).status == 200  # signed in by the setup
    assert creds.configured and creds.verify(PASSWORD)
    assert stat.S_IMODE((data_dir / PASSWORD_FILE).stat().st_mode) == 0o600
    assert not (data_dir / SETUP_FILE).exists()
    assert await setup(token, "another password!") == 0  # spent: /setup now redirects
    assert creds.new_setup_token() is None  # and a restart makes none


async def test_a_refused_setup_keeps_the_token_typed_never_a_password(
    runtime: Runtime, data_dir: Path, aiohttp_client: Any
) -> None:
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None
    client: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, creds))
    fields = {
        "csrf_token": form_token(await (await client.get("/setup")).text()),
        "token": token,
        "password": "a password <b>1</b>",
        "confirm": "another one entirely",
    }
    resp = await client.post("/setup", data=fields, allow_redirects=False)
    page = await resp.text()
    assert resp.status == 400 and "The two passwords differ." in page
    assert f'value="{token}"' in page  # 29 characters the admin need not type again
    assert "a password" not in page and "another one" not in page


async def test_state_changing_requests_need_the_csrf_token(
    client: TestClient[Any, Any], runtime: Runtime
) -> None:
    body = {"command": "hello"}
    csrf: str = client.csrf  # type: ignore[attr-defined]
    missing = await client.post("/api/v1/jobs", json=body)
    wrong = await client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf + "x"})
    foreign = await client.post(
        "/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.test"}
    )
    cross = await client.post(
        "/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
    )
    for resp in (missing, wrong, foreign, cross):
        assert resp.status == 403 and (await resp.json())["error"] == "CsrfRejected"
    assert await runtime.graph.jobs() == []  # nothing was written
    logout = await client.post("/logout", data={}, allow_redirects=False)
    assert logout.status == 403  # a sign-out form without the token is refused too
    ok = await client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status == 202


async def test_a_websocket_from_another_origin_is_refused(client: TestClient[Any, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/v1/live", origin="http://evil.test")
    assert refused.value.status == 403
    async with client.ws_connect("/api/v1/live", origin=str(client.make_url("")).rstrip("/")):
        pass  # its own origin is fine


async def test_wrong_passwords_are_slowed_down_per_client(
    anon: TestClient[Any, Any], clock: FakeClock
) -> None:
    assert await sign_in(anon, "wrong password") == 401
    # at once, even the right password is refused without being checked
    page = await anon.get("/login")
    resp = await anon.post(
        "/login",
        data={"csrf_token": form_token(await page.text()), "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    await clock.advance(1.0)
    assert await sign_in(anon, "wrong again") == 401
    assert await sign_in(anon, PASSWORD) == 429  # now 2 s
    await clock.advance(1.0)
    assert await sign_in(anon, PASSWORD) == 429
    await clock.advance(1.0)
    assert await sign_in(anon, PASSWORD) == 303  # success clears the count
    assert (await anon.get("/api/v1/status")).status == 200


async def test_a_login_form_without_its_token_is_refused(anon: TestClient[Any, Any]) -> None:
    await anon.get("/login")
    resp = await anon.post("/login", data={"password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403
    assert (await anon.get("/api/v1/status")).status == 401


async def test_session_cookie_is_httponly_samesite_strict(anon: TestClient[Any, Any]) -> None:
    page = await anon.get("/login")
    resp = await anon.post(
        "/login",
        data={"csrf_token": form_token(await page.text()), "password": PASSWORD},
        allow_redirects=False,
    )
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("qey_session="))
    attrs = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")}
    assert "httponly" in attrs and attrs["samesite"].strip() == "SameSite=Strict"
    assert attrs["path"].strip() == "Path=/"
    assert "secure" not in attrs  # plain HTTP on loopback: a Secure cookie would never return
    assert "max-age" not in attrs and "expires" not in attrs  # ends with the browser session


def test_session_cookie_is_secure_over_tls() -> None:
    request = make_mocked_request("POST", "/login").clone(scheme="https")
    response = web.Response()
    set_session_cookie(request, response, "sid.sig")
    text = response.cookies["qey_session"].output()
    assert "Secure" in text and "HttpOnly" in text and "SameSite=Strict" in text


async def test_signing_out_ends_the_session(client: TestClient[Any, Any]) -> None:
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["qey_session"].value
    resp = await client.post(
        "/logout",
        data={"csrf_token": client.csrf},
        allow_redirects=False,  # type: ignore[attr-defined]
    )
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    again = await client.get("/api/v1/status", cookies={"qey_session": cookie})
    assert again.status == 401  # the old cookie is dead server-side, not just deleted


async def test_changing_the_password_ends_other_sessions(
    client: TestClient[Any, Any], runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    app = client.server.app
    other: TestClient[Any, Any] = await aiohttp_client(app)
    assert await sign_in(other, PASSWORD) == 303
    csrf: str = client.csrf  # type: ignore[attr-defined]
    new = "an even better password"
    weak = await client.post(
        "/api/v1/password",
        json={"current": PASSWORD, "new": "short"},
        headers={"X-CSRF-Token": csrf},
    )
    assert weak.status == 400 and (await weak.json())["error"] == "WeakPassword"
    resp = await client.post(
        "/api/v1/password", json={"current": PASSWORD, "new": new}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 204
    assert (await client.get("/api/v1/status")).status == 200
    assert (await other.get("/api/v1/status")).status == 401
    assert credentials.verify(new) and not credentials.verify(PASSWORD)


async def test_a_wrong_current_password_is_refused_and_slowed(
    client: TestClient[Any, Any], credentials: Credentials
) -> None:
    csrf: str = client.csrf  # type: ignore[attr-defined]
    body = {"current": "not it at all", "new": "whatever password"}
    first = await client.post("/api/v1/password", json=body, headers={"X-CSRF-Token": csrf})
    assert first.status == 403 and (await first.json())["error"] == "WrongPassword"
    body["current"] = PASSWORD
    second = await client.post("/api/v1/password", json=body, headers={"X-CSRF-Token": csrf})
    assert second.status == 429 and second.headers["Retry-After"] == "1"
    assert credentials.verify(PASSWORD)


async def test_every_response_carries_the_security_headers(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/login", "/api/v1/status", "/jobs/job-nope"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_an_open_redirect_after_sign_in_is_refused(anon: TestClient[Any, Any]) -> None:
    page = await anon.get("/login?next=//evil.test/x")
    resp = await anon.post(
        "/login?next=//evil.test/x",
        data={"csrf_token": form_token(await page.text()), "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/"


async def test_pages_show_the_csrf_token_only_to_a_session(client: TestClient[Any, Any]) -> None:
    assert csrf_of(await (await client.get("/")).text()) == client.csrf  # type: ignore[attr-defined]
    assert 'name="csrf-token"' not in await (await client.get("/login")).text()


async def test_the_setup_token_sets_the_password_once_under_concurrent_use(
    runtime: Runtime, data_dir: Path, aiohttp_client: Any
) -> None:
    """Five browsers post the valid token at once: exactly one sets the password and is
    signed in; the others are refused and the password is the winner's."""
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None
    app = make_test_panel(runtime, creds)
    clients: list[TestClient[Any, Any]] = [await aiohttp_client(app) for _ in range(5)]
    forms = [form_token(await (await c.get("/setup")).text()) for c in clients]

    async def setup(i: int) -> int:
        password = f"password number {i}"
        fields = {"csrf_token": forms[i], "token": token, "password": password, "confirm": password}
        resp = await clients[i].post("/setup", data=fields, allow_redirects=False)
        return resp.status

    statuses = await asyncio.gather(*(setup(i) for i in range(5)))
    assert statuses.count(303) == 1, statuses
    winner = statuses.index(303)
    assert creds.verify(f"password number {winner}")
    for i, client in enumerate(clients):
        signed_in = (await client.get("/api/v1/status")).status == 200
        assert signed_in == (i == winner)


def test_a_setup_token_is_spent_by_exactly_one_of_many_threads(data_dir: Path) -> None:
    creds = Credentials(data_dir)
    token = creds.new_setup_token()
    assert token is not None
    passwords = [f"password number {i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda p: creds.use_setup_token(token, p), passwords))
    assert won.count(True) == 1
    assert creds.verify(passwords[won.index(True)])
    assert not creds.use_setup_token(token, "yet another password")


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The message that ends a live stream (events before it are skipped), within 5 s."""
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return msg


async def test_signing_out_closes_the_sessions_live_streams(client: TestClient[Any, Any]) -> None:
    async with client.ws_connect("/api/v1/live") as ws:
        resp = await client.post(
            "/logout",
            data={"csrf_token": client.csrf},  # type: ignore[attr-defined]
            allow_redirects=False,
        )
        assert resp.status == 303
        msg = await _closed(ws)
        assert msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION and "sign in" in msg.extra


async def test_a_password_change_closes_the_other_sessions_live_streams(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    other: TestClient[Any, Any] = await aiohttp_client(client.server.app)
    assert await sign_in(other, PASSWORD) == 303
    async with (
        other.ws_connect("/api/v1/live") as ended,
        client.ws_connect("/api/v1/live?kinds=test.add") as kept,
    ):
        resp = await client.post(
            "/api/v1/password",
            json={"current": PASSWORD, "new": "another fine password"},
            headers={"X-CSRF-Token": client.csrf},  # type: ignore[attr-defined]
        )
        assert resp.status == 204
        assert (await _closed(ended)).data == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert not kept.closed  # the session that changed it streams on
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await kept.receive()


async def test_an_expired_session_closes_its_live_streams(
    client: TestClient[Any, Any], clock: FakeClock, runtime: Runtime, job: JobContext
) -> None:
    async with client.ws_connect("/api/v1/live?kinds=task.spawned") as ws:
        runtime.spawn("counter", job, "count")
        async with asyncio.timeout(5):
            assert (await ws.receive()).type == aiohttp.WSMsgType.TEXT  # streaming
        await clock.advance(2 * 3600 + 1)  # idle past the limit
        assert (await _closed(ws)).data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert (await client.get("/api/v1/status")).status == 401

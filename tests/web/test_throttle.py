"""Password guessing is slowed however it is spread (in parallel, over many addresses), and
the guessing never locks the owner out: a browser that signed in before has a lane of its
own, a signed-in session changes its password whatever strangers did."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.runtime import FakeClock, Runtime
from appliance.web.credentials import Credentials
from tests.web.conftest import PASSWORD, form_token, make_test_panel, sign_in

pytestmark = pytest.mark.unit

WRONG = "not the password at all"
BUDGET = 10  # the panel's default: anonymous password checks per minute, all clients together


async def _from(aiohttp_client: Any, app: web.Application, address: str) -> TestClient[Any, Any]:
    """A browser whose connections come from ``address`` (on 127.0.0.0/8)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    client: TestClient[Any, Any] = await aiohttp_client(app, connector=connector)
    return client


async def _post_login(client: TestClient[Any, Any], token: str, password: str) -> int:
    resp = await client.post(
        "/login", data={"csrf_token": token, "password": password}, allow_redirects=False
    )
    return resp.status


async def test_parallel_guesses_from_one_address_get_one_check(
    anon: TestClient[Any, Any],
) -> None:
    parallel = 20
    token = form_token(await (await anon.get("/login")).text())
    statuses = await asyncio.gather(*(_post_login(anon, token, WRONG) for _ in range(parallel)))
    assert statuses.count(401) == 1, statuses  # one check; the rest refused unchecked
    assert statuses.count(429) == parallel - 1


async def test_parallel_setup_tokens_from_one_address_get_one_check(
    runtime: Runtime, data_dir: Any, clock: FakeClock, aiohttp_client: Any
) -> None:
    creds = Credentials(data_dir)
    assert creds.new_setup_token() is not None
    client: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, creds, clock))
    token = form_token(await (await client.get("/setup")).text())
    fields = {"csrf_token": token, "token": "AAAA", "password": PASSWORD, "confirm": PASSWORD}

    async def guess() -> int:
        return (await client.post("/setup", data=fields, allow_redirects=False)).status

    statuses = await asyncio.gather(*(guess() for _ in range(10)))
    assert statuses.count(401) == 1 and statuses.count(429) == 9, statuses


async def test_many_addresses_share_one_budget_of_checks_per_minute(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    clients = [await _from(aiohttp_client, app, f"127.0.0.{i}") for i in range(2, 32)]
    token = form_token(await (await clients[0].get("/login")).text())
    jar = clients[0].session.cookie_jar.filter_cookies(clients[0].make_url("/"))
    for client in clients[1:]:
        client.session.cookie_jar.update_cookies({"qey_form": jar["qey_form"].value})
    statuses = [await _post_login(c, token, WRONG) for c in clients]
    assert statuses.count(401) == BUDGET, statuses  # 30 addresses, one budget
    assert statuses.count(429) == len(clients) - BUDGET
    await clock.advance(60)  # a minute later the budget is back, and no more than it
    statuses = [await _post_login(c, token, WRONG) for c in clients[BUDGET:]]
    assert statuses.count(401) == BUDGET, statuses


async def _lock_out_strangers(
    app: web.Application, aiohttp_client: Any, clock: FakeClock
) -> TestClient[Any, Any]:
    """What an attacker does: a dozen wrong passwords from the owner's own address (the
    per-address wait grows to minutes), then the global budget spent from other ones."""
    attacker: TestClient[Any, Any] = await aiohttp_client(app)
    for _ in range(12):
        assert await sign_in(attacker, WRONG) == 401
        await clock.advance(300)
    others = [await _from(aiohttp_client, app, f"127.0.1.{i}") for i in range(1, BUDGET + 1)]
    for other in others:
        assert await sign_in(other, WRONG) == 401
    assert await sign_in(await _from(aiohttp_client, app, "127.0.2.1"), WRONG) == 429
    assert await sign_in(attacker, PASSWORD) == 429
    return attacker


async def test_the_owners_browser_signs_in_while_guessers_are_locked_out(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    owner: TestClient[Any, Any] = await aiohttp_client(app)
    assert await sign_in(owner, PASSWORD) == 303  # once: the browser is known from now on
    owner.session.cookie_jar.clear(lambda c: c.key == "qey_session")  # signed out
    await _lock_out_strangers(app, aiohttp_client, clock)
    assert await sign_in(owner, PASSWORD) == 303  # same address, no wait
    assert (await owner.get("/api/v1/status")).status == 200
    stranger: TestClient[Any, Any] = await aiohttp_client(app)  # a browser never signed in
    assert await sign_in(stranger, PASSWORD) == 429


async def test_a_known_browser_that_guesses_wrong_is_slowed_on_its_own(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    browsers: list[TestClient[Any, Any]] = [await aiohttp_client(app) for _ in range(2)]
    for browser in browsers:
        assert await sign_in(browser, PASSWORD) == 303
        browser.session.cookie_jar.clear(lambda c: c.key == "qey_session")
    assert await sign_in(browsers[0], WRONG) == 401
    assert await sign_in(browsers[0], PASSWORD) == 429  # its own wait
    token = form_token(await (await browsers[0].get("/login")).text())
    statuses = await asyncio.gather(*(_post_login(browsers[0], token, WRONG) for _ in range(5)))
    assert 401 not in statuses  # still waiting: nothing checked
    assert await sign_in(browsers[1], PASSWORD) == 303  # the other one does not wait
    await clock.advance(1)
    assert await sign_in(browsers[0], PASSWORD) == 303


async def test_a_forged_device_cookie_counts_for_nothing(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    owner: TestClient[Any, Any] = await aiohttp_client(app)
    assert await sign_in(owner, PASSWORD) == 303
    device = owner.session.cookie_jar.filter_cookies(owner.make_url("/login"))["qey_device"]
    device_id, sig = device.value.split(".")
    await _lock_out_strangers(app, aiohttp_client, clock)
    for forged in (f"{device_id}.{sig[::-1]}", f"{'A' * 22}.{sig}", device_id, "x.y"):
        thief: TestClient[Any, Any] = await aiohttp_client(app)
        thief.session.cookie_jar.update_cookies({"qey_device": forged})
        assert await sign_in(thief, PASSWORD) == 429, forged


async def test_the_device_cookie_is_long_lived_and_only_for_the_sign_in_page(
    anon: TestClient[Any, Any],
) -> None:
    token = form_token(await (await anon.get("/login")).text())
    resp = await anon.post(
        "/login", data={"csrf_token": token, "password": PASSWORD}, allow_redirects=False
    )
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("qey_device="))
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")}
    assert "httponly" in attrs and attrs["samesite"] == "SameSite=Strict"
    assert attrs["path"] == "Path=/login"
    assert int(attrs["max-age"].split("=")[1]) >= 365 * 24 * 3600


async def test_a_session_changes_its_password_whatever_strangers_did(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    owner: TestClient[Any, Any] = await aiohttp_client(app)
    assert await sign_in(owner, PASSWORD) == 303
    await _lock_out_strangers(app, aiohttp_client, clock)
    new = "the owner's new password"
    resp = await owner.post(
        "/api/v1/password",
        json={"current": PASSWORD, "new": new},
        headers={"X-CSRF-Token": owner.csrf},  # type: ignore[attr-defined]
    )
    assert resp.status == 204
    assert credentials.verify(new)


async def test_right_passwords_do_not_spend_the_budget(
    runtime: Runtime, credentials: Credentials, clock: FakeClock, aiohttp_client: Any
) -> None:
    """Only the guesses count: many fresh browsers signing in within a minute (a classroom,
    a test suite) leave the budget to the wrong passwords."""
    app = make_test_panel(runtime, credentials, clock)
    for i in range(2 * BUDGET):
        browser = await _from(aiohttp_client, app, f"127.0.3.{i + 1}")
        assert await sign_in(browser, PASSWORD) == 303
    guesser = await _from(aiohttp_client, app, "127.0.4.1")
    assert await sign_in(guesser, WRONG) == 401

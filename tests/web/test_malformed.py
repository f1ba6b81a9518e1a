"""Malformed requests from anyone (no session needed) get a JSON 4xx, never a 500 with a
traceback in the log: a cookie that is not ASCII, a broken multipart form, a body that is not
UTF-8 or names an unknown charset, JSON nested a thousand deep. And where a sign-in may send
the browser next: only a path on this site."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.runtime import Runtime
from appliance.web.credentials import Credentials
from tests.web.conftest import PASSWORD, form_token, make_test_panel

pytestmark = pytest.mark.unit

BROKEN_MULTIPART = b"--xx\r\ngarbage"
MULTIPART = "multipart/form-data; boundary=xx"
FORM = "application/x-www-form-urlencoded"


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def _json_4xx(resp: Any) -> dict[str, Any]:
    assert 400 <= resp.status < 500, (resp.status, await resp.text())
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert body["error"] and body["message"]
    return body


async def test_a_cookie_that_is_not_ascii_is_no_session(
    anon: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    for raw in ("qey_session=a\u00e9.b\u00e9", "qey_session=\u00ff", "qey_form=\u00e9"):
        # as the bytes arrive: UTF-8 on the wire, read back as latin-1 by the server
        header = raw.encode("utf-8").decode("latin-1")
        resp = await anon.get("/api/v1/status", headers={"Cookie": header})
        assert (await _json_4xx(resp))["error"] == "NotSignedIn"
    _no_errors_logged(caplog)


BROKEN_FORMS = [
    (MULTIPART, BROKEN_MULTIPART),
    ("multipart/form-data", b"no boundary"),
    (FORM, b"password=\xff\xfe"),
    (f"{FORM}; charset=bogus", b"password=x"),
    (f"{FORM}; charset=;p*", b"password=x"),  # the stdlib's header parser: IndexError
    (MULTIPART, b'--xx\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--xx--\r\n'),
]


async def _post_broken_forms(client: TestClient[Any, Any], path: str) -> None:
    for content_type, body in BROKEN_FORMS:
        resp = await client.post(
            path, data=body, headers={"Content-Type": content_type}, allow_redirects=False
        )
        assert (await _json_4xx(resp))["error"] == "BadRequestBody", (path, content_type)


async def test_a_broken_form_is_a_json_400(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """On the sign-in form (no session) and on sign-out (the guard reads the form for its
    CSRF token); the session survives a broken sign-out."""
    caplog.set_level(logging.ERROR)
    await _post_broken_forms(client, "/login")
    await _post_broken_forms(client, "/logout")
    assert (await client.get("/api/v1/status")).status == 200  # still signed in
    _no_errors_logged(caplog)


async def test_a_broken_setup_form_is_a_json_400(
    runtime: Runtime, data_dir: Path, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    creds = Credentials(data_dir)
    assert creds.new_setup_token() is not None
    client: TestClient[Any, Any] = await aiohttp_client(make_test_panel(runtime, creds))
    await _post_broken_forms(client, "/setup")
    assert not creds.configured
    _no_errors_logged(caplog)


async def test_json_nested_a_thousand_deep_is_a_json_400(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    headers = {"X-CSRF-Token": client.csrf, "Content-Type": "application/json"}  # type: ignore[attr-defined]
    deep_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    deep_envelope = b'{"kind":"x","job":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}"
    for path, body in (
        ("/api/v1/events", deep_object),
        ("/api/v1/events", deep_envelope),
        ("/api/v1/jobs", b'{"command":' + b"[" * 1000 + b"]" * 1000 + b"}"),
        ("/api/v1/route", deep_object),
    ):
        resp = await client.post(path, data=body, headers=headers)
        assert resp.status == 400, (path, await resp.text())
        await _json_4xx(resp)
    _no_errors_logged(caplog)


async def test_a_body_that_is_not_utf8_is_a_json_400(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    headers = {"X-CSRF-Token": client.csrf, "Content-Type": "application/json"}  # type: ignore[attr-defined]
    for body in (b'{"command":"\xff\xfe"}', b"\xff\xfe{}", '{"command":"é"}'.encode("latin-1")):
        resp = await client.post("/api/v1/jobs", data=body, headers=headers)
        assert resp.status == 400
        await _json_4xx(resp)
    _no_errors_logged(caplog)


@pytest.mark.parametrize(
    "nxt",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/ /evil.example",
        "/\x00/evil.example",
        "/\u3000/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "//evil.example",
        "/a//evil.example",
        "https://evil.example/",
        "evil.example",
        "javascript:alert(1)",
        "",
    ],
)
async def test_sign_in_sends_the_browser_only_to_a_path_on_this_site(
    anon: TestClient[Any, Any], nxt: str
) -> None:
    page = await anon.get("/login")
    resp = await anon.post(
        "/login",
        params={"next": nxt},
        data={"csrf_token": form_token(await page.text()), "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/"


async def test_sign_in_returns_to_the_page_that_asked_for_it(anon: TestClient[Any, Any]) -> None:
    page = await anon.get("/login")
    resp = await anon.post(
        "/login",
        params={"next": "/jobs/job-1?tab=tree"},
        data={"csrf_token": form_token(await page.text()), "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/jobs/job-1?tab=tree"

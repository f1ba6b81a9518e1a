"""Who may use the panel: the session guard, CSRF, and the setup, sign-in and sign-out pages.

The guard is one middleware in front of every route: only the sign-in and setup pages and
static files are reachable without a session; an API call without one gets a JSON 401, a page
a redirect to sign in. Every request that may change something (any method but GET, HEAD,
OPTIONS) must carry the session's CSRF token, and one whose Origin names another site is
refused outright. A WebSocket upgrade is a GET, so its Origin is checked too.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from appliance.web.bodies import media_type, read_form
from appliance.web.devices import DEVICE_COOKIE
from appliance.web.errors import CsrfRejected, NotSignedIn, TooManyAttempts
from appliance.web.keys import CREDENTIALS, DEVICES, ON_CONFIGURED, SESSION, SESSIONS, THROTTLE
from appliance.web.passwords import MIN_PASSWORD_LEN, WeakPassword, check_new_password
from appliance.web.render import render
from appliance.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    FORM_COOKIE,
    NONCE,
    SESSION_COOKIE,
    csrf_ok,
)
from appliance.web.throttle import Lane

log = logging.getLogger(__name__)

PUBLIC = frozenset({"/login", "/setup"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path in PUBLIC or path.startswith("/static/"):
        if request.method not in SAFE_METHODS:
            _check_origin(request)
        return await handler(request)
    session = await request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if path.startswith("/api/"):
            raise NotSignedIn("sign in first: this needs a session")
        if not request.app[CREDENTIALS].configured:
            raise web.HTTPSeeOther("/setup")
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))
    if (
        request.method not in SAFE_METHODS
        or request.headers.get("Upgrade", "").lower() == "websocket"
    ):
        _check_origin(request)
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER)
        if token is None and media_type(request) in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            token = (await read_form(request)).get(CSRF_FIELD)
        if not csrf_ok(session, token):
            raise CsrfRejected(f"missing or wrong CSRF token (send it in {CSRF_HEADER})")
    request[SESSION] = session
    return await handler(request)


def _check_origin(request: web.Request) -> None:
    """A browser names the page that made a request; refuse any other site's. (A request
    with no Origin is not from a cross-site browser page, and still needs the token.)"""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise CsrfRejected(f"request from another origin ({origin}) refused")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise CsrfRejected("cross-site request refused")


def _client(request: web.Request) -> str:
    return request.remote or "?"


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure
    over TLS; no Max-Age, so it ends with the browser session at the latest."""
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="Strict", secure=request.secure, path="/"
    )


LOGIN = "Sign in"
SETUP = "Set up the admin password"


def _form_page(
    request: web.Request, title: str, *, error: str = "", status: int = 200, token: str = ""
) -> web.Response:
    """A sign-in or setup form with a fresh form token (its nonce in a short-lived cookie).
    ``token``: the setup token as typed, kept when the form comes back with an error."""
    sessions = request.app[SESSIONS]
    # keep the nonce a browser already holds: a second form page (another tab, a favicon
    # redirected here) must not invalidate the form already shown
    held = request.cookies.get(FORM_COOKIE, "")
    nonce = held if NONCE.fullmatch(held) else sessions.new_nonce()
    nxt = request.query.get("next", "")
    response = render(
        request,
        "form.html",
        title,
        status=status,
        error=error,
        action=f"{request.path}?next={quote(nxt, safe='')}",
        form_token=sessions.form_token(nonce),
        setup=title == SETUP,
        token=token,
        min_password=MIN_PASSWORD_LEN,
    )
    response.set_cookie(
        FORM_COOKIE,
        nonce,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
        max_age=3600,
    )
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    if not request.app[CREDENTIALS].configured:
        raise web.HTTPSeeOther("/setup")
    return _form_page(request, LOGIN)


async def login(request: web.Request) -> web.StreamResponse:
    credentials = request.app[CREDENTIALS]
    if not credentials.configured:
        raise web.HTTPSeeOther("/setup")
    form = await _checked_form(request)
    if form is None:
        return _form_page(request, LOGIN, error="The form expired; try again.", status=403)
    client = _client(request)
    device = request.app[DEVICES].device_of(request.cookies.get(DEVICE_COOKIE))
    lane: Lane = "anonymous" if device is None else "device"
    try:
        with request.app[THROTTLE].attempt(lane, device or client) as attempt:
            if await asyncio.to_thread(credentials.verify, form.get("password", "")):
                attempt.succeeded()
    except TooManyAttempts as err:
        return _throttled(request, LOGIN, err.retry_after)
    if not attempt.ok:
        log.warning(
            "panel: failed sign-in from %s%s; next try in %.0f s",
            client,
            " (a known browser)" if device else "",
            attempt.delay_s,
        )
        return _form_page(request, LOGIN, error="Wrong password.", status=401)
    return await _signed_in(request, _next(request))


async def setup_page(request: web.Request) -> web.StreamResponse:
    if request.app[CREDENTIALS].configured:
        raise web.HTTPSeeOther("/login")
    return _form_page(request, SETUP)


async def setup(request: web.Request) -> web.StreamResponse:
    credentials = request.app[CREDENTIALS]
    if credentials.configured:
        raise web.HTTPSeeOther("/login")
    form = await _checked_form(request)
    if form is None:
        return _form_page(request, SETUP, error="The form expired; try again.", status=403)
    password, confirm = form.get("password", ""), form.get("confirm", "")
    client, token = _client(request), form.get("token", "")
    if password != confirm:
        return _form_page(
            request, SETUP, error="The two passwords differ.", status=400, token=token
        )
    try:
        check_new_password(password)
    except WeakPassword as err:
        return _form_page(request, SETUP, error=str(err), status=400, token=token)
    try:
        with request.app[THROTTLE].attempt("anonymous", client) as attempt:
            if await asyncio.to_thread(credentials.use_setup_token, token, password):
                attempt.succeeded()
    except TooManyAttempts as err:
        return _throttled(request, SETUP, err.retry_after)
    if not attempt.ok:
        log.warning("panel: wrong or spent setup token from %s", client)
        return _form_page(
            request, SETUP, error="Wrong or spent setup token.", status=401, token=token
        )
    log.warning("panel: the admin password was set from %s; the setup token is spent", client)
    request.app[ON_CONFIGURED]()
    return await _signed_in(request, "/")


async def logout(request: web.Request) -> web.StreamResponse:
    """POST only, behind the guard: a sign-out needs the CSRF token like any change."""
    await request.app[SESSIONS].end(request[SESSION].key)
    response = _see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def _checked_form(request: web.Request) -> dict[str, str] | None:
    """The posted form's text fields, or None when its form token does not match."""
    fields = await read_form(request)
    nonce = request.cookies.get(FORM_COOKIE)
    if not request.app[SESSIONS].check_form_token(nonce, fields.get(CSRF_FIELD)):
        return None
    return fields


def _throttled(request: web.Request, title: str, wait: int) -> web.Response:
    response = _form_page(
        request, title, error=f"Too many failed attempts: wait {wait} s and try again.", status=429
    )
    response.headers["Retry-After"] = str(wait)
    return response


async def _signed_in(request: web.Request, where: str) -> web.StreamResponse:
    """A new session, and this browser known from now on (its device cookie)."""
    value, _session = await request.app[SESSIONS].create()
    response = _see_other(where)
    set_session_cookie(request, response, value)
    request.app[DEVICES].set_cookie(request, response)
    response.del_cookie(FORM_COOKIE, path="/")
    return response


def _see_other(where: str) -> web.Response:
    """A redirect returned, not raised, so the cookies set on it surely go out."""
    return web.Response(status=303, headers={"Location": where})


def _next(request: web.Request) -> str:
    """Where to go after signing in: only a path on this site, else ``/``.

    Browsers drop tabs and newlines from a URL and read ``\\`` as ``/``, so ``/\t/host`` and
    ``/\\host`` are ``//host``: another site. Hence no control character, no white space (of
    any script), no backslash and no ``//`` anywhere, and nothing before the first ``/``."""
    nxt = request.query.get("next", "/")
    if (
        not nxt.startswith("/")
        or "//" in nxt
        or "\\" in nxt
        or any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in nxt)
    ):
        return "/"
    return nxt

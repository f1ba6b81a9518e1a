"""The admin panel: one aiohttp application (pages, JSON API, live events) and the service
that serves it on the TCP addresses the board profile allows.

``Panel.run`` is the service: it sets the app up with ``AppRunner`` (never ``run_app``),
listens, and follows the runtime's supervision records, all inside the caller's TaskGroup,
until cancelled. An address it cannot listen on is logged and skipped, so a busy port costs
the panel, never the appliance.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from appliance.errors import ApplianceError
from appliance.runtime import Clock, Runtime
from appliance.web import auth
from appliance.web.activity import Activity
from appliance.web.api import API_ROUTES, errors_as_json, json_response
from appliance.web.capabilities import (
    DeviceView,
    PlanPreview,
    RoutePreview,
    RouterStatus,
    ScopeControl,
)
from appliance.web.console import CONSOLE, Console
from appliance.web.credentials import Credentials
from appliance.web.devices import DeviceCookies
from appliance.web.errors import BadRequestBody
from appliance.web.fleet import FLEET_ROUTES
from appliance.web.home import HOME_ROUTES
from appliance.web.keys import (
    ACTIVITY,
    CLOCK,
    CREDENTIALS,
    DEVICE,
    DEVICES,
    ON_CONFIGURED,
    PLAN,
    ROUTE,
    ROUTER,
    RUNTIME,
    SCOPE,
    SESSIONS,
    SUBMIT,
    THROTTLE,
)
from appliance.web.live import live
from appliance.web.notices import NOTICE_ROUTES
from appliance.web.openapi import openapi_document
from appliance.web.ops import OPS_ROUTES
from appliance.web.pages import PAGE_ROUTES
from appliance.web.render import render, setup_templates
from appliance.web.routes import ROUTES, Route, add_routes
from appliance.web.schedules import SCHEDULE_PAGE, SCHEDULE_ROUTES, SCHEDULES, ScheduleControl
from appliance.web.sessions import Sessions
from appliance.web.sessionstore import SESSIONS_FILE, SessionStore
from appliance.web.submit import Submit
from appliance.web.throttle import LoginThrottle
from appliance.web.update import UPDATE_ROUTES

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(files("appliance.web") / "static"))
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers every response carries: no framing, no sniffing, no referrer, the CSP."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _secure(response)
        raise
    if not response.prepared:  # a WebSocket or stream already sent its headers
        _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    # not no-referrer: under it browsers send "Origin: null" on forms, defeating the origin check
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")


@web.middleware
async def errors_as_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page that names an unknown job or task says so as a page, not as JSON."""
    if request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except BadRequestBody:
        raise  # no page of ours sent it: the JSON answer says what is malformed
    except ApplianceError as err:
        status = 404 if isinstance(err, LookupError) else 400
        title = "Not found" if status == 404 else "Refused"
        return render(request, "error.html", title, status=status, message=str(err))


async def get_openapi(request: web.Request) -> web.Response:
    """What this panel serves: its routes and any added to it since (the actions')."""
    routes: list[Route] = request.app[ROUTES]
    return json_response(openapi_document(routes))


PANEL_ROUTES = (
    Route("GET", "/login", auth.login_page),
    Route("POST", "/login", auth.login),
    Route("GET", "/setup", auth.setup_page),
    Route("POST", "/setup", auth.setup),
    Route("POST", "/logout", auth.logout),
    *HOME_ROUTES,
    *NOTICE_ROUTES,
    *PAGE_ROUTES,
    *SCHEDULE_PAGE,
    *API_ROUTES,
    *OPS_ROUTES,
    *SCHEDULE_ROUTES,
    *UPDATE_ROUTES,
    *FLEET_ROUTES,
    Route("GET", "/api/v1/live", live),  # a WebSocket: described in the document's text
    Route("GET", "/api/v1/openapi.json", get_openapi),
)
"""What every panel serves; ``app.py`` adds the actions' routes and the Approvals page."""


def make_panel(
    runtime: Runtime,
    submit: Submit,
    credentials: Credentials,
    *,
    clock: Clock | None = None,
    provider: str = "",
    router: RouterStatus | None = None,
    route: RoutePreview | None = None,
    plan: PlanPreview | None = None,
    device: DeviceView | None = None,
    scope: ScopeControl | None = None,
    activity: Activity | None = None,
    throttle: LoginThrottle | None = None,
    schedules: ScheduleControl | None = None,
    on_configured: Callable[[], None] | None = None,
) -> web.Application:
    """The panel's app. ``on_configured`` is called once the admin password is set, by the
    setup page or the console (the hardware's notice of the setup token goes then).
    ``router`` says where the router's model runs; ``provider`` alone will do where nothing
    more is known (the benchmarks, the tests)."""
    clock = clock or runtime.clock
    app = web.Application(
        middlewares=[security_headers, errors_as_json, auth.require_session, errors_as_pages],
        client_max_size=256 * 1024,
    )
    app[RUNTIME] = runtime
    app[SUBMIT] = submit
    app[CLOCK] = clock
    app[CREDENTIALS] = credentials
    sessions = Sessions(
        credentials.signing_key, clock, SessionStore(credentials.data_dir / SESSIONS_FILE)
    )
    app[SESSIONS] = sessions
    app[THROTTLE] = throttle or LoginThrottle(clock)
    app[ON_CONFIGURED] = on_configured or _nothing
    app[CONSOLE] = Console(credentials, sessions, app[THROTTLE], app[ON_CONFIGURED])
    app[DEVICES] = DeviceCookies(credentials.signing_key)
    app[ACTIVITY] = activity or Activity()
    app[ROUTER] = router or (RouterStatus(provider=provider) if provider else None)
    app[ROUTE] = route
    app[PLAN] = plan
    app[DEVICE] = device
    app[SCOPE] = scope
    app[SCHEDULES] = schedules
    setup_templates(app)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    add_routes(app, PANEL_ROUTES)

    async def close_sessions(app: web.Application) -> None:
        sessions.close()

    app.on_cleanup.append(close_sessions)
    return app


def _nothing() -> None:
    pass


class _ProtocolLog(logging.Logger):
    """aiohttp's server log, but a request its HTTP parser refuses (a NUL in a header, a
    broken request line) is the client's fault: one warning line, not an ERROR with a
    traceback. aiohttp has already answered it with a 400."""

    def __init__(self) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")  # its handlers, then the root's

    def exception(self, msg: object, *args: object, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            first = (exc.message or type(exc).__name__).strip().splitlines()[:1]
            self.warning("panel: malformed request refused (%s)", "".join(first))
            return
        super().exception(msg, *args, **kw)


class Panel:
    """The panel as a service of the appliance (``run`` until cancelled)."""

    def __init__(
        self,
        app: web.Application,
        listen: list[str],
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.listen = listen
        self.ssl_context = ssl_context
        self.urls: list[str] = []
        self.listening = asyncio.Event()

    @property
    def console(self) -> Console:
        """What ``qey passwd`` does to this panel (served on the control socket)."""
        return self.app[CONSOLE]

    async def run(self) -> None:
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=1.0, logger=_ProtocolLog()
        )
        await runner.setup()
        try:
            scheme = "https" if self.ssl_context else "http"
            for address in self.listen:
                host, _, port = address.rpartition(":")
                site = web.TCPSite(
                    runner, host.strip("[]"), int(port), ssl_context=self.ssl_context
                )
                try:
                    await site.start()
                except OSError as err:
                    log.error("panel: cannot listen on %s: %s", address, err)
            for sockname in runner.addresses:
                host, port = sockname[0], sockname[1]
                self.urls.append(f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/")
            self.listening.set()
            await self.app[ACTIVITY].run(self.app[RUNTIME])
            await asyncio.Event().wait()  # the runtime stopped; serve what is left until cancelled
        finally:
            await runner.cleanup()

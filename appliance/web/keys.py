"""The typed keys under which the panel's handlers find what they use on the application."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from appliance.runtime import Clock, Runtime
from appliance.web.activity import Activity
from appliance.web.capabilities import (
    DeviceView,
    PlanPreview,
    RoutePreview,
    RouterStatus,
    ScopeControl,
)
from appliance.web.credentials import Credentials
from appliance.web.devices import DeviceCookies
from appliance.web.sessions import Session, Sessions
from appliance.web.submit import Submit
from appliance.web.throttle import LoginThrottle

RUNTIME = web.AppKey("runtime", Runtime)
SUBMIT: web.AppKey[Submit] = web.AppKey("submit")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
CREDENTIALS = web.AppKey("credentials", Credentials)
SESSIONS = web.AppKey("sessions", Sessions)
THROTTLE = web.AppKey("throttle", LoginThrottle)
DEVICES = web.AppKey("devices", DeviceCookies)
ACTIVITY = web.AppKey("activity", Activity)
ROUTE: web.AppKey[RoutePreview | None] = web.AppKey("route")
PLAN: web.AppKey[PlanPreview | None] = web.AppKey("plan")
DEVICE: web.AppKey[DeviceView | None] = web.AppKey("device")
SCOPE: web.AppKey[ScopeControl | None] = web.AppKey("scope")
# called once the admin password is set (the setup token is spent): app.py clears its notice
ON_CONFIGURED: web.AppKey[Callable[[], None]] = web.AppKey("on_configured")
# where the router's model runs (None: this appliance has no router)
ROUTER: web.AppKey[RouterStatus | None] = web.AppKey("router")
# extension entry points that did not load at start, and why (app.py's Extensions.failed)
FAILED_EXTENSIONS: web.AppKey[Mapping[str, str]] = web.AppKey("failed_extensions")
# on a request that passed the panel's guard (auth.require_session): whose session it is
SESSION = web.RequestKey("session", Session)
# the admin's names for devices and networks (config.toml's [names]: name -> address)
NAMES: web.AppKey[Mapping[str, str]] = web.AppKey("names")

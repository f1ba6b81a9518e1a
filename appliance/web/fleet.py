"""The fleet's state as the API serves it: this device's link and every device it hears."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from appliance.fleet.status import FleetStatus
from appliance.web.api import json_response
from appliance.web.routes import Route

FLEET: web.AppKey[Callable[[], FleetStatus]] = web.AppKey("fleet")
OFF = FleetStatus(enabled=False)


async def get_fleet(request: web.Request) -> web.Response:
    status = request.app.get(FLEET)
    return json_response(status() if status is not None else OFF)


FLEET_ROUTES = (
    Route(
        "GET",
        "/api/v1/fleet",
        get_fleet,
        "The fleet: whether this device is in one, its broker connection, and each device "
        "it hears (last seen, health, version, the scope it covers, its load)",
        returns=FleetStatus,
    ),
)

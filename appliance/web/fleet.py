"""The fleet as the API and the panel's Fleet page show it: this device's broker connection
and every device it hears (state, last seen, health, version, load, the scope it covers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from appliance.fleet.status import FleetInventory, FleetStatus
from appliance.web.api import json_response
from appliance.web.render import render
from appliance.web.routes import Route

FLEET: web.AppKey[Callable[[], FleetStatus]] = web.AppKey("fleet")
# the other devices' inventories, for the owner's pages (home, devices) in a fleet
FLEET_INVENTORY: web.AppKey[Callable[[], Awaitable[FleetInventory]]] = web.AppKey("fleet_inventory")
OFF = FleetStatus(enabled=False)


def _status(request: web.Request) -> FleetStatus:
    status = request.app.get(FLEET)
    return status() if status is not None else OFF


async def get_fleet(request: web.Request) -> web.Response:
    return json_response(_status(request))


async def fleet_page(request: web.Request) -> web.Response:
    return render(request, "fleet.html", "Fleet", active="/fleet", f=_status(request))


FLEET_ROUTES = (
    Route("GET", "/fleet", fleet_page),
    Route(
        "GET",
        "/api/v1/fleet",
        get_fleet,
        "The fleet: whether this device is in one, its broker connection, and each device "
        "it hears (last seen, health, version, the scope it covers, its load)",
        returns=FleetStatus,
    ),
)

"""Updates through the panel: upload a signed bundle and ask for it to be installed; see the
running version, the slot it booted from and the last update's result.

The appliance (user qey) may not write a root slot, so it only hands over: the upload is
streamed to ``update/incoming.raucb`` in its data directory (never held in memory), then
``update/request.json`` asks root's ``qey-update.service`` (started by ``qey-update.path``)
to check and install it (``qey update apply``). Everything the bundle is checked for
(signature, board, version, contents) is checked there, by root, before anything is written;
the outcome appears in ``GET /api/v1/update`` as the update's record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
from aiohttp import web

from appliance.durable import write_atomic
from appliance.update import record
from appliance.update.console import SlotView, published_slots, running_version
from appliance.update.entries import boot_slot
from appliance.update.handoff import INCOMING, REQUEST, UpdateRequest, time_of_day
from appliance.web.api import json_response
from appliance.web.errors import BadRequestBody
from appliance.web.keys import CREDENTIALS
from appliance.web.render import render
from appliance.web.routes import Query, Route

MAX_BUNDLE = 4 * 1024**3  # more than a root slot holds
_CHUNK = 1 << 20


class UpdateView(msgspec.Struct, frozen=True):
    running_version: str
    booted_slot: str  # "a", "b", or "host" off the image
    requested: bool  # a bundle waits for root's service to take it
    last: record.UpdateRecord | None
    # both slots as root last saw them (version, state, which boots next); None until the
    # first update step ran: then slot A runs and slot B was never written
    slots: list[SlotView] | None = None


def _data_dir(request: web.Request) -> Path:
    return Path(request.app[CREDENTIALS].data_dir)


def update_view(data_dir: Path) -> UpdateView:
    return UpdateView(
        running_version=running_version(),
        booted_slot=boot_slot(),
        requested=(data_dir / REQUEST).exists(),
        last=record.load(data_dir),
        slots=published_slots(data_dir),
    )


async def get_update(request: web.Request) -> web.Response:
    return json_response(update_view(_data_dir(request)))


async def post_update(request: web.Request) -> web.Response:
    """The bundle is the body (application/octet-stream), streamed to disk."""
    if request.content_type != "application/octet-stream":
        raise BadRequestBody("send the bundle as the body, Content-Type: application/octet-stream")
    reboot, allow_downgrade = _flag(request, "reboot"), _flag(request, "allow_downgrade")
    reboot_at = request.query.get("reboot_at") or None
    if reboot_at is not None:
        try:
            time_of_day(reboot_at)
        except ValueError as err:
            raise BadRequestBody(str(err)) from err
        reboot = False  # at that time, not at once
    data_dir = _data_dir(request)
    bundle = data_dir / INCOMING
    bundle.parent.mkdir(mode=0o755, exist_ok=True)
    part = bundle.with_name(bundle.name + ".part")
    size = 0
    try:
        with part.open("wb") as out:
            while chunk := await request.content.read(_CHUNK):
                size += len(chunk)
                if size > MAX_BUNDLE:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=MAX_BUNDLE, actual_size=size, text="the bundle is too large"
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise BadRequestBody("the body is empty: send the bundle")
        part.chmod(0o644)  # root's service reads it; no one else writes it
        os.replace(part, bundle)
    finally:
        part.unlink(missing_ok=True)
    wanted = UpdateRequest(
        allow_downgrade=allow_downgrade,
        reboot=reboot,
        at=time.time(),
        size=size,
        reboot_at=reboot_at,
    )
    write_atomic(data_dir / REQUEST, msgspec.json.encode(wanted), mode=0o644)
    return json_response(wanted, status=202)


async def update_page(request: web.Request) -> web.Response:
    """Both slots, the last update's result, and an upload that shows its progress."""
    view = update_view(_data_dir(request))
    return render(request, "update.html", "Update", active="/update", u=view)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "0")
    if value not in ("0", "1"):
        raise BadRequestBody(f"{name} is 0 or 1, not {value!r}")
    return value == "1"


UPDATE_ROUTES = (
    Route("GET", "/update", update_page),
    Route(
        "GET",
        "/api/v1/update",
        get_update,
        "The running version, the slot it booted from, and the last update's record (its "
        "state: installing, trying, committed, rolled-back, failed or refused, and why)",
        returns=UpdateView,
    ),
    Route(
        "POST",
        "/api/v1/update",
        post_update,
        "Upload a signed update bundle (the body) to be checked and installed into the other "
        "root slot by the device's update service; the outcome shows in GET /api/v1/update",
        ok=202,
        returns=UpdateRequest,
        body={"type": "string", "format": "binary", "minLength": 1},
        body_media="application/octet-stream",
        errors=(400, 413),
        query=(
            Query("reboot", {"type": "string", "enum": ["0", "1"]}),  # 1: reboot into it
            # or reboot into it at this time of the device's day (instead of at once)
            Query("reboot_at", {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
            Query("allow_downgrade", {"type": "string", "enum": ["0", "1"]}),
        ),
    ),
)

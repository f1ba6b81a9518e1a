"""Pages from templates: the panel's Jinja2 environment (through aiohttp-jinja2) and one call
that renders a page with its frame's facts (title, navigation, CSRF token) filled in.

Every page is a template under ``templates/`` extending ``base.html``; escaping is the
environment's (``appliance.templating``), never the caller's.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from appliance.templating import FILTERS, OPTIONS
from appliance.web.keys import SESSION

NAV = [
    ("/", "Home"),
    ("/devices", "Devices"),
    ("/jobs", "Jobs"),
    ("/schedules", "Schedules"),
    ("/approvals", "Approvals"),
    ("/submit", "Submit"),
    ("/events", "Live events"),
    ("/system", "System"),
    ("/fleet", "Fleet"),
    ("/update", "Update"),
    ("/settings", "Settings"),
]


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, default_helpers=False, filters=FILTERS, **OPTIONS)


def render(
    request: web.Request,
    template: str,
    title: str,
    *,
    active: str = "",
    status: int = 200,
    **context: Any,
) -> web.Response:
    """``templates/<template>`` as a page. Signed in, the page carries the session's CSRF
    token (for panel.js) and the navigation; never cached, since it shows live state."""
    session = request.get(SESSION)
    frame = {"title": title, "active": active, "nav": NAV, "csrf": session.csrf if session else ""}
    response = aiohttp_jinja2.render_template(
        f"web/{template}", request, frame | context, status=status
    )
    response.headers["Cache-Control"] = "no-store"
    return response

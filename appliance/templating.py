"""The one way the appliance writes HTML and SVG: Jinja2 templates, escaped by default.

Templates live beside the code that fills them (``appliance/web/templates/``,
``appliance/reports/templates/``) and are named by their package ("web/job.html",
"report/findings.html"), so the panel's job page can include the report's findings part and
the two never disagree. Autoescape is on for every .html and .svg template: a command, an
objective or a host name can never become markup, whoever forgets what. Undefined names are
errors, so a renamed field fails the page's test instead of rendering blank.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import msgspec


def utc_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def local_time(at: float | None) -> str:
    """An instant as the device's local time (schedules are kept in it); — for none."""
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at is not None else "—"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(value: object, limit: int = 120) -> str:
    """A value as one line of compact JSON, clipped: a table cell's glimpse of a result."""
    if value is None:
        return ""
    return clip(msgspec.json.encode(value, enc_hook=str).decode(), limit)


def pretty(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value, enc_hook=str), indent=2).decode()


HERE = Path(__file__).resolve().parent
FILTERS: dict[str, Any] = {
    "utc_time": utc_time,
    "local_time": local_time,
    "clip": clip,
    "summary": summary,
    "pretty": pretty,
}

OPTIONS: dict[str, Any] = {
    "loader": jinja2.PrefixLoader(
        {
            "web": jinja2.FileSystemLoader(HERE / "web" / "templates"),
            "report": jinja2.FileSystemLoader(HERE / "reports" / "templates"),
        }
    ),
    "autoescape": jinja2.select_autoescape(("html", "svg")),
    "undefined": jinja2.StrictUndefined,
    "trim_blocks": True,
    "lstrip_blocks": True,
}
"""The environment's settings: the panel's (through aiohttp-jinja2) and ``environment()``."""


@cache
def environment() -> jinja2.Environment:
    """The environment for what renders outside a request (a report written to a file)."""
    env = jinja2.Environment(**OPTIONS)
    env.filters.update(FILTERS)
    return env

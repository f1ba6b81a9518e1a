"""One table of routes: each entry both registers a handler and, for the JSON API, documents it.

The OpenAPI document (``openapi.py``) is built from the entries an application was given, the
same ones aiohttp serves, so an operation cannot be served undocumented, nor documented and
not served. Each module keeps its table beside its handlers (``API_ROUTES``, ``OPS_ROUTES``,
...); ``add_routes`` puts one on an application.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import GenericAlias
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = type | GenericAlias | dict[str, Any] | None
"""A body: a type msgspec describes (a Struct, ``list[Struct]``), a JSON schema, or none."""

_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")
_WORDS = re.compile(r"\w+(\|\w+)*")


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter an operation reads, with its JSON schema."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Route:
    """A method and path, its handler and what the API document says of it.

    ``summary`` is empty for what is not API (pages, sign-in forms): those are served and not
    documented. ``returns`` is the ``ok`` answer's body: a Struct type (its schema comes from
    msgspec, the same type the handler encodes), a JSON schema, or None for no body.
    """

    method: str
    path: str
    handler: Handler
    summary: str = ""
    ok: int = 200
    returns: Schema = None
    errors: tuple[int, ...] = ()
    body: Schema = None  # the request's body (JSON unless body_media says otherwise)
    body_media: str = "application/json"
    query: tuple[Query, ...] = ()
    media: tuple[str, ...] = ("application/json",)  # the ok answer's media types

    @property
    def documented(self) -> bool:
        return bool(self.summary)

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: ``{verb:approve|reject}`` becomes ``{verb}``."""
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)

    def params(self) -> list[tuple[str, dict[str, Any]]]:
        """The path's parameters and their schemas: a choice of words (``{verb:a|b}``) is an
        enum, another pattern is itself, and a bare name one of our identifiers."""
        out = []
        for name, regex in _PARAM.findall(self.path):
            if regex and _WORDS.fullmatch(regex):
                out.append((name, {"type": "string", "enum": regex.split("|")}))
            elif regex:
                out.append((name, {"type": "string", "pattern": f"^{regex}$"}))
            else:
                out.append((name, dict(IDENTIFIER)))
        return out


IDENTIFIER: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": "^[A-Za-z0-9_.-]+$",
}
"""Job, task, schedule and action ids and agent type names: what a path segment may hold."""

JSON = "application/json"
OBJECT: dict[str, Any] = {"type": "object"}
"""A JSON object whose fields the handler builds (no Struct describes it yet)."""
OBJECTS: dict[str, Any] = {"type": "array", "items": OBJECT}

ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")
"""Every entry an application was given, in order: what its OpenAPI document describes."""


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    if ROUTES not in app:
        app[ROUTES] = []
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
        app[ROUTES].append(route)

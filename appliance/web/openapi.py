"""The OpenAPI 3.1 document of the panel's JSON API, served at ``/api/v1/openapi.json``.

Request and response bodies that are Structs get their schemas from msgspec, the same types
that decode the requests, so the document cannot claim a field the server would refuse. The
tests run schemathesis against this document and the live server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from appliance import __version__
from appliance.web.routes import JSON, Route, Schema
from appliance.web.sessions import CSRF_HEADER, SESSION_COOKIE

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_TEXT: dict[str, Any] = {"type": "string"}
Described = dict[object, dict[str, Any]]  # a typed body and its schema


_REASONS = {
    400: "bad input: the message says what is wrong; nothing was written",
    401: "no session: sign in first",
    403: "CSRF token missing or wrong, request from another origin, or a wrong password",
    404: "no such job, task, agent type, schedule, action or picture",
    409: "the action cannot be done in the present state",
    413: "the body is larger than the operation takes (an update bundle over 4 GiB)",
    422: "the input is well formed but refused (no confident route, event not accepted)",
    429: "too many failed attempts, or an inbox is full: retry later",
    502: "the action could not be carried out (the firewall refused it): nothing changed",
    503: "the runtime is not running",
}


def openapi_document(routes: Iterable[Route]) -> dict[str, Any]:
    """The document of the documented ``routes`` (an application's ``ROUTES``)."""
    documented = [r for r in routes if r.documented]
    types = list(dict.fromkeys(t for r in documented for t in (r.returns, r.body) if _typed(t)))
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    described: Described = dict(zip(types, schemas, strict=True))
    components["Error"] = _ERROR
    paths: dict[str, Any] = {}
    for route in documented:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route, described)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qEY-0 appliance API",
            "version": __version__,
            "description": "Sign in through /login (or /setup the first time) to get the session "
            f"cookie; send the page's CSRF token in {CSRF_HEADER} with every change. Live "
            "events: a WebSocket at /api/v1/live?job_id=&agent_type=&task_id=&kinds=.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
        "security": [{"session": []}],
    }


def _operation(route: Route, described: Described) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "responses": _responses(route, described)}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in route.params()
    ] + [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema} for q in route.query
    ]
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {route.body_media: {"schema": _of(route.body, described)}},
        }
    if route.method != "GET":  # every change needs the CSRF token as well as the session
        op["security"] = [{"session": [], "csrf": []}]
    return op


def _responses(route: Route, described: Described) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.returns is None:
        out[str(route.ok)] = {"description": "done"}
    else:
        out[str(route.ok)] = {
            "description": "ok",
            "content": {media: {"schema": _body(route, media, described)} for media in route.media},
        }
    for code in (401, *route.errors):
        out[str(code)] = {
            "description": _REASONS[code],
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def _typed(t: Schema) -> bool:
    return t is not None and not isinstance(t, dict)


def _body(route: Route, media: str, described: Described) -> dict[str, Any]:
    """The ok answer's schema in one of its media types: the route's own; in a media type
    other than JSON a typed answer (the report as Markdown, CSV, HTML) is text."""
    if media != JSON and not isinstance(route.returns, dict):
        return _TEXT
    return _of(route.returns, described)


def _of(t: Schema, described: Described) -> dict[str, Any]:
    return t if isinstance(t, dict) else described[t]

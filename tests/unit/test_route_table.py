"""The route table: a path's parameters become the document's, typed bodies get msgspec's
schemas, and what a route table registers is what the document describes."""

from __future__ import annotations

from aiohttp import web

from appliance.actions.store import ActionRecord
from appliance.web.approvals import ACTION_ROUTES
from appliance.web.openapi import openapi_document
from appliance.web.routes import ROUTES, Route, add_routes


async def _nothing(request: web.Request) -> web.Response:
    return web.Response()


def test_a_choice_of_words_in_a_path_is_an_enum_and_an_id_a_pattern() -> None:
    doc = openapi_document(ACTION_ROUTES)
    op = doc["paths"]["/api/v1/actions/{action_id}/{verb}"]["post"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert params["verb"] == {"type": "string", "enum": ["approve", "reject", "undo"]}
    assert params["action_id"]["pattern"] == "^[A-Za-z0-9_.-]+$"
    assert op["security"] == [{"session": [], "csrf": []}]  # a change: CSRF too


def test_a_list_of_records_refers_to_the_records_schema() -> None:
    doc = openapi_document(ACTION_ROUTES)
    ok = doc["paths"]["/api/v1/actions"]["get"]["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema == {"type": "array", "items": {"$ref": "#/components/schemas/ActionRecord"}}
    assert ActionRecord.__name__ in doc["components"]["schemas"]


def test_pages_are_served_not_documented() -> None:
    app = web.Application()
    add_routes(app, (Route("GET", "/jobs", _nothing), Route("GET", "/api/v1/x", _nothing, "X")))
    assert [r.path for r in app[ROUTES]] == ["/jobs", "/api/v1/x"]
    assert {r.resource.canonical for r in app.router.routes() if r.resource} == {
        "/jobs",
        "/api/v1/x",
    }
    assert list(openapi_document(app[ROUTES])["paths"]) == ["/api/v1/x"]

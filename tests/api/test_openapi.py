"""/openapi.json is built from the declarations the handlers use: no route without one, the
parameters a handler parses are the ones documented, and the event schema is the SDK's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.app import create_app
from auditkeep.api.http import route
from auditkeep.api.openapi import Operation, Undocumented, build_spec
from auditkeep.core import EXPORT_PARAMS
from auditkeep.query import QUERY_PARAMS, Param
from auditkeep_client.schema import EventValidationError, event_json_schema, normalize_event
from tests.conftest import event, make_core


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    core = make_core(tmp_path_factory.mktemp("spec") / "data")
    try:
        return build_spec(create_app(core, manage_core=False).routes)
    finally:
        core.close()


def _param_names(spec: dict[str, Any], path: str, method: str = "get") -> set[str]:
    return {p["name"] for p in spec["paths"][path][method].get("parameters", [])}


def test_a_route_without_a_declaration_cannot_be_documented() -> None:
    async def bare(request: Request) -> Response:
        return Response()

    with pytest.raises(Undocumented, match="/bare"):
        build_spec([Route("/bare", bare)])


def test_declared_path_parameters_must_match_the_route() -> None:
    @route("/things/{thing}", Operation("A thing", responses={200: {"description": "ok"}}))
    async def thing(request: Request) -> Response:
        return Response()

    with pytest.raises(Undocumented, match="path parameters"):
        build_spec([Route("/things/{thing}", thing)])


def test_documented_parameters_are_the_ones_the_handlers_parse(spec: dict[str, Any]) -> None:
    assert _param_names(spec, "/v1/events") == QUERY_PARAMS
    assert _param_names(spec, "/v1/export") == {p.name for p in EXPORT_PARAMS}
    assert _param_names(spec, "/v1/feed") == {"after", "limit", "wait"}
    limit = next(
        p for p in spec["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    assert _param_names(spec, "/v1/tenants/{tenant}/destinations/{dest_id}") == {
        "tenant",
        "dest_id",
    }


def test_body_models_become_component_schemas(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/tenants/{tenant}/keys"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewKey"}
    new_key = spec["components"]["schemas"]["NewKey"]
    assert new_key["required"] == ["scopes"] and new_key["additionalProperties"] is False
    assert new_key["properties"]["scopes"]["items"]["enum"] == [
        "admin",
        "events:read",
        "events:write",
    ]


def test_a_param_parses_and_describes_the_same_bounds() -> None:
    from auditkeep.errors import BadRequest

    p = Param("n", "A count", "integer", 3, minimum=1, maximum=9)
    assert p.parse({}) == 3 and p.parse({"n": "9"}) == 9
    for bad in ("0", "10", "x", "-1"):
        with pytest.raises(BadRequest, match="n must be"):
            p.parse({"n": bad})
    assert p.openapi()["schema"] == {"type": "integer", "minimum": 1, "maximum": 9, "default": 3}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"category": "security", "reason": "r"},
        {"surprise": 1},
        {"action": "Login"},
        {"action": ""},
        {"outcome": "maybe"},
        {"actor": {"type": "user"}},
        {"targets": [{"id": "x"}]},
        {"targets": [{"id": "x", "type": "doc"}] * 21},
        {"context": {"shoe_size": "9"}},
        {"id": "-starts-with-dash"},
        {"metadata": []},
    ],
)
def test_the_event_schema_agrees_with_the_sdk_checks(change: dict[str, Any]) -> None:
    """The published JSON Schema and normalize_event accept and refuse the same events."""
    candidate = {**event(1), **change}
    try:
        normalize_event(candidate)
        accepted = True
    except EventValidationError:
        accepted = False
    valid = jsonschema.Draft202012Validator(event_json_schema()).is_valid(candidate)
    assert valid == accepted, (change, accepted)


@pytest.mark.anyio
async def test_the_docs_page_renders_the_generated_document(tmp_path: Path) -> None:
    import httpx

    core = make_core(tmp_path / "data")
    try:
        transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = (await client.get("/docs")).text
            served = (await client.get("/openapi.json")).json()
    finally:
        core.close()
    assert "/v1/tenants/{tenant}/destinations/{dest_id}/rotate-secret" in page
    assert "maxLength" in page  # the event schema, from the SDK's definition
    assert served["components"]["schemas"]["EventIn"] == event_json_schema()

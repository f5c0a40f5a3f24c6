"""/v1/tenants and their API keys. Operator keys manage every tenant; a tenant key with the
``admin`` scope manages its own tenant's keys. Another tenant looks like a missing one (404).

Every store call runs in the thread pool: a store waiting for a lock (another process writing
the SQLite file, a PostgreSQL lock) must not stall the event loop and every other request."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, params, read_json, route
from auditkeep.api.openapi import Operation, json_answer, problems
from auditkeep.auth import OPERATOR, SLUG_RE, TENANT_SCOPES, parse_scopes
from auditkeep.bodies import parse_body
from auditkeep.core import parse_expiry
from auditkeep.model import format_timestamp
from auditkeep.query import path_param
from auditkeep.store.base import Tenant

_BODY_LIMIT = 64 * 1024


class NewTenant(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/tenants."""

    slug: Annotated[
        str,
        msgspec.Meta(
            description="1-63 lower-case letters, digits and '-', starting with a letter or "
            "digit (checked by auth.check_slug with the same pattern)",
            extra_json_schema={"pattern": f"^{SLUG_RE.pattern}$"},
        ),
    ]
    name: str | None = None


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/tenants/{tenant}/keys."""

    scopes: list[Annotated[str, msgspec.Meta(extra_json_schema={"enum": sorted(TENANT_SCOPES)})]]
    name: str | None = None
    expires_at: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})] | None = (
        None
    )
    rate_limit_rps: (
        Annotated[
            float,
            msgspec.Meta(
                description="Requests/s (0: unlimited). A tenant admin may not exceed the "
                "server's rate_limit_rps (403 rate-limit-ceiling).",
                extra_json_schema={"minimum": 0},
            ),
        ]
        | None
    ) = None


_TENANT_PARAM = path_param("tenant", "The tenant's slug")
_TENANT = {
    "type": "object",
    "required": ["slug", "name", "created_at"],
    "properties": {
        "slug": {"type": "string"},
        "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_KEY_FIELDS: dict[str, Any] = {
    "key_id": {"type": "string"},
    "tenant": {"type": "string"},
    "name": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string"}},
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    "rate_limit_rps": {"type": ["number", "null"]},
}
_KEY = {
    "type": "object",
    "description": "An API key's record (never the key or its hash)",
    "required": ["key_id", "scopes"],
    "properties": _KEY_FIELDS,
}
_NEW_KEY = {
    "type": "object",
    "description": "The new key's record and, only here, the key itself",
    "required": ["key_id", "scopes", "key"],
    "properties": {**_KEY_FIELDS, "key": {"type": "string"}},
}
_ADMIN_PROBLEMS = (401, 403, 404, 429, 503)


def tenant_json(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "created_at": format_timestamp(t.created_at)}


@route(
    "/v1/tenants",
    Operation(
        "Create a tenant (operator key)",
        body=NewTenant,
        responses={
            201: json_answer(_TENANT, "Created"),
            **problems(400, 401, 403, 409, 413, 415, 429, 503),
        },
    ),
)
async def create_tenant(request: Request) -> Response:
    """Create a tenant (operator keys only)."""
    (await authenticate(request)).require(OPERATOR)
    body = parse_body(await read_json(request, _BODY_LIMIT), NewTenant)
    tenant = await run_in_threadpool(core_of(request).create_tenant, body.slug, body.name)
    return JSONResponse(tenant_json(tenant), status_code=201)


@route(
    "/v1/tenants",
    Operation(
        "List tenants (operator key)",
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _TENANT}},
                },
                "Tenants",
            ),
            **problems(401, 403, 429, 503),
        },
    ),
)
async def list_tenants(request: Request) -> Response:
    """Every tenant (operator keys only)."""
    (await authenticate(request)).require(OPERATOR)
    tenants = await run_in_threadpool(core_of(request).store.list_tenants)
    return JSONResponse({"data": [tenant_json(t) for t in tenants]})


@route(
    "/v1/tenants/{tenant}/keys",
    Operation(
        "Create an API key (operator, or the tenant's admin scope)",
        params=(_TENANT_PARAM,),
        body=NewKey,
        responses={
            201: json_answer(_NEW_KEY, "The key, shown only in this response (field 'key')"),
            **problems(400, *_ADMIN_PROBLEMS, 413, 415),
        },
    ),
)
async def create_key(request: Request) -> Response:
    """Create an API key; the response is the only time the key is shown."""
    principal = await authenticate(request)
    core = core_of(request)
    tenant = await run_in_threadpool(core.tenant, params(request)["tenant"], principal)
    body = parse_body(await read_json(request, _BODY_LIMIT), NewKey)
    expires = parse_expiry(body.expires_at)
    record, key = await run_in_threadpool(
        functools.partial(
            core.create_key,
            tenant,
            parse_scopes(body.scopes),
            name=body.name or "",
            expires_at=expires,
            rate_limit_rps=body.rate_limit_rps,
            principal=principal,
        )
    )
    return JSONResponse({**record.public(), "key": key}, status_code=201)


@route(
    "/v1/tenants/{tenant}/keys",
    Operation(
        "List a tenant's keys",
        params=(_TENANT_PARAM,),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _KEY}},
                },
                "Keys",
            ),
            **problems(*_ADMIN_PROBLEMS),
        },
    ),
)
async def list_keys(request: Request) -> Response:
    """A tenant's keys (ids, scopes, state; never the keys or their hashes)."""
    principal = await authenticate(request)
    core = core_of(request)
    tenant = await run_in_threadpool(core.tenant, params(request)["tenant"], principal)
    keys = await run_in_threadpool(core.store.list_keys, tenant.tenant_id)
    return JSONResponse({"data": [k.public() for k in keys]})


@route(
    "/v1/tenants/{tenant}/keys/{key_id}",
    Operation(
        "Revoke a key",
        params=(_TENANT_PARAM, path_param("key_id", "The key's id")),
        responses={200: json_answer(_KEY, "Revoked"), **problems(*_ADMIN_PROBLEMS)},
    ),
)
async def revoke_key(request: Request) -> Response:
    """Revoke a key; it stops working at once on this node, and within key_revocation_check
    (0.25 s) on every other node and process."""
    principal = await authenticate(request)
    core = core_of(request)
    args = params(request)
    tenant = await run_in_threadpool(core.tenant, args["tenant"], principal)
    record = await run_in_threadpool(core.revoke_key, tenant, args["key_id"])
    return JSONResponse(record.public())


routes = [
    Route("/v1/tenants", create_tenant, methods=["POST"]),
    Route("/v1/tenants", list_tenants, methods=["GET"]),
    Route("/v1/tenants/{tenant}/keys", create_key, methods=["POST"]),
    Route("/v1/tenants/{tenant}/keys", list_keys, methods=["GET"]),
    Route("/v1/tenants/{tenant}/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

"""/v1/tenants and their API keys. Operator keys manage every tenant; a tenant key with the
``admin`` scope manages its own tenant's keys. Another tenant looks like a missing one (404).

Every store call runs in the thread pool: a store waiting for a lock (another process writing
the SQLite file, a PostgreSQL lock) must not stall the event loop and every other request."""

from __future__ import annotations

import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, read_json, route
from auditkeep.auth import OPERATOR, parse_scopes
from auditkeep.bodies import check_fields, optional_string
from auditkeep.core import parse_expiry
from auditkeep.errors import BadRequest
from auditkeep.model import format_timestamp
from auditkeep.store.base import Tenant

_BODY_LIMIT = 64 * 1024


def tenant_json(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "created_at": format_timestamp(t.created_at)}


@route("/v1/tenants")
async def create_tenant(request: Request) -> Response:
    """Create a tenant (operator keys only)."""
    (await authenticate(request)).require(OPERATOR)
    body = check_fields(await read_json(request, _BODY_LIMIT), {"slug", "name"}, {"slug"})
    slug = optional_string(body, "slug") or ""
    name = optional_string(body, "name")
    tenant = await run_in_threadpool(core_of(request).create_tenant, slug, name)
    return JSONResponse(tenant_json(tenant), status_code=201)


@route("/v1/tenants")
async def list_tenants(request: Request) -> Response:
    """Every tenant (operator keys only)."""
    (await authenticate(request)).require(OPERATOR)
    tenants = await run_in_threadpool(core_of(request).store.list_tenants)
    return JSONResponse({"data": [tenant_json(t) for t in tenants]})


@route("/v1/tenants/{tenant}/keys")
async def create_key(request: Request) -> Response:
    """Create an API key; the response is the only time the key is shown."""
    principal = await authenticate(request)
    core = core_of(request)
    tenant = await run_in_threadpool(core.tenant, request.path_params["tenant"], principal)
    body = check_fields(
        await read_json(request, _BODY_LIMIT),
        {"scopes", "name", "expires_at", "rate_limit_rps"},
        {"scopes"},
    )
    scopes = body["scopes"]
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise BadRequest('scopes must be an array of strings, e.g. ["events:write"]')
    expires = parse_expiry(optional_string(body, "expires_at"))
    rate = body.get("rate_limit_rps")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        raise BadRequest("rate_limit_rps must be a number")
    record, key = await run_in_threadpool(
        functools.partial(
            core.create_key,
            tenant,
            parse_scopes(scopes),
            name=optional_string(body, "name") or "",
            expires_at=expires,
            rate_limit_rps=float(rate) if rate is not None else None,
            principal=principal,
        )
    )
    return JSONResponse({**record.public(), "key": key}, status_code=201)


@route("/v1/tenants/{tenant}/keys")
async def list_keys(request: Request) -> Response:
    """A tenant's keys (ids, scopes, state; never the keys or their hashes)."""
    principal = await authenticate(request)
    core = core_of(request)
    tenant = await run_in_threadpool(core.tenant, request.path_params["tenant"], principal)
    keys = await run_in_threadpool(core.store.list_keys, tenant.tenant_id)
    return JSONResponse({"data": [k.public() for k in keys]})


@route("/v1/tenants/{tenant}/keys/{key_id}")
async def revoke_key(request: Request) -> Response:
    """Revoke a key; it stops working at once on this node, and within key_revocation_check
    (0.25 s) on every other node and process."""
    principal = await authenticate(request)
    core = core_of(request)
    tenant = await run_in_threadpool(core.tenant, request.path_params["tenant"], principal)
    record = await run_in_threadpool(core.revoke_key, tenant, request.path_params["key_id"])
    return JSONResponse(record.public())


routes = [
    Route("/v1/tenants", create_tenant, methods=["POST"]),
    Route("/v1/tenants", list_tenants, methods=["GET"]),
    Route("/v1/tenants/{tenant}/keys", create_key, methods=["POST"]),
    Route("/v1/tenants/{tenant}/keys", list_keys, methods=["GET"]),
    Route("/v1/tenants/{tenant}/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

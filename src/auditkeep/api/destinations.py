"""/v1/tenants/{tenant}/destinations: where a tenant's events are delivered.

Managed by operator keys, or by a tenant key with the ``admin`` scope for its own tenant;
another tenant's destinations look absent (404). Secrets are write-only: an answer shows how
many a destination holds, never one — except a signing secret the server just made.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, read_json, route
from auditkeep.core import Core
from auditkeep.errors import BadRequest
from auditkeep.store.base import Tenant

_BODY_LIMIT = 64 * 1024


async def _scope(request: Request) -> tuple[Core, Tenant]:
    principal = await authenticate(request)
    core = core_of(request)
    slug = request.path_params["tenant"]
    return core, await run_in_threadpool(core.tenant, slug, principal)


async def _body(request: Request, *, optional: bool = False) -> Any:
    """The JSON body (size-limited by read_json); ``optional``: no body at all means {}."""
    headers = request.headers
    if (
        optional
        and headers.get("content-length", "0") == "0"
        and "transfer-encoding" not in headers
    ):
        return {}
    return await read_json(request, _BODY_LIMIT)


@route("/v1/tenants/{tenant}/destinations")
async def create_destination(request: Request) -> Response:
    """Create a destination; delivery starts at once (from the log's start unless start=now)."""
    core, tenant = await _scope(request)
    body = await _body(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.create, tenant, body), status_code=201
    )


@route("/v1/tenants/{tenant}/destinations")
async def list_destinations(request: Request) -> Response:
    """A tenant's destinations with their delivery status."""
    core, tenant = await _scope(request)
    return JSONResponse({"data": await run_in_threadpool(core.destinations.list, tenant)})


@route("/v1/tenants/{tenant}/destinations/{dest_id}")
async def get_destination(request: Request) -> Response:
    """One destination: configuration, cursor, lag (events, seconds), last error, attempts."""
    core, tenant = await _scope(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.get, tenant, request.path_params["dest_id"])
    )


@route("/v1/tenants/{tenant}/destinations/{dest_id}")
async def update_destination(request: Request) -> Response:
    """Change a destination's name, configuration (replaced whole) or secret."""
    core, tenant = await _scope(request)
    body = await _body(request)
    return JSONResponse(
        await run_in_threadpool(
            core.destinations.update, tenant, request.path_params["dest_id"], body
        )
    )


@route("/v1/tenants/{tenant}/destinations/{dest_id}")
async def delete_destination(request: Request) -> Response:
    """Delete a destination (its events stay in the log)."""
    core, tenant = await _scope(request)
    await run_in_threadpool(core.destinations.delete, tenant, request.path_params["dest_id"])
    return Response(status_code=204)


@route("/v1/tenants/{tenant}/destinations/{dest_id}/pause")
async def pause_destination(request: Request) -> Response:
    """Stop delivering until resumed: ``{"reason": "..."}`` (optional)."""
    core, tenant = await _scope(request)
    body = await _body(request, optional=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    return JSONResponse(
        await run_in_threadpool(
            core.destinations.pause, tenant, request.path_params["dest_id"], reason
        )
    )


@route("/v1/tenants/{tenant}/destinations/{dest_id}/resume")
async def resume_destination(request: Request) -> Response:
    """Deliver again now, from where the destination stopped."""
    core, tenant = await _scope(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.resume, tenant, request.path_params["dest_id"])
    )


@route("/v1/tenants/{tenant}/destinations/{dest_id}/rotate-secret")
async def rotate_secret(request: Request) -> Response:
    """A new secret; webhooks keep signing with the previous ones until keep_previous=false."""
    core, tenant = await _scope(request)
    body = await _body(request, optional=True)
    dest_id = request.path_params["dest_id"]
    return JSONResponse(
        await run_in_threadpool(core.destinations.rotate_secret, tenant, dest_id, body)
    )


_BASE = "/v1/tenants/{tenant}/destinations"
routes = [
    Route(_BASE, create_destination, methods=["POST"]),
    Route(_BASE, list_destinations, methods=["GET"]),
    Route(_BASE + "/{dest_id}", get_destination, methods=["GET"]),
    Route(_BASE + "/{dest_id}", update_destination, methods=["PATCH"]),
    Route(_BASE + "/{dest_id}", delete_destination, methods=["DELETE"]),
    Route(_BASE + "/{dest_id}/pause", pause_destination, methods=["POST"]),
    Route(_BASE + "/{dest_id}/resume", resume_destination, methods=["POST"]),
    Route(_BASE + "/{dest_id}/rotate-secret", rotate_secret, methods=["POST"]),
]

"""/v1/tenants/{tenant}/destinations: where a tenant's events are delivered.

Managed by operator keys, or by a tenant key with the ``admin`` scope for its own tenant;
another tenant's destinations look absent (404). Secrets are write-only: an answer shows how
many a destination holds, never one — except a signing secret the server just made.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, params, read_json, route
from auditkeep.api.openapi import Operation, json_answer, problems
from auditkeep.bodies import parse_body
from auditkeep.core import Core
from auditkeep.delivery.kinds import KIND_NAMES
from auditkeep.delivery.manage import DestinationChange, NewDestination, SecretRotation
from auditkeep.query import path_param
from auditkeep.store.base import Tenant

_BODY_LIMIT = 64 * 1024


class Pause(msgspec.Struct, forbid_unknown_fields=True):
    """The body of pause (optional)."""

    reason: str | None = None


_NULLABLE_TEXT = {"type": ["string", "null"]}
_DESTINATION: dict[str, Any] = {
    "type": "object",
    "description": "A destination and its delivery status. Secrets are never shown, except "
    "'secret' in the answer that made one (webhook signing secrets).",
    "required": ["id", "tenant", "name", "kind", "config", "state", "cursor"],
    "properties": {
        "id": {"type": "string"},
        "tenant": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"enum": list(KIND_NAMES)},
        "config": {"type": "object"},
        "state": {"enum": ["active", "paused"]},
        "paused_reason": _NULLABLE_TEXT,
        "cursor": {"type": "integer", "description": "Highest seq delivered"},
        "delivered": {"type": "integer"},
        "log_size": {"type": "integer"},
        "lag_events": {"type": "integer"},
        "lag_seconds": {"type": ["number", "null"]},
        "attempts": {"type": "integer", "description": "Failed attempts of the batch in flight"},
        "last_error": _NULLABLE_TEXT,
        "failing_since": _NULLABLE_TEXT,
        "last_attempt_at": _NULLABLE_TEXT,
        "last_success_at": _NULLABLE_TEXT,
        "next_attempt_at": _NULLABLE_TEXT,
        "secrets": {"type": "integer", "description": "Secrets held (2+ during a rotation)"},
        "secret": {"type": "string", "description": "Only when the server just made it"},
        "created_at": _NULLABLE_TEXT,
        "updated_at": _NULLABLE_TEXT,
    },
}
_TENANT = path_param("tenant", "The tenant's slug")
_ONE = (_TENANT, path_param("dest_id", "The destination's id"))
_PROBLEMS = (401, 403, 404, 429, 503)
_BODY_PROBLEMS = (400, 413, 415, 422)


def _op(
    summary: str,
    *codes: int,
    body: type[msgspec.Struct] | None = None,
    body_required: bool = True,
    status: int = 200,
) -> Operation:
    return Operation(
        summary,
        params=_ONE,
        body=body,
        body_required=body_required,
        responses={
            status: json_answer(_DESTINATION, "The destination"),
            **problems(*_PROBLEMS, *codes),
        },
    )


async def _scope(request: Request) -> tuple[Core, Tenant]:
    principal = await authenticate(request)
    core = core_of(request)
    slug = params(request)["tenant"]
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


@route(
    "/v1/tenants/{tenant}/destinations",
    Operation(
        "Create a delivery destination (webhook, splunk_hec, syslog, s3)",
        params=(_TENANT,),
        body=NewDestination,
        responses={
            201: json_answer(_DESTINATION, "Created"),
            **problems(*_PROBLEMS, *_BODY_PROBLEMS, 409),
        },
    ),
)
async def create_destination(request: Request) -> Response:
    """Create a destination; delivery starts at once (from the log's start unless start=now)."""
    core, tenant = await _scope(request)
    body = await _body(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.create, tenant, body), status_code=201
    )


@route(
    "/v1/tenants/{tenant}/destinations",
    Operation(
        "A tenant's destinations and their delivery status",
        params=(_TENANT,),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _DESTINATION}},
                },
                "Destinations",
            ),
            **problems(*_PROBLEMS),
        },
    ),
)
async def list_destinations(request: Request) -> Response:
    """A tenant's destinations with their delivery status."""
    core, tenant = await _scope(request)
    return JSONResponse({"data": await run_in_threadpool(core.destinations.list, tenant)})


@route("/v1/tenants/{tenant}/destinations/{dest_id}", _op("One destination"))
async def get_destination(request: Request) -> Response:
    """One destination: configuration, cursor, lag (events, seconds), last error, attempts."""
    core, tenant = await _scope(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.get, tenant, params(request)["dest_id"])
    )


@route(
    "/v1/tenants/{tenant}/destinations/{dest_id}",
    _op(
        "Change name, config (replaced whole) or secret",
        *_BODY_PROBLEMS,
        409,
        body=DestinationChange,
    ),
)
async def update_destination(request: Request) -> Response:
    """Change a destination's name, configuration (replaced whole) or secret."""
    core, tenant = await _scope(request)
    body = await _body(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.update, tenant, params(request)["dest_id"], body)
    )


@route(
    "/v1/tenants/{tenant}/destinations/{dest_id}",
    Operation(
        "Delete a destination (its events stay in the log)",
        params=_ONE,
        responses={204: {"description": "Deleted"}, **problems(*_PROBLEMS)},
    ),
)
async def delete_destination(request: Request) -> Response:
    """Delete a destination (its events stay in the log)."""
    core, tenant = await _scope(request)
    await run_in_threadpool(core.destinations.delete, tenant, params(request)["dest_id"])
    return Response(status_code=204)


@route(
    "/v1/tenants/{tenant}/destinations/{dest_id}/pause",
    _op(
        'Pause delivery ({"reason"} optional)',
        *_BODY_PROBLEMS,
        body=Pause,
        body_required=False,
    ),
)
async def pause_destination(request: Request) -> Response:
    """Stop delivering until resumed: ``{"reason": "..."}`` (optional)."""
    core, tenant = await _scope(request)
    body = parse_body(await _body(request, optional=True), Pause)
    return JSONResponse(
        await run_in_threadpool(
            core.destinations.pause, tenant, params(request)["dest_id"], body.reason
        )
    )


@route(
    "/v1/tenants/{tenant}/destinations/{dest_id}/resume",
    _op("Resume delivery now, from the cursor"),
)
async def resume_destination(request: Request) -> Response:
    """Deliver again now, from where the destination stopped."""
    core, tenant = await _scope(request)
    return JSONResponse(
        await run_in_threadpool(core.destinations.resume, tenant, params(request)["dest_id"])
    )


@route(
    "/v1/tenants/{tenant}/destinations/{dest_id}/rotate-secret",
    _op(
        "New secret; webhooks co-sign with the previous ones until keep_previous=false",
        *_BODY_PROBLEMS,
        body=SecretRotation,
        body_required=False,
    ),
)
async def rotate_secret(request: Request) -> Response:
    """A new secret; webhooks keep signing with the previous ones until keep_previous=false."""
    core, tenant = await _scope(request)
    body = await _body(request, optional=True)
    dest_id = params(request)["dest_id"]
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

"""/v1/viewer-tokens: short-lived, scoped, read-only tokens for a customer's end users."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, read_json, route
from auditkeep.api.openapi import Operation, json_answer, problems
from auditkeep.auth import MAX_VIEWER_TTL
from auditkeep.bodies import parse_body
from auditkeep.core import DEFAULT_VIEWER_TTL
from auditkeep.model import format_timestamp
from auditkeep.query import EVENT_FILTERS

_BODY_LIMIT = 16 * 1024


class ViewerTarget(msgspec.Struct, forbid_unknown_fields=True):
    """A target the token is bound to: events that touched it."""

    type: str
    id: str


class NewViewerToken(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/viewer-tokens. At least one of actor_id, target or filters, or
    "scope": "tenant" for a token that reads every event of the tenant."""

    actor_id: str | None = None
    target: ViewerTarget | None = None
    filters: (
        Annotated[
            dict[str, str],
            msgspec.Meta(
                description="Fixed filters, named and written as the query parameters of "
                "GET /v1/events: " + ", ".join(p.name for p in EVENT_FILTERS),
            ),
        ]
        | None
    ) = None
    hide_fields: (
        Annotated[
            list[str],
            msgspec.Meta(
                description="Fields removed from every event served: under context. or "
                "metadata. (e.g. context.ip), reason or actor.name"
            ),
        ]
        | None
    ) = None
    ttl_seconds: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_VIEWER_TTL,
            description=f"Lifetime, 1-{MAX_VIEWER_TTL} s (default {DEFAULT_VIEWER_TTL})",
        ),
    ] = DEFAULT_VIEWER_TTL
    scope: Literal["tenant"] | None = None


_TOKEN = {
    "type": "object",
    "required": ["token", "expires_at"],
    "properties": {
        "token": {"type": "string", "description": "akv_...: send as 'Authorization: Bearer'"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}


@route(
    "/v1/viewer-tokens",
    Operation(
        "Mint a short-lived, read-only viewer token for an end user (events:read)",
        description="The token reads only the events of its scope (actor, target or fixed "
        "filters) and their proofs; its issuance is recorded in the tenant's log as "
        "auditkeep.viewer_token.created. Revoking the minting key ends its tokens.",
        body=NewViewerToken,
        responses={
            201: json_answer(_TOKEN, "The token, shown only in this response"),
            **problems(400, 401, 403, 413, 415, 429, 503),
        },
    ),
)
async def create_viewer_token(request: Request) -> Response:
    """Mint a viewer token; the issuance event is committed before the token is answered."""
    principal = await authenticate(request)
    core = core_of(request)
    body = parse_body(await read_json(request, _BODY_LIMIT), NewViewerToken)
    token, expires_at, event = await run_in_threadpool(
        functools.partial(
            core.mint_viewer_token,
            principal,
            actor_id=body.actor_id,
            target=(body.target.type, body.target.id) if body.target else None,
            filters=body.filters,
            hide_fields=body.hide_fields or (),
            ttl_seconds=body.ttl_seconds,
            whole_tenant=body.scope == "tenant",
        )
    )
    await core.writer.append(principal.tenant_id, [event])
    return JSONResponse(
        {"token": token, "expires_at": format_timestamp(expires_at)}, status_code=201
    )


routes = [Route("/v1/viewer-tokens", create_viewer_token, methods=["POST"])]

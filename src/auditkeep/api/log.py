"""/v1/log: the verifiable log. Signed checkpoints, inclusion and consistency proofs, the
public key. Every read is scoped like the event reads: the tenant of the key, events:read.
Formats: docs/verification.md."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, route
from auditkeep.auth import ADMIN, EVENTS_READ, EVENTS_WRITE, Principal
from auditkeep.errors import BadRequest, Forbidden
from auditkeep.query import int_param
from auditkeep.store.base import SYSTEM_TENANT_ID, Tenant
from auditkeep.translog import checkpoint_json

_NOTE_TYPE = "text/plain; charset=utf-8"


def _tenant(principal: Principal) -> Tenant:
    key = principal.key
    return Tenant(key.tenant_id, key.tenant_slug, key.tenant_slug, 0)


async def _reader(request: Request) -> Tenant:
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_READ)
    return _tenant(principal)


def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    params = dict(request.query_params)
    unknown = set(params) - allowed
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(allowed))}"
        )
    return params


def _wants_json(request: Request, params: dict[str, str]) -> bool:
    fmt = params.get("format")
    if fmt is not None:
        if fmt not in ("json", "note"):
            raise BadRequest(f"format must be json or note, got {fmt[:40]!r}")
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/plain" not in accept


@route("/v1/log/checkpoint")
async def latest_checkpoint(request: Request) -> Response:
    """The latest signed checkpoint: the signed note (text/plain), or JSON."""
    tenant = await _reader(request)
    params = _params(request, {"format"})
    core = core_of(request)
    cp = await run_in_threadpool(core.tlog.latest, tenant)
    if _wants_json(request, params):
        return JSONResponse(checkpoint_json(cp))
    return Response(cp.note, media_type=_NOTE_TYPE)


@route("/v1/log/checkpoints")
async def list_checkpoints(request: Request) -> Response:
    """Checkpoint history, smallest tree size first: ``?after_size=N&limit=M``."""
    tenant = await _reader(request)
    params = _params(request, {"after_size", "limit"})
    after = int_param(params, "after_size")
    limit = int_param(params, "limit", 100, minimum=1, maximum=1000)
    log_reader = core_of(request).store.log(tenant.tenant_id)
    rows = await run_in_threadpool(log_reader.checkpoints, -1 if after is None else after, limit)
    return JSONResponse(
        {
            "data": [checkpoint_json(cp) for cp in rows],
            "next_after_size": rows[-1].size if len(rows) == limit else None,
        }
    )


@route("/v1/log/checkpoints/{size}")
async def checkpoint_at(request: Request) -> Response:
    """The checkpoint signed at exactly tree size ``size`` (404 if none was signed there)."""
    tenant = await _reader(request)
    params = _params(request, {"format"})
    size = int_param(request.path_params, "size", 0)
    core = core_of(request)
    cp = await run_in_threadpool(core.tlog.checkpoint_at, tenant, size)
    if _wants_json(request, params):
        return JSONResponse(checkpoint_json(cp))
    return Response(cp.note, media_type=_NOTE_TYPE)


@route("/v1/log/checkpoints")
async def sign_checkpoint(request: Request) -> Response:
    """Sign a checkpoint of the caller's log now (events:write or admin). 201 if one was
    made, 200 if the latest checkpoint already covers the log."""
    principal = await authenticate(request)
    key = principal.key
    if key.tenant_id == SYSTEM_TENANT_ID:
        principal.require_tenant_scope(EVENTS_WRITE)  # explains that operator keys cannot
    if not key.scopes & {EVENTS_WRITE, ADMIN}:
        raise Forbidden(
            f"key {key.key_id} has scopes [{', '.join(sorted(key.scopes))}]; signing a "
            "checkpoint needs events:write or admin"
        )
    core = core_of(request)
    cp, made = await run_in_threadpool(core.tlog.sign, _tenant(principal))
    return JSONResponse(checkpoint_json(cp), status_code=201 if made else 200)


@route("/v1/log/proof/inclusion")
async def inclusion(request: Request) -> Response:
    """Inclusion proof of an event (``?id=`` or ``?seq=``) in the tree of ``tree_size``
    (default: the latest checkpoint's size)."""
    tenant = await _reader(request)
    params = _params(request, {"id", "seq", "tree_size"})
    core = core_of(request)
    body = await run_in_threadpool(
        lambda: core.tlog.inclusion(
            tenant,
            event_id=params.get("id"),
            seq=int_param(params, "seq"),
            tree_size=int_param(params, "tree_size"),
        )
    )
    return JSONResponse(body)


@route("/v1/log/proof/consistency")
async def consistency(request: Request) -> Response:
    """Consistency proof from tree size ``first`` to ``second`` (default: latest checkpoint)."""
    tenant = await _reader(request)
    params = _params(request, {"first", "second"})
    first = int_param(params, "first")
    if first is None:
        raise BadRequest("first (the older tree size) is required")
    core = core_of(request)
    second = int_param(params, "second")
    body = await run_in_threadpool(core.tlog.consistency, tenant, first, second)
    return JSONResponse(body)


@route("/v1/log/frontier")
async def frontier(request: Request) -> Response:
    """The perfect-subtree roots of the tree of ``tree_size`` (for export bundles)."""
    tenant = await _reader(request)
    params = _params(request, {"tree_size"})
    core = core_of(request)
    body = await run_in_threadpool(core.tlog.frontier, tenant, int_param(params, "tree_size"))
    return JSONResponse(body)


@route("/v1/log/key")
async def public_key(request: Request) -> Response:
    """The checkpoint verifier key(s): public, no authentication. Text: one verifier key per
    line, signing keys only (active first). JSON: every key with its state and history; when
    the request carries an API key of a tenant, also that tenant's log ``origin``."""
    params = _params(request, {"format"})
    core = core_of(request)
    tenant = None
    if request.headers.get("authorization"):
        principal = await authenticate(request)
        if principal.key.tenant_id != SYSTEM_TENANT_ID:
            tenant = _tenant(principal)
    keys = await run_in_threadpool(core.tlog.public_keys, tenant)
    if _wants_json(request, params):
        return JSONResponse(keys)
    lines = [k["vkey"] for k in keys["keys"] if k["state"] != "retired"]
    return Response("".join(line + "\n" for line in lines), media_type=_NOTE_TYPE)


routes = [
    Route("/v1/log/checkpoint", latest_checkpoint, methods=["GET"]),
    Route("/v1/log/checkpoints", list_checkpoints, methods=["GET"]),
    Route("/v1/log/checkpoints", sign_checkpoint, methods=["POST"]),
    Route("/v1/log/checkpoints/{size}", checkpoint_at, methods=["GET"]),
    Route("/v1/log/proof/inclusion", inclusion, methods=["GET"]),
    Route("/v1/log/proof/consistency", consistency, methods=["GET"]),
    Route("/v1/log/frontier", frontier, methods=["GET"]),
    Route("/v1/log/key", public_key, methods=["GET"]),
]

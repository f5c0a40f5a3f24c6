"""/v1/log: the verifiable log. Signed checkpoints, inclusion and consistency proofs, the
public key. Every read is scoped like the event reads: the tenant of the key, events:read.
Formats: docs/verification.md."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, authenticate, core_of, params, route
from auditkeep.api.openapi import Operation, json_answer, problems
from auditkeep.auth import ADMIN, EVENTS_WRITE, Principal
from auditkeep.errors import Forbidden
from auditkeep.query import Param, path_param
from auditkeep.store.base import SYSTEM_TENANT_ID, Tenant
from auditkeep.translog import checkpoint_json

_NOTE_TYPE = "text/plain; charset=utf-8"

_HEX_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HASHES = {"type": "array", "items": _HEX_HASH}
_SIZE = {"type": "integer", "minimum": 0}
_CHECKPOINT: dict[str, Any] = {
    "type": "object",
    "description": "A signed checkpoint. 'note' is the C2SP signed note a verifier checks; "
    "the other fields are parsed from it for convenience (docs/verification.md).",
    "required": ["origin", "size", "root", "note"],
    "properties": {
        "origin": {"type": "string", "examples": ["auditkeep.local/acme"]},
        "size": {**_SIZE, "description": "Tree size: the log's events 1..size"},
        "root": {**_HEX_HASH, "description": "Merkle root (hex)"},
        "timestamp": {"type": ["string", "null"], "format": "date-time"},
        "key_ids": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "note": {"type": "string", "description": "The signed note, byte for byte"},
    },
}
_NOTE_OR_JSON = {
    "description": "The signed note (text/plain), or JSON with ?format=json or "
    "Accept: application/json",
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": _CHECKPOINT},
    },
}
_FORMAT = Param("format", "note (default) or json", enum=("json", "note"))
_TREE_SIZE = Param("tree_size", "Tree size (default: the latest checkpoint's)", "integer")
_READ_PROBLEMS = (400, 401, 403, 429, 503)


def _tenant(principal: Principal) -> Tenant:
    key = principal.key
    return Tenant(key.tenant_id, key.tenant_slug, key.tenant_slug, 0)


async def _reader(request: Request) -> Tenant:
    return _tenant(await _principal(request))


async def _principal(request: Request) -> Principal:
    """A reader of the log: a key with events:read, or a viewer token."""
    principal = await authenticate(request)
    principal.require_reader()
    return principal


def _wants_json(request: Request, args: dict[str, Any]) -> bool:
    fmt = args.get("format")
    if fmt is not None:
        return bool(fmt == "json")
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/plain" not in accept


@route(
    "/v1/log/checkpoint",
    Operation(
        "The latest signed checkpoint of the caller's tenant's log",
        description="C2SP tlog-checkpoint in a C2SP signed note, signed with Ed25519 "
        "(GET /v1/log/key). Needs events:read.",
        params=(_FORMAT,),
        responses={200: _NOTE_OR_JSON, **problems(*_READ_PROBLEMS, 404)},
    ),
)
async def latest_checkpoint(request: Request) -> Response:
    """The latest signed checkpoint: the signed note (text/plain), or JSON."""
    tenant = await _reader(request)
    args = params(request)
    core = core_of(request)
    cp = await run_in_threadpool(core.tlog.latest, tenant)
    if _wants_json(request, args):
        return JSONResponse(checkpoint_json(cp))
    return Response(cp.note, media_type=_NOTE_TYPE)


@route(
    "/v1/log/checkpoints",
    Operation(
        "Checkpoint history, smallest tree size first",
        description="Page with after_size (exclusive): pass the answer's next_after_size "
        "until it is null. Needs events:read.",
        params=(
            Param("after_size", "Only checkpoints with a larger tree size (exclusive)", "integer"),
            Param("limit", "1-1000 (default 100)", "integer", 100, minimum=1, maximum=1000),
        ),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data", "next_after_size"],
                    "properties": {
                        "data": {"type": "array", "items": _CHECKPOINT},
                        "next_after_size": {"type": ["integer", "null"]},
                    },
                },
                "Checkpoints",
            ),
            **problems(*_READ_PROBLEMS),
        },
    ),
)
async def list_checkpoints(request: Request) -> Response:
    """Checkpoint history, smallest tree size first: ``?after_size=N&limit=M``."""
    tenant = await _reader(request)
    args = params(request)
    after, limit = args["after_size"], args["limit"]
    log_reader = core_of(request).store.log(tenant.tenant_id)
    rows = await run_in_threadpool(log_reader.checkpoints, -1 if after is None else after, limit)
    return JSONResponse(
        {
            "data": [checkpoint_json(cp) for cp in rows],
            "next_after_size": rows[-1].size if len(rows) == limit else None,
        }
    )


@route(
    "/v1/log/checkpoints/{size}",
    Operation(
        "The checkpoint signed at exactly this tree size",
        description="404 if no checkpoint was signed at that size (checkpoints are signed at "
        "some sizes only; the message names the next signed size). Needs events:read.",
        params=(path_param("size", "The tree size", "integer"), _FORMAT),
        responses={200: _NOTE_OR_JSON, **problems(*_READ_PROBLEMS, 404)},
    ),
)
async def checkpoint_at(request: Request) -> Response:
    """The checkpoint signed at exactly tree size ``size`` (404 if none was signed there)."""
    tenant = await _reader(request)
    args = params(request)
    core = core_of(request)
    cp = await run_in_threadpool(core.tlog.checkpoint_at, tenant, args["size"])
    if _wants_json(request, args):
        return JSONResponse(checkpoint_json(cp))
    return Response(cp.note, media_type=_NOTE_TYPE)


@route(
    "/v1/log/checkpoints",
    Operation(
        "Sign a checkpoint of the caller's tenant's log now",
        description="Needs events:write or admin. 201 when a checkpoint was signed, 200 when "
        "the latest one already covers the log (it is returned).",
        responses={
            201: json_answer(_CHECKPOINT, "Signed now"),
            200: json_answer(_CHECKPOINT, "Already covered"),
            **problems(401, 403, 429, 503),
        },
    ),
)
async def sign_checkpoint(request: Request) -> Response:
    """Sign a checkpoint of the caller's log now (events:write or admin). 201 if one was
    made, 200 if the latest checkpoint already covers the log."""
    principal = await authenticate(request)
    key = principal.key
    if key.tenant_id == SYSTEM_TENANT_ID or principal.viewer is not None:
        principal.require_tenant_scope(EVENTS_WRITE)  # explains that operator keys (and
        # viewer tokens) cannot
    if not key.scopes & {EVENTS_WRITE, ADMIN}:
        raise Forbidden(
            f"key {key.key_id} has scopes [{', '.join(sorted(key.scopes))}]; signing a "
            "checkpoint needs events:write or admin"
        )
    core = core_of(request)
    cp, made = await run_in_threadpool(core.tlog.sign, _tenant(principal))
    return JSONResponse(checkpoint_json(cp), status_code=201 if made else 200)


@route(
    "/v1/log/proof/inclusion",
    Operation(
        "RFC 9162 inclusion proof of an event",
        description="Give id or seq. Verify with the root of a signed checkpoint of "
        "tree_size, never with the 'root' field alone.",
        params=(
            Param("id", "The event's id"),
            Param("seq", "Or the event's seq (leaf index + 1)", "integer"),
            _TREE_SIZE,
        ),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["seq", "leaf_index", "tree_size", "leaf_hash", "hashes"],
                    "properties": {
                        "id": {"type": "string", "description": "The event's id"},
                        "seq": {"type": "integer"},
                        "leaf_index": {"type": "integer", "description": "seq - 1"},
                        "tree_size": {"type": "integer"},
                        "leaf_hash": _HEX_HASH,
                        "hashes": _HASHES,
                        "root": _HEX_HASH,
                        "checkpoint": {
                            "type": ["string", "null"],
                            "description": "The signed note of tree_size, if one exists",
                        },
                    },
                },
                "The proof, leaf side first",
            ),
            **problems(*_READ_PROBLEMS, 404, 409),
        },
    ),
)
async def inclusion(request: Request) -> Response:
    """Inclusion proof of an event (``?id=`` or ``?seq=``) in the tree of ``tree_size``
    (default: the latest checkpoint's size)."""
    principal = await _principal(request)
    tenant = _tenant(principal)
    args = params(request)
    core = core_of(request)
    events = core.events(tenant.tenant_id, principal.viewer)  # a viewer: its scope only
    body = await run_in_threadpool(
        lambda: core.tlog.inclusion(
            tenant,
            event_id=args["id"],
            seq=args["seq"],
            tree_size=args["tree_size"],
            events=events,
        )
    )
    return JSONResponse(body)


@route(
    "/v1/log/proof/consistency",
    Operation(
        "RFC 9162 consistency proof between two tree sizes",
        params=(
            Param("first", "The older tree size", "integer", required=True),
            Param("second", "The newer tree size (default: the latest checkpoint's)", "integer"),
        ),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["first", "second", "hashes"],
                    "properties": {"first": _SIZE, "second": _SIZE, "hashes": _HASHES},
                },
                "The proof",
            ),
            **problems(*_READ_PROBLEMS, 404),
        },
    ),
)
async def consistency(request: Request) -> Response:
    """Consistency proof from tree size ``first`` to ``second`` (default: latest checkpoint)."""
    tenant = await _reader(request)
    args = params(request)
    core = core_of(request)
    body = await run_in_threadpool(core.tlog.consistency, tenant, args["first"], args["second"])
    return JSONResponse(body)


@route(
    "/v1/log/frontier",
    Operation(
        "Perfect-subtree roots of a tree size (the compact range [0, size))",
        description="Used to export a range of events that can be checked against a "
        "checkpoint without the events before it.",
        params=(_TREE_SIZE,),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["tree_size", "hashes"],
                    "properties": {"tree_size": _SIZE, "hashes": _HASHES},
                },
                "Largest subtree first",
            ),
            **problems(*_READ_PROBLEMS, 404),
        },
    ),
)
async def frontier(request: Request) -> Response:
    """The perfect-subtree roots of the tree of ``tree_size`` (for export bundles)."""
    tenant = await _reader(request)
    args = params(request)
    core = core_of(request)
    body = await run_in_threadpool(core.tlog.frontier, tenant, args["tree_size"])
    return JSONResponse(body)


@route(
    "/v1/log/key",
    Operation(
        "The checkpoint verifier key(s) (public)",
        description="Text: one C2SP verifier key per line, the keys that sign now (active "
        "first). JSON: key_name and every key with state (active, retiring, retired); when "
        "called with a tenant's API key (any scope), also origin: that tenant's log origin, "
        "<key name>/<tenant>.",
        public=True,
        params=(_FORMAT,),
        responses={
            200: {
                "description": "Verifier keys",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["keys"],
                            "properties": {"keys": {"type": "array"}},
                        }
                    },
                },
            },
            **problems(400, 401, 429, 503),
        },
    ),
)
async def public_key(request: Request) -> Response:
    """The checkpoint verifier key(s): public, no authentication. Text: one verifier key per
    line, signing keys only (active first). JSON: every key with its state and history; when
    the request carries an API key of a tenant, also that tenant's log ``origin``."""
    args = params(request)
    core = core_of(request)
    tenant = None
    if request.headers.get("authorization"):
        principal = await authenticate(request)
        if principal.key.tenant_id != SYSTEM_TENANT_ID:
            tenant = _tenant(principal)
    keys = await run_in_threadpool(core.tlog.public_keys, tenant)
    if _wants_json(request, args):
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

"""The OpenAPI 3.1 description of the API (/openapi.json) and a browsable page (/docs).

The page is rendered on the server from the same document, so it works offline and cannot drift
from it; a test checks that every route of the app is described here.
"""

from __future__ import annotations

import html
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from auditkeep import __version__
from auditkeep.api.http import JSONResponse
from auditkeep_client.schema import CATEGORIES, LIMITS

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON, bad parameter or cursor",
        401: "Missing, malformed, unknown, expired or revoked key",
        403: "The key lacks the scope",
        404: "Not found (also for another tenant's resources)",
        409: "Conflict",
        413: "Body or batch too large",
        415: "Not JSON, or an unsupported Content-Encoding",
        422: "The event breaks the schema",
        429: "Rate limited; see Retry-After",
        503: "Overloaded or store unavailable; see Retry-After",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
        for c in codes
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _party(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": what,
        "additionalProperties": False,
        "required": ["id"] if what.startswith("Who") else ["id", "type"],
        "properties": {
            "id": {"type": "string", "maxLength": LIMITS.max_actor_id_chars},
            "type": {
                "type": "string",
                "maxLength": LIMITS.max_type_chars,
                "pattern": "^[a-z0-9_.-]+$",
            },
            "name": {"type": "string", "maxLength": LIMITS.max_name_chars},
        },
    }


_EVENT_IN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "occurred_at", "actor"],
    "properties": {
        "id": {
            "type": "string",
            "maxLength": LIMITS.max_id_chars,
            "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$",
            "description": "Client-made idempotency key (UUID/ULID). Made by the server if absent.",
        },
        "action": {
            "type": "string",
            "maxLength": LIMITS.max_action_chars,
            "pattern": r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$",
            "examples": ["user.login"],
        },
        "occurred_at": {"type": "string", "format": "date-time"},
        "actor": _party("Who did it (default type 'user')"),
        "targets": {"type": "array", "maxItems": LIMITS.max_targets, "items": _party("What")},
        "outcome": {"enum": ["success", "failure"], "default": "success"},
        "reason": {"type": "string", "maxLength": LIMITS.max_reason_chars},
        "context": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {"type": "string"}
                for name in ("ip", "user_agent", "request_id", "session_id", "location")
            },
        },
        "metadata": {
            "type": "object",
            "description": f"Free-form JSON, at most {LIMITS.max_metadata_bytes} bytes encoded, "
            f"{LIMITS.max_metadata_depth} levels deep.",
        },
        "category": {"enum": sorted(CATEGORIES), "default": "audit"},
    },
}

_EVENT_OUT: dict[str, Any] = {
    "allOf": [{"$ref": "#/components/schemas/EventIn"}],
    "description": "The stored normal form, plus what the server adds.",
    "properties": {
        "tenant": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "seq": {"type": "integer", "description": "Gap-free position in the tenant's log, from 1"},
        "hash": {"type": "string", "description": "Hex SHA-256(0x00 || leaf data)"},
    },
}

_RESULT = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "id": {"type": ["string", "null"]},
        "status": {"enum": ["accepted", "duplicate", "rejected"]},
        "seq": {"type": "integer"},
        "error": _PROBLEM,
    },
}

_QUERY_PARAMS = [
    ("actor_id", "Exact actor id"),
    ("action", "Exact action, or a prefix such as user.*"),
    ("target_id", "Events with a target of this id"),
    ("target_type", "Events with a target of this type"),
    ("outcome", "success or failure"),
    ("category", "audit, access, error, security, performance or system"),
    ("since", "occurred_at >= this RFC 3339 time"),
    ("until", "occurred_at < this RFC 3339 time"),
    ("limit", "Page size, 1-1000 (default 50)"),
    ("cursor", "next_cursor of the previous page"),
    ("order", "desc (newest first, default) or asc"),
]


def _query(name: str, description: str, kind: str = "integer", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": kind, **({"minimum": 0} if kind == "integer" else {}), **extra},
    }


_HEX_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HASHES = {"type": "array", "items": _HEX_HASH}

_CHECKPOINT: dict[str, Any] = {
    "type": "object",
    "description": "A signed checkpoint. 'note' is the C2SP signed note a verifier checks; "
    "the other fields are parsed from it for convenience (docs/verification.md).",
    "properties": {
        "origin": {"type": "string", "examples": ["auditkeep.local/acme"]},
        "size": {"type": "integer", "description": "Tree size: the log's events 1..size"},
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
        "application/json": {"schema": {"$ref": "#/components/schemas/Checkpoint"}},
    },
}

_FORMAT_PARAM = _query("format", "note (default) or json", kind="string", enum=["note", "json"])

_LOG_PATHS: dict[str, Any] = {
    "/v1/log/checkpoint": {
        "get": {
            "summary": "The latest signed checkpoint of the caller's tenant's log",
            "description": "C2SP tlog-checkpoint in a C2SP signed note, signed with Ed25519 "
            "(GET /v1/log/key). Needs events:read.",
            "parameters": [_FORMAT_PARAM],
            "responses": {"200": _NOTE_OR_JSON, **_problem_responses(400, 401, 403, 404)},
        }
    },
    "/v1/log/checkpoints": {
        "get": {
            "summary": "Checkpoint history, smallest tree size first",
            "description": "Page with after_size (exclusive): pass the answer's "
            "next_after_size until it is null. Needs events:read.",
            "parameters": [
                _query("after_size", "Only checkpoints with a larger tree size (exclusive)"),
                _query("limit", "1-1000 (default 100)", maximum=1000),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "data": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Checkpoint"},
                            },
                            "next_after_size": {"type": ["integer", "null"]},
                        },
                    },
                    "Checkpoints",
                ),
                **_problem_responses(400, 401, 403),
            },
        },
        "post": {
            "summary": "Sign a checkpoint of the caller's tenant's log now",
            "description": "Needs events:write or admin. 201 when a checkpoint was signed, "
            "200 when the latest one already covers the log (it is returned).",
            "responses": {
                "201": _json({"$ref": "#/components/schemas/Checkpoint"}, "Signed now"),
                "200": _json({"$ref": "#/components/schemas/Checkpoint"}, "Already covered"),
                **_problem_responses(401, 403, 503),
            },
        },
    },
    "/v1/log/checkpoints/{size}": {
        "get": {
            "summary": "The checkpoint signed at exactly this tree size",
            "description": "404 if no checkpoint was signed at that size (checkpoints are "
            "signed at some sizes only; the message names the next signed size). "
            "Needs events:read.",
            "parameters": [
                {
                    "name": "size",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
                _FORMAT_PARAM,
            ],
            "responses": {"200": _NOTE_OR_JSON, **_problem_responses(400, 401, 403, 404)},
        }
    },
    "/v1/log/proof/inclusion": {
        "get": {
            "summary": "RFC 9162 inclusion proof of an event",
            "description": "Give id or seq. Verify with the root of a signed checkpoint of "
            "tree_size, never with the 'root' field alone.",
            "parameters": [
                _query("id", "The event's id", kind="string"),
                _query("seq", "Or the event's seq (leaf index + 1)"),
                _query("tree_size", "Tree size (default: the latest checkpoint's)"),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
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
                **_problem_responses(400, 401, 403, 404, 409),
            },
        }
    },
    "/v1/log/proof/consistency": {
        "get": {
            "summary": "RFC 9162 consistency proof between two tree sizes",
            "parameters": [
                _query("first", "The older tree size (required)"),
                _query("second", "The newer tree size (default: the latest checkpoint's)"),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "first": {"type": "integer"},
                            "second": {"type": "integer"},
                            "hashes": _HASHES,
                        },
                    },
                    "The proof",
                ),
                **_problem_responses(400, 401, 403, 404),
            },
        }
    },
    "/v1/log/frontier": {
        "get": {
            "summary": "Perfect-subtree roots of a tree size (the compact range [0, size))",
            "description": "Used to export a range of events that can be checked against a "
            "checkpoint without the events before it.",
            "parameters": [_query("tree_size", "Tree size (default: the latest checkpoint's)")],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"tree_size": {"type": "integer"}, "hashes": _HASHES},
                    },
                    "Largest subtree first",
                ),
                **_problem_responses(400, 401, 403, 404),
            },
        }
    },
    "/v1/log/key": {
        "get": {
            "summary": "The checkpoint verifier key(s) (public)",
            "description": "Text: one C2SP verifier key per line, the keys that sign now "
            "(active first). JSON: key_name and every key with state (active, retiring, "
            "retired); when called with a tenant's API key (any scope), also origin: that "
            "tenant's log origin, <key name>/<tenant>.",
            "security": [],
            "parameters": [_FORMAT_PARAM],
            "responses": {
                "200": {
                    "description": "Verifier keys",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                **_problem_responses(400, 401),
            },
        }
    },
}


def _key_params(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


_DEST_PARAMS = _key_params("tenant", "dest_id")
_DESTINATION = {
    "type": "object",
    "description": "A destination and its delivery status. Secrets are never shown, except "
    "'secret' in the answer that made one (webhook signing secrets).",
    "properties": {
        "id": {"type": "string"},
        "tenant": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"enum": ["webhook", "splunk_hec", "syslog", "s3"]},
        "config": {"type": "object"},
        "state": {"enum": ["active", "paused"]},
        "paused_reason": {"type": ["string", "null"]},
        "cursor": {"type": "integer", "description": "Highest seq delivered"},
        "delivered": {"type": "integer"},
        "log_size": {"type": "integer"},
        "lag_events": {"type": "integer"},
        "lag_seconds": {"type": "number"},
        "attempts": {"type": "integer", "description": "Failed attempts of the batch in flight"},
        "last_error": {"type": ["string", "null"]},
        "failing_since": {"type": ["string", "null"]},
        "last_attempt_at": {"type": ["string", "null"]},
        "last_success_at": {"type": ["string", "null"]},
        "next_attempt_at": {"type": ["string", "null"]},
        "secrets": {"type": "integer", "description": "Secrets held (2+ during a rotation)"},
        "secret": {"type": "string", "description": "Only when the server just made it"},
    },
}
_DEST_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["name", "kind", "config"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"enum": ["webhook", "splunk_hec", "syslog", "s3"]},
                    "config": {"type": "object", "description": "See docs/delivery.md"},
                    "secret": {"type": "string"},
                    "start": {"enum": ["beginning", "now"]},
                },
            }
        }
    }
}


def _dest_op(summary: str, *codes: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": _DEST_PARAMS,
        "responses": {"200": _json(_DESTINATION, "The destination"), **_problem_responses(*codes)},
    }
    if body is not None:
        op["requestBody"] = body
    return op


_DELIVERY_PATHS: dict[str, Any] = {
    "/v1/export": {
        "get": {
            "summary": "Stream matching events as NDJSON, CSV or OCSF (constant memory)",
            "parameters": [
                _query(
                    "format",
                    "ndjson (default), csv or ocsf",
                    kind="string",
                    enum=["ndjson", "csv", "ocsf"],
                ),
                *[
                    _query(n, d, kind="string")
                    for n, d in _QUERY_PARAMS
                    if n not in ("limit", "cursor", "order")
                ],
                _query("order", "asc (oldest first, default) or desc", kind="string"),
            ],
            "responses": {
                "200": {
                    "description": "The events, streamed",
                    "content": {
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_problem_responses(400, 401, 403),
            },
        }
    },
    "/v1/tenants/{tenant}/destinations": {
        "post": {
            "summary": "Create a delivery destination (webhook, splunk_hec, syslog, s3)",
            "parameters": _key_params("tenant"),
            "requestBody": _DEST_BODY,
            "responses": {
                "201": _json(_DESTINATION, "Created"),
                **_problem_responses(400, 401, 403, 404, 409, 422),
            },
        },
        "get": {
            "summary": "A tenant's destinations and their delivery status",
            "parameters": _key_params("tenant"),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"data": {"type": "array", "items": _DESTINATION}},
                    },
                    "Destinations",
                ),
                **_problem_responses(401, 403, 404),
            },
        },
    },
    "/v1/tenants/{tenant}/destinations/{dest_id}": {
        "get": _dest_op("One destination", 401, 403, 404),
        "patch": _dest_op(
            "Change name, config (replaced whole) or secret",
            400,
            401,
            403,
            404,
            409,
            422,
            body={"content": {"application/json": {"schema": {"type": "object"}}}},
        ),
        "delete": {
            "summary": "Delete a destination (its events stay in the log)",
            "parameters": _DEST_PARAMS,
            "responses": {"204": {"description": "Deleted"}, **_problem_responses(401, 403, 404)},
        },
    },
    "/v1/tenants/{tenant}/destinations/{dest_id}/pause": {
        "post": _dest_op('Pause delivery ({"reason"} optional)', 400, 401, 403, 404)
    },
    "/v1/tenants/{tenant}/destinations/{dest_id}/resume": {
        "post": _dest_op("Resume delivery now, from the cursor", 401, 403, 404)
    },
    "/v1/tenants/{tenant}/destinations/{dest_id}/rotate-secret": {
        "post": _dest_op(
            "New secret; webhooks co-sign with the previous ones until keep_previous=false",
            400,
            401,
            403,
            404,
            422,
        )
    },
}


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "auditkeep",
        "version": __version__,
        "description": "Tamper-evident audit and event log. Authenticate with "
        "'Authorization: Bearer <key>'. Errors are RFC 9457 problem+json.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "EventIn": _EVENT_IN,
            "Event": _EVENT_OUT,
            "Checkpoint": _CHECKPOINT,
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": "Schema problems, at most 50 per event.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                    "errors_omitted": {
                        "type": "integer",
                        "description": "Problems found beyond those listed in errors.",
                    },
                    "duplicate": {
                        "type": "string",
                        "description": "A member name the body's JSON gave twice in one object.",
                    },
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/events": {
            "post": {
                "summary": "Ingest one event, or a batch of up to 1000",
                "description": "A 2xx answer means every accepted event is durably stored. "
                "Re-sending an event with the same id and content is a no-op ('duplicate').",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/EventIn"},
                                    {
                                        "type": "object",
                                        "required": ["events"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "events": {
                                                "type": "array",
                                                "maxItems": 1000,
                                                "items": {"$ref": "#/components/schemas/EventIn"},
                                            }
                                        },
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_RESULT, "One event accepted"),
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "results": {"type": "array", "items": _RESULT},
                                "accepted": {"type": "integer"},
                                "duplicates": {"type": "integer"},
                                "rejected": {"type": "integer"},
                            },
                        },
                        "Batch results, one per event in order (or a single duplicate)",
                    ),
                    **_problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
                },
            },
            "get": {
                "summary": "Query the caller's tenant's events",
                "parameters": [
                    {"name": n, "in": "query", "description": d, "schema": {"type": "string"}}
                    for n, d in _QUERY_PARAMS
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                },
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "A page of events",
                    ),
                    **_problem_responses(400, 401, 403, 429),
                },
            },
        },
        "/v1/events/{event_id}": {
            "get": {
                "summary": "One event by id",
                "parameters": _key_params("event_id"),
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Event"}, "The event"),
                    **_problem_responses(401, 403, 404),
                },
            }
        },
        "/v1/feed": {
            "get": {
                "summary": "Events after a seq, in log order (for tail and SIEM polling)",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "description": "Return events with seq > after (default 0)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "0-1000 (default 100); 0 returns only the log size",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                    },
                    _query(
                        "wait",
                        "Long-poll: with no event after 'after', wait up to this many seconds "
                        "(at most feed_max_wait, default 30) for one",
                        kind="number",
                    ),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                },
                                "size": {"type": "integer", "description": "Log size (head seq)"},
                                "next_after": {
                                    "type": "integer",
                                    "description": "The 'after' of the next request",
                                },
                            },
                        },
                        "Events in seq order",
                    ),
                    **_problem_responses(400, 401, 403),
                },
            }
        },
        **_LOG_PATHS,
        **_DELIVERY_PATHS,
        "/v1/tenants": {
            "post": {
                "summary": "Create a tenant (operator key)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["slug"],
                                "properties": {
                                    "slug": {"type": "string"},
                                    "name": {"type": "string"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": {"description": "Created"},
                    **_problem_responses(400, 401, 403, 409),
                },
            },
            "get": {
                "summary": "List tenants (operator key)",
                "responses": {"200": {"description": "Tenants"}, **_problem_responses(401, 403)},
            },
        },
        "/v1/tenants/{tenant}/keys": {
            "post": {
                "summary": "Create an API key (operator, or the tenant's admin scope)",
                "parameters": _key_params("tenant"),
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["scopes"],
                                "properties": {
                                    "scopes": {
                                        "type": "array",
                                        "items": {"enum": ["events:write", "events:read", "admin"]},
                                    },
                                    "name": {"type": "string"},
                                    "expires_at": {"type": "string", "format": "date-time"},
                                    "rate_limit_rps": {
                                        "type": "number",
                                        "minimum": 0,
                                        "description": "Requests/s (0: unlimited). A tenant "
                                        "admin may not exceed the server's rate_limit_rps "
                                        "(403 rate-limit-ceiling).",
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": {"description": "The key, shown only in this response (field 'key')"},
                    **_problem_responses(400, 401, 403, 404),
                },
            },
            "get": {
                "summary": "List a tenant's keys",
                "parameters": _key_params("tenant"),
                "responses": {"200": {"description": "Keys"}, **_problem_responses(401, 404)},
            },
        },
        "/v1/tenants/{tenant}/keys/{key_id}": {
            "delete": {
                "summary": "Revoke a key",
                "parameters": _key_params("tenant", "key_id"),
                "responses": {"200": {"description": "Revoked"}, **_problem_responses(401, 404)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "Up"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the store answers",
                "security": [],
                "responses": {"200": {"description": "Ready"}, **_problem_responses(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "description": "Open unless the server sets metrics_token; then it needs "
                "'Authorization: Bearer <metrics_token>' (not an API key).",
                "security": [],
                "responses": {"200": {"description": "Metrics"}, **_problem_responses(401)},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI"}},
            }
        },
        "/docs": {
            "get": {
                "summary": "Browsable API reference",
                "security": [],
                "responses": {"200": {"description": "HTML"}},
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "The embeddable timeline's files: timeline.js, tlog.js, timeline.css",
                "description": "Public, ETag and Cache-Control; see docs/embedding.md.",
                "security": [],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "JavaScript or CSS"},
                    "304": {"description": "Not modified (If-None-Match)"},
                    **_problem_responses(404),
                },
            }
        },
    },
}


async def openapi(request: Request) -> Response:
    return JSONResponse(SPEC)


def render_docs_html() -> str:
    """A self-contained HTML reference rendered from SPEC."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>auditkeep API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em;color:#1d2430}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"
        ".op{border:1px solid #dde3ea;border-radius:8px;margin:1em 0;padding:.6em 1em}"
        ".m{display:inline-block;min-width:4.5em;font-weight:700;color:#fff;border-radius:4px;"
        "text-align:center;margin-right:.6em}.get{background:#2f80ed}.post{background:#27ae60}"
        ".delete{background:#eb5757}"
        "code,pre{background:#f4f6f8;border-radius:4px;padding:.1em .3em}"
        "pre{padding:.6em;overflow:auto;font-size:13px}"
        "td{padding:.1em .8em .1em 0;vertical-align:top}"
        "</style></head><body>",
        f"<h1>auditkeep API <small>{html.escape(SPEC['info']['version'])}</small></h1>",
        f"<p>{html.escape(SPEC['info']['description'])} Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<div class='op'><span class='m {method}'>{method.upper()}</span>"
                f"<code>{html.escape(path)}</code> — {html.escape(op.get('summary', ''))}"
            )
            if op.get("description"):
                parts.append(f"<p>{html.escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table>")
                for p in params:
                    parts.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                        f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                parts.append("</table>")
            codes = ", ".join(op.get("responses", {}))
            parts.append(f"<p>Responses: {html.escape(codes)}</p></div>")
    parts.append("<h2>Event schema</h2><pre>")
    parts.append(html.escape(orjson.dumps(_EVENT_IN, option=orjson.OPT_INDENT_2).decode()))
    parts.append("</pre></body></html>")
    return "".join(parts)


async def docs_page(request: Request) -> Response:
    return HTMLResponse(render_docs_html())


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]

"""/v1/events: ingest (one event or a batch) and tenant-scoped queries."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from auditkeep.api.http import (
    JSONResponse,
    authenticate,
    core_of,
    off_loop,
    params,
    read_body,
    route,
)
from auditkeep.api.openapi import Operation, json_answer, problems, ref
from auditkeep.auth import EVENTS_READ, EVENTS_WRITE
from auditkeep.bodies import decode_json
from auditkeep.core import EXPORT_PARAMS, Core
from auditkeep.delivery.formats import FORMATS
from auditkeep.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from auditkeep.model import PreparedEvent
from auditkeep.query import EVENT_QUERY, Param, path_param
from auditkeep.store.scope import WHOLE_TENANT

_RESULT_FIELDS: dict[str, Any] = {
    "id": {"type": ["string", "null"]},
    "status": {"enum": ["accepted", "duplicate", "rejected"]},
    "seq": {"type": "integer", "minimum": 1},
    "error": ref("Problem"),
}
_RESULT = {
    "type": "object",
    "description": "One event's result, by its index in the batch",
    "required": ["index", "id", "status"],
    "properties": {"index": {"type": "integer", "minimum": 0}, **_RESULT_FIELDS},
}
_ONE_RESULT = {
    "type": "object",
    "description": "The event's result",
    "required": ["id", "status", "seq"],
    "properties": _RESULT_FIELDS,
}

INGEST = Operation(
    "Ingest one event, or a batch of up to max_batch_events (default 1000)",
    description="A 2xx answer means every accepted event is durably stored. Re-sending an "
    "event with the same id and content is a no-op ('duplicate').",
    body={
        "oneOf": [
            ref("EventIn"),
            {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {"events": {"type": "array", "minItems": 1, "items": ref("EventIn")}},
            },
        ]
    },
    responses={
        201: json_answer(_ONE_RESULT, "One event accepted"),
        200: json_answer(
            {
                "oneOf": [
                    _ONE_RESULT,
                    {
                        "type": "object",
                        "required": ["results", "accepted", "duplicates", "rejected"],
                        "properties": {
                            "results": {"type": "array", "items": _RESULT},
                            "accepted": {"type": "integer"},
                            "duplicates": {"type": "integer"},
                            "rejected": {"type": "integer"},
                        },
                    },
                ]
            },
            "Batch results, one per event in order (or a single duplicate)",
        ),
        **problems(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
)


@route("/v1/events", INGEST)
async def post_events(request: Request) -> Response:
    """Ingest one event (201) or ``{"events": [...]}`` (200 with one result per event)."""
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_WRITE)
    core = core_of(request)
    raw = await read_body(request, core.config.max_body_bytes)
    # decoding and validation are CPU work: a large body does them off the event loop
    work = functools.partial(_prepare_body, core, raw, principal.tenant_slug)
    batch, results, prepared = await off_loop(request, len(raw), work)
    if batch:
        appended = (
            await core.writer.append(principal.tenant_id, [p for _, p in prepared])
            if prepared
            else []
        )
        final = core.settle(results, prepared, appended)
        counts = {"accepted": 0, "duplicates": 0, "rejected": 0}
        for r in final:
            counts["duplicates" if r["status"] == "duplicate" else r["status"]] += 1
        return JSONResponse({"results": final, **counts})
    if results[0] is not None:
        error = results[0]["error"]
        extra = {k: error[k] for k in ("errors_omitted",) if k in error}
        raise ValidationFailed(error["detail"], errors=error.get("errors"), **extra)
    appended = await core.writer.append(principal.tenant_id, [prepared[0][1]])
    (result,) = core.settle(results, prepared, appended)
    if result["status"] == "rejected":
        raise Conflict(result["error"]["detail"], id=result["id"])
    status = 201 if result["status"] == "accepted" else 200
    del result["index"]
    return JSONResponse(result, status_code=status)


def _prepare_body(
    core: Core, raw: bytes, tenant_slug: str
) -> tuple[bool, list[dict[str, Any] | None], list[tuple[int, PreparedEvent]]]:
    """Decode an ingest body and validate its events: ``(is_batch, results, prepared)``."""
    body = decode_json(raw)
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        if set(body) != {"events"}:
            extra = ", ".join(sorted(set(body) - {"events"}))
            raise BadRequest(f"a batch body holds only 'events'; unknown field(s): {extra}")
        events = body["events"]
        limit = core.config.max_batch_events
        if len(events) > limit:
            raise PayloadTooLarge(
                f"the batch has {len(events)} events; the limit is {limit} per request"
            )
        if not events:
            raise BadRequest("the batch is empty; send at least one event")
        return True, *core.prepare(events, tenant_slug)
    if not isinstance(body, dict):
        raise BadRequest(
            'the body must be an event object or {"events": [event, ...]}, '
            f"not a JSON {type(body).__name__}"
        )
    return False, *core.prepare([body], tenant_slug)


_EVENTS = {"type": "array", "items": ref("Event")}


@route(
    "/v1/events",
    Operation(
        "Query the caller's tenant's events",
        params=EVENT_QUERY,
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data", "next_cursor"],
                    "properties": {"data": _EVENTS, "next_cursor": {"type": ["string", "null"]}},
                },
                "A page of events",
            ),
            **problems(400, 401, 403, 429, 503),
        },
    ),
)
async def list_events(request: Request) -> Response:
    """Filtered, cursor-paginated events of the caller's tenant."""
    principal = await authenticate(request)
    principal.require_reader()
    core = core_of(request)
    page = await _in_thread(
        core.query_events, principal.tenant_id, request.query_params, principal.viewer
    )
    return JSONResponse(page)


@route(
    "/v1/feed",
    Operation(
        "Events after a seq, in log order (for tail and SIEM polling)",
        description="Needs a tenant key with events:read, or a viewer token of the whole "
        'tenant ("scope": "tenant") that hides no field (the console\'s live tail).',
        params=(
            Param("after", "Return events with seq > after (default 0)", "integer", 0),
            Param(
                "limit",
                "0-1000 (default 100); 0 returns only the log size",
                "integer",
                100,
                maximum=1000,
            ),
            Param(
                "wait",
                "Long-poll: with no event after 'after', wait up to this many seconds "
                "(at most feed_max_wait, default 30) for one",
                "number",
                0.0,
                minimum=0,
            ),
        ),
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["data", "size", "next_after"],
                    "properties": {
                        "data": _EVENTS,
                        "size": {"type": "integer", "description": "Log size (head seq)"},
                        "next_after": {
                            "type": "integer",
                            "description": "The 'after' of the next request",
                        },
                    },
                },
                "Events in seq order",
            ),
            **problems(400, 401, 403, 429, 503),
        },
    ),
)
async def feed(request: Request) -> Response:
    """Events after a seq, in log order: ``?after=N&limit=M[&wait=S]`` ->
    ``{"data", "size", "next_after"}``. With ``wait``, an empty answer waits up to S seconds
    for new events (long-polling)."""
    principal = await authenticate(request)
    if principal.viewer != WHOLE_TENANT:  # such a token reads every event anyway
        principal.require_tenant_scope(EVENTS_READ)
    args = params(request)
    core = core_of(request)
    after, limit, wait = args["after"], args["limit"], args["wait"]
    if wait > core.config.feed_max_wait:
        raise BadRequest(f"wait must be between 0 and {core.config.feed_max_wait:g} seconds")
    tid = principal.tenant_id
    deadline = time.monotonic() + wait
    while True:
        with core.log_watch.watching(tid) as grown:  # before the read: no wake-up is missed
            page = await _in_thread(core.feed, tid, after, limit)
            left = deadline - time.monotonic()
            if page["data"] or limit == 0 or left <= 0:
                return JSONResponse(page)
            core.metrics.feed_waiting.inc()
            try:
                # re-read at least every second: another process may have appended
                await asyncio.wait_for(grown, min(left, 1.0))
            except TimeoutError:
                pass
            finally:
                core.metrics.feed_waiting.dec()


@route(
    "/v1/export",
    Operation(
        "Stream matching events as NDJSON, CSV or OCSF (constant memory)",
        params=EXPORT_PARAMS,
        responses={
            200: {
                "description": "The events, streamed",
                "content": {
                    fmt.media_type.split(";")[0]: {"schema": {"type": "string"}}
                    for fmt in FORMATS.values()
                },
            },
            **problems(400, 401, 403, 429, 503),
        },
    ),
)
async def export(request: Request) -> Response:
    """Stream the caller's events that match the filters of GET /v1/events, as ``format`` =
    ndjson (default), csv or ocsf; oldest first unless order=desc. Constant memory."""
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_READ)
    core = core_of(request)
    fmt, chunks = await _in_thread(core.export, principal.tenant_id, request.query_params)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    filename = f"auditkeep-{principal.tenant_slug}-{stamp}.{fmt.extension}"
    return StreamingResponse(
        chunks,
        media_type=fmt.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@route(
    "/v1/events/{event_id}",
    Operation(
        "One event by id",
        params=(path_param("event_id", "The event's id"),),
        responses={
            200: json_answer(ref("Event"), "The event"),
            **problems(401, 403, 404, 429, 503),
        },
    ),
)
async def get_event(request: Request) -> Response:
    """One event of the caller's tenant, by its id."""
    principal = await authenticate(request)
    principal.require_reader()
    event_id = request.path_params["event_id"]
    reader = core_of(request).events(principal.tenant_id, principal.viewer)
    found = await _in_thread(reader.get, event_id)
    if found is None:
        raise NotFound(f"no event with id {event_id[:128]!r} in tenant {principal.tenant_slug!r}")
    return JSONResponse(found.to_json())


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


routes = [
    Route("/v1/events", post_events, methods=["POST"]),
    Route("/v1/events", list_events, methods=["GET"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
    Route("/v1/feed", feed, methods=["GET"]),
    Route("/v1/export", export, methods=["GET"]),
]

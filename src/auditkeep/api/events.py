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

from auditkeep.api.http import JSONResponse, authenticate, core_of, off_loop, read_body, route
from auditkeep.auth import EVENTS_READ, EVENTS_WRITE
from auditkeep.bodies import decode_json
from auditkeep.core import Core
from auditkeep.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from auditkeep.model import PreparedEvent
from auditkeep.query import int_param


@route("/v1/events")
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


@route("/v1/events")
async def list_events(request: Request) -> Response:
    """Filtered, cursor-paginated events of the caller's tenant."""
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_READ)
    core = core_of(request)
    page = await _in_thread(core.query_events, principal.tenant_id, request.query_params)
    return JSONResponse(page)


@route("/v1/feed")
async def feed(request: Request) -> Response:
    """Events after a seq, in log order: ``?after=N&limit=M[&wait=S]`` ->
    ``{"data", "size", "next_after"}``. With ``wait``, an empty answer waits up to S seconds
    for new events (long-polling)."""
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_READ)
    params = request.query_params
    unknown = set(params) - {"after", "limit", "wait"}
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(sorted(unknown))}; use after, limit, wait"
        )
    core = core_of(request)
    after = int_param(params, "after", 0)
    limit = int_param(params, "limit", 100, maximum=1000)
    try:
        wait = float(params.get("wait", "0"))
    except ValueError:
        raise BadRequest("wait must be a number of seconds") from None
    if not 0 <= wait <= core.config.feed_max_wait:
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


@route("/v1/export")
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


@route("/v1/events/{event_id}")
async def get_event(request: Request) -> Response:
    """One event of the caller's tenant, by its id."""
    principal = await authenticate(request)
    principal.require_tenant_scope(EVENTS_READ)
    event_id = request.path_params["event_id"]
    reader = core_of(request).store.events(principal.tenant_id)
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

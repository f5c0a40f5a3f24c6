"""HTTP plumbing shared by every router: bodies, JSON, problems, auth, metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from auditkeep.api.openapi import Operation
from auditkeep.auth import Principal
from auditkeep.bodies import decode_json
from auditkeep.core import Core
from auditkeep.errors import (
    BadRequest,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from auditkeep.query import parse_params

log = logging.getLogger("auditkeep.api")

Handler = Callable[[Request], Awaitable[Response]]

CLIENT_CLOSED_REQUEST = 499
"""Status counted (never sent) for a request whose client disconnected before it was answered."""


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_response(exc: ProblemError, request: Request) -> Response:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.499)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="auditkeep"'
    return Response(
        orjson.dumps(exc.to_problem(instance=request.url.path)),
        status_code=exc.status,
        media_type="application/problem+json",
        headers=headers,
    )


def core_of(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def authenticate(request: Request) -> Principal:
    """Verify the bearer key and apply its rate limit. A key in the cache costs no store
    access; otherwise the lookup runs in the thread pool, never on the event loop."""
    core = core_of(request)
    header = request.headers.get("authorization")
    try:
        principal = core.auth.from_cache(header)
        if principal is None:
            principal = await run_in_threadpool(core.auth.authenticate, header)
    except Unauthorized:
        core.metrics.auth_failures.inc()
        raise
    core.rate_limiter.check(principal.key)
    return principal


INLINE_BYTES = 64 * 1024
"""Bodies up to this size are decoded (and their events validated) on the event loop, which
takes microseconds; larger ones go to the thread pool, HEAVY_WORKERS at a time, so that a
hostile 5 MiB body neither stalls every other request nor multiplies its memory."""
HEAVY_WORKERS = 2

T = TypeVar("T")


async def off_loop(request: Request, size: int, fn: Callable[[], T]) -> T:
    """``fn()`` for a body of ``size`` bytes: at once when small, else in the thread pool."""
    if size <= INLINE_BYTES:
        return fn()
    state = request.app.state
    limiter = getattr(state, "heavy_limiter", None)
    if limiter is None:
        limiter = state.heavy_limiter = anyio.CapacityLimiter(HEAVY_WORKERS)
    return await anyio.to_thread.run_sync(fn, limiter=limiter)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body with media type, size and encoding checks (gzip decompressed)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (got {ctype[:80]!r})"
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is {max_bytes}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding not in ("identity", ""):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip")
    if not body:
        raise BadRequest("the request body is empty; send a JSON object")
    return body


async def read_json(request: Request, max_bytes: int) -> Any:
    """Read and decode a JSON body (``read_body``, then ``bodies.decode_json``: I-JSON)."""
    body = await read_body(request, max_bytes)
    return await off_loop(request, len(body), functools.partial(decode_json, body))


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the gzip body is corrupt: {exc}") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body is larger than {max_bytes} bytes")
    if not d.eof:
        raise BadRequest("the gzip body is truncated")
    return out


def route(name: str, operation: Operation) -> Callable[[Handler], Handler]:
    """Wrap a handler: problem rendering, metrics by route template, no secret in logs. The
    handler's ``operation`` (its parameters, body and answers) is kept on it: ``params``
    parses with it, and /openapi.json is built from it (``openapi.build_spec``)."""

    def wrap(fn: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
            except ProblemError as exc:
                response = problem_response(exc, request)
            except ClientDisconnect:
                # the client went away mid-request (or sent its body too slowly and was cut
                # off): its mistake, not ours; no traceback, and its own status in the metrics
                if request.scope.get("auditkeep.timeout") == "body":
                    log.info("request body too slow on %s %s: timed out", request.method, name)
                    response = Response(status_code=408)
                else:
                    log.info("client disconnected during %s %s", request.method, name)
                    response = Response(status_code=CLIENT_CLOSED_REQUEST)
            except StoreUnavailable as exc:
                log.error("store unavailable on %s: %s", name, exc)
                response = problem_response(
                    ServiceUnavailable(f"the store is unavailable: {exc}", retry_after=2.0),
                    request,
                )
            except asyncio.CancelledError:
                # uvicorn cancels what still runs when its graceful shutdown (SIGTERM) times
                # out, and would answer a plain-text 500: say what happened, as a problem
                log.error("%s %s cancelled (server shutting down)", request.method, name)
                response = problem_response(
                    ServiceUnavailable(
                        "the server is shutting down and this request did not finish in time "
                        "(a commit still waiting for the database?); its outcome is unknown: "
                        "retry it, with the same event ids, on another node or after a restart",
                        retry_after=1.0,
                    ),
                    request,
                )
            except Exception:
                log.exception("unhandled error on %s %s", request.method, name)
                response = problem_response(
                    ProblemError("an unexpected error occurred; it has been logged"), request
                )
            metrics = core_of(request).metrics
            metrics.http_latency.labels(name, request.method).observe(time.perf_counter() - started)
            metrics.http_requests.labels(name, request.method, str(response.status_code)).inc()
            return response

        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        endpoint.operation = operation  # type: ignore[attr-defined]
        return endpoint

    return wrap


def params(request: Request) -> dict[str, Any]:
    """The request's query and path parameters, parsed and checked by the ``Param``
    declarations of its route's ``Operation``: a 400 naming what is wrong (or unknown)."""
    operation: Operation = request.scope["endpoint"].operation
    declared = operation.params
    values = parse_params(request.query_params, declared)
    for p in declared:
        if p.location == "path":
            values[p.name] = p.parse(request.path_params)
    return values


__all__ = [
    "JSONResponse",
    "authenticate",
    "core_of",
    "off_loop",
    "params",
    "read_body",
    "read_json",
    "route",
]

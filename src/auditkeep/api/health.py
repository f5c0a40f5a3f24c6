"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, core_of, route
from auditkeep.api.openapi import Operation, json_answer, problems, text_answer
from auditkeep.errors import ServiceUnavailable, StoreUnavailable, Unauthorized


@route(
    "/healthz",
    Operation(
        "Liveness",
        public=True,
        responses={
            200: json_answer(
                {"type": "object", "required": ["status"], "properties": {"status": {}}}, "Up"
            )
        },
    ),
)
async def healthz(request: Request) -> Response:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


@route(
    "/readyz",
    Operation(
        "Readiness: the store answers and commits finish",
        public=True,
        responses={
            200: json_answer(
                {
                    "type": "object",
                    "required": ["status", "writer_queue_events"],
                    "properties": {
                        "status": {"const": "ready"},
                        "writer_queue_events": {"type": "integer"},
                    },
                },
                "Ready",
            ),
            **problems(503),
        },
    ),
)
async def readyz(request: Request) -> Response:
    """The store answers and the writer's commits finish: safe to send traffic."""
    core = core_of(request)
    try:
        await run_in_threadpool(core.store.check_ready)
    except StoreUnavailable as exc:
        raise ServiceUnavailable(str(exc), retry_after=2.0) from None
    stalled = core.writer.stalled_seconds
    limit = core.config.ready_commit_timeout
    if limit > 0 and stalled > limit:
        raise ServiceUnavailable(
            f"no commit has succeeded for {stalled:.0f} s while writes were waiting or failing "
            f"(limit ready_commit_timeout = {limit:g} s): the database accepts connections but "
            "does not finish writes; with synchronous replication, check that a synchronous "
            "standby is connected",
            retry_after=2.0,
        )
    return JSONResponse({"status": "ready", "writer_queue_events": core.writer.pending})


@route(
    "/metrics",
    Operation(
        "Prometheus metrics",
        description="Open unless the server sets metrics_token; then it needs "
        "'Authorization: Bearer <metrics_token>' (not an API key).",
        public=True,
        responses={200: text_answer("Metrics"), **problems(401, 503)},
    ),
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition format; with metrics_token set, only for that bearer token."""
    core = core_of(request)
    token = core.config.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), token.encode()
        ):
            core.metrics.auth_failures.inc()
            raise Unauthorized(
                "/metrics needs the server's metrics token: send 'Authorization: Bearer "
                "<metrics_token>' (configure Prometheus with authorization.credentials_file)"
            )
    # (in the thread pool: pruning and the delivery collector read the store)
    body = await run_in_threadpool(core.render_metrics)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

"""Assemble the ASGI application from the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from auditkeep import console, web
from auditkeep.api import admin, destinations, docs, events, health, viewer
from auditkeep.api import log as log_api
from auditkeep.api.http import problem_response
from auditkeep.core import Core
from auditkeep.errors import NotFound, ProblemError


class MethodNotAllowed(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        problem: ProblemError = NotFound(f"there is no endpoint at {request.url.path}; see /docs")
    elif exc.status_code == 405:
        problem = MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
    else:
        problem = ProblemError(str(exc.detail))
        problem.status = exc.status_code  # type: ignore[misc]
    return problem_response(problem, request)


def create_app(core: Core, *, manage_core: bool = True) -> Starlette:
    """The HTTP app over ``core``. With ``manage_core`` the app starts and closes it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_core:
            core.start()
        try:
            yield
        finally:
            if manage_core:
                core.close()

    app = Starlette(
        routes=[
            *events.routes,
            *log_api.routes,
            *admin.routes,
            *destinations.routes,
            *viewer.routes,
            *health.routes,
            *docs.routes,
            *web.routes,
            *console.routes,
        ],
        middleware=web.middleware(core.config.cors_allow_origins),
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.core = core
    return app

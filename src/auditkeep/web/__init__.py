"""The browser half: vendored static files (the embeddable timeline and its in-browser proof
checker) served at ``/static/<name>``, and CORS for the read-only endpoints the timeline calls.

Static files are read once, at import, from the ``static`` directory beside this module into
an allow-list keyed by file name. A request can only name a key of that list, never a path, so
nothing outside the directory can be served (``..``, encoded slashes and absolute paths do not
match a key). Responses carry a strong ETag (SHA-256 of the content), ``Cache-Control``,
``X-Content-Type-Options: nosniff`` and ``Access-Control-Allow-Origin: *`` (the files are public
and a page on another origin loads ``timeline.js`` as a module script, which browsers fetch in
CORS mode). docs/embedding.md describes how a customer embeds the timeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from auditkeep.api.http import route
from auditkeep.api.openapi import Operation, problems
from auditkeep.errors import BadRequest, NotFound
from auditkeep.query import Param
from auditkeep.settings import parse_origins

STATIC_DIR = Path(__file__).resolve().parent / "static"

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CACHE_CONTROL = "public, max-age=300, must-revalidate"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load(directory: Path) -> dict[str, StaticFile]:
    files = {}
    for path in sorted(directory.iterdir()):
        media = _MEDIA_TYPES.get(path.suffix)
        if media is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.name] = StaticFile(body, media, etag)
    return files


FILES = _load(STATIC_DIR)


def _etag_matches(header: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


@route(
    "/static/{name}",
    Operation(
        "Vendored static files: the embeddable timeline (timeline.js, tlog.js, timeline.css) "
        "and the console's (console.js, console.css)",
        description="Public, ETag and Cache-Control; see docs/embedding.md.",
        public=True,
        params=(
            Param("name", "The file", enum=tuple(sorted(FILES)), location="path", required=True),
        ),
        responses={
            200: {
                "description": "JavaScript or CSS",
                "content": {
                    media: {"schema": {"type": "string"}}
                    for media in sorted({f.media_type.split(";")[0] for f in FILES.values()})
                },
            },
            304: {"description": "Not modified (If-None-Match)"},
            **problems(400, 404),
        },
    ),
)
async def static_file(request: Request) -> Response:
    """One vendored static file by name (no sub-directories)."""
    if request.query_params:
        raise BadRequest("static files take no query parameters")
    name = request.path_params["name"]
    found = FILES.get(name)
    if found is None:
        raise NotFound(
            f"there is no static file {name[:80]!r}; the files served are "
            + ", ".join(sorted(FILES))
        )
    headers = {
        "ETag": found.etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if _etag_matches(request.headers.get("if-none-match", ""), found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)  # HEAD: no body


routes = [Route("/static/{name}", static_file, methods=["GET", "HEAD"])]

# The endpoints the timeline reads from another origin: GET only, with a bearer token.
CORS_PATHS = ("/v1/events", "/v1/log/")


class ReadOnlyCORS:
    """CORS for the timeline's read-only GET endpoints, for the configured origins only.

    Other paths (ingest, admin, destinations) are passed through untouched, so a browser on
    another origin can never be allowed to call them. Preflights from an origin not in the
    list are answered 400 and get no ``Access-Control-Allow-Origin``: the browser refuses.
    """

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CORS_PATHS) and _reads(scope):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _reads(scope: Scope) -> bool:
    """A GET or HEAD, or the preflight of one: only those may carry CORS headers (a POST to
    the same path, or its preflight, gets none, so the browser refuses it)."""
    method = scope["method"]
    if method == "OPTIONS":
        for name, value in scope["headers"]:
            if name == b"access-control-request-method":
                return value.strip().upper() in (b"GET", b"HEAD")
        return False
    return method in ("GET", "HEAD")


def middleware(cors_allow_origins: str) -> list[Middleware]:
    """The app's middleware for the configured origins (none when the setting is empty)."""
    origins = parse_origins(cors_allow_origins)
    return [Middleware(ReadOnlyCORS, origins=origins)] if origins else []


__all__ = ["FILES", "STATIC_DIR", "ReadOnlyCORS", "middleware", "parse_origins", "routes"]

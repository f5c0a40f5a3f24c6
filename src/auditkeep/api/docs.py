"""The OpenAPI 3.1 description of the API (/openapi.json) and a browsable page (/docs).

The document is built from the app's own route table: every handler declares its parameters,
body and answers (``openapi.Operation``, attached by ``http.route``) and parses its requests
with those same declarations, so the document cannot drift from behaviour; a route without a
declaration fails the build. The page is rendered on the server from the same document, so it
works offline.
"""

from __future__ import annotations

import html
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from auditkeep.api.http import JSONResponse, route
from auditkeep.api.openapi import Operation, build_spec, json_answer


def spec_of(request: Request) -> dict[str, Any]:
    """The app's OpenAPI document, built once from its routes."""
    state = request.app.state
    spec: dict[str, Any] | None = getattr(state, "openapi", None)
    if spec is None:
        spec = state.openapi = build_spec(request.app.routes)
    return spec


@route(
    "/openapi.json",
    Operation(
        "This document",
        public=True,
        responses={200: json_answer({"type": "object", "required": ["openapi"]}, "OpenAPI")},
    ),
)
async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 document."""
    return JSONResponse(spec_of(request))


def render_docs_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML reference rendered from ``spec``."""
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
        f"<h1>auditkeep API <small>{html.escape(spec['info']['version'])}</small></h1>",
        f"<p>{html.escape(spec['info']['description'])} Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in spec["paths"].items():
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
    event_schema = spec["components"]["schemas"]["EventIn"]
    parts.append(html.escape(orjson.dumps(event_schema, option=orjson.OPT_INDENT_2).decode()))
    parts.append("</pre></body></html>")
    return "".join(parts)


@route(
    "/docs",
    Operation(
        "Browsable API reference",
        public=True,
        responses={200: {"description": "HTML", "content": {"text/html": {}}}},
    ),
)
async def docs_page(request: Request) -> Response:
    """The API reference as one HTML page."""
    return HTMLResponse(render_docs_html(spec_of(request)))


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]

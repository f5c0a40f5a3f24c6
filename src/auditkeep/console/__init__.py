"""The console at /console: server-rendered pages for operators and tenant admins.

Signed in with an API key, a person holds a session cookie (``console.session``); every page
re-checks the key. Pages are Jinja2 templates (autoescaped); their only JavaScript and CSS are
the vendored files under /static/ (console.js, console.css, tlog.js), allowed by a strict
Content-Security-Policy with no inline script or style. Every POST must come from this origin
(Origin and Sec-Fetch-Site) and carry the session's CSRF token. docs/console.md describes it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from auditkeep.api.http import core_of, route
from auditkeep.api.openapi import Operation, problems
from auditkeep.auth import ADMIN, EVENTS_READ, Principal, parse_scopes
from auditkeep.console.session import COOKIE, Session, Sessions
from auditkeep.errors import Forbidden, NotFound, ProblemError, Unauthorized
from auditkeep.query import EVENT_FILTERS, path_param
from auditkeep.store.scope import WHOLE_TENANT

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
VIEWER_TTL = 900  # seconds: the in-page token the proof badge and live tail read with
PAGE_SIZE = 50
FORM_LIMIT = 8 * 1024
FILTER_NAMES = tuple(p.name for p in EVENT_FILTERS)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class CrossSite(Forbidden):
    slug, title = "cross-site-request", "Cross-site request refused"


def sessions_of(request: Request) -> Sessions:
    state = request.app.state
    found: Sessions | None = getattr(state, "console_sessions", None)
    if found is None:
        config = core_of(request).config
        found = state.console_sessions = Sessions(
            config.data_dir / "keys", config.console_idle_timeout
        )
    return found


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def _nav(principal: Principal) -> list[tuple[str, str]]:
    """The pages ``principal`` may see, as (path, label)."""
    if principal.is_operator:
        return [("/console/tenants", "Tenants & keys")]
    items = []
    if EVENTS_READ in principal.key.scopes:
        items += [("/console/events", "Events"), ("/console/tail", "Live tail")]
    if ADMIN in principal.key.scopes:
        items.append(("/console/destinations", "Destinations"))
    return items


class Page:
    """A signed-in request: its principal, session and what the templates need."""

    def __init__(self, request: Request, principal: Principal, session: Session) -> None:
        self.request = request
        self.principal = principal
        self.session = session
        self.sessions = sessions_of(request)

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        body = _env.get_template(template).render(
            nav=_nav(self.principal),
            path=self.request.url.path,
            who=self.principal.key,
            operator=self.principal.is_operator,
            csrf=self.sessions.csrf_token(self.session),
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
        self.refresh(response)
        return response

    def refresh(self, response: Response) -> None:
        """Move the idle expiry on (a sliding session)."""
        renewed = self.sessions.refreshed(self.session)
        _set_cookie(
            response, self.request, self.sessions.encode(renewed), int(self.sessions.idle / 1e6)
        )

    def redirect(self, to: str) -> Response:
        response = RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)
        self.refresh(response)
        return response

    def viewer_token(self) -> str:
        """A short-lived, tenant-wide, read-only token for the page's own JavaScript."""
        token, _ = core_of(self.request).viewer_tokens.mint(
            self.principal.key, WHOLE_TENANT, VIEWER_TTL
        )
        return token


PageHandler = Callable[[Page], Awaitable[Response]]


def _sign_in_redirect(request: Request) -> Response:
    target = "/console/sign-in"
    if request.method == "GET" and request.url.path not in ("/console", "/console/"):
        target += "?" + urlencode({"next": request.url.path + _query(request)})
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/console")
    return response


def _query(request: Request) -> str:
    return "?" + request.url.query if request.url.query else ""


async def _signed_in(request: Request) -> Page | None:
    sessions = sessions_of(request)
    session = sessions.open(request.cookies.get(COOKIE))
    if session is None:
        return None
    core = core_of(request)
    try:
        principal = await run_in_threadpool(core.auth.by_key_id, session.key_id)
    except Unauthorized:
        return None  # revoked, expired or deleted: the session ends with the key
    return Page(request, principal, session)


def _same_origin(request: Request) -> None:
    """Refuse a POST a browser sent from another site (before any other check)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossSite(f"a console form must be sent from this site (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise CrossSite(f"a console form must be sent from {own}, not from {origin[:100]}")


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise Forbidden("the form is too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def page(
    path: str,
    summary: str,
    *,
    params: tuple[Any, ...] = (),
    form: bool = False,
) -> Callable[[Callable[..., Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """A console page handler: signed-in only (else to the sign-in page); with ``form``, a POST
    from this origin carrying the session's CSRF token, given to the handler as ``form``."""

    def wrap(fn: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @route(
            path,
            Operation(
                "Console: " + summary,
                description="An HTML page of the console (docs/console.md); signed in with "
                "a session cookie, not a bearer key.",
                public=True,
                params=params,
                responses={
                    200: {"description": "HTML", "content": {"text/html": {}}},
                    303: {"description": "To the sign-in page, or back after a form"},
                    **problems(403, 404),
                },
            ),
        )
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            if form:
                _same_origin(request)
            found = await _signed_in(request)
            if found is None:
                if form:
                    raise CrossSite("the console session has ended: sign in again")
                return _sign_in_redirect(request)
            if form:
                fields = await _form(request)
                if not found.sessions.csrf_ok(found.session, fields.get("csrf")):
                    raise CrossSite(
                        "the form's CSRF token is missing or is not this session's: reload "
                        "the page and send the form again"
                    )
                return await fn(found, fields)
            return await fn(found)

        return handler

    return wrap


# -- sign-in and sign-out -------------------------------------------------------------------


def _render_sign_in(error: str = "", next_: str = "", status: int = 200) -> Response:
    body = _env.get_template("sign_in.html").render(
        nav=[],
        path="/console/sign-in",
        who=None,
        operator=False,
        csrf="",
        error=error,
        next=next_,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _safe_next(text: str) -> str:
    return text if text.startswith("/console/") and "//" not in text and "\\" not in text else ""


_SIGN_IN_OP = Operation(
    "Console: sign in with an API key",
    description="GET shows the form; POST (form field key) opens a session: a signed, "
    "HttpOnly, SameSite=Strict cookie with Path=/console. See docs/console.md.",
    public=True,
    responses={
        200: {"description": "HTML", "content": {"text/html": {}}},
        303: {"description": "Signed in: to the console"},
        401: {"description": "The key was refused (HTML form with the reason)"},
        **problems(403),
    },
)


@route("/console/sign-in", _SIGN_IN_OP)
async def sign_in(request: Request) -> Response:
    """The sign-in form, and signing in."""
    if request.method == "GET":
        return _render_sign_in(next_=_safe_next(request.query_params.get("next", "")))
    _same_origin(request)
    fields = await _form(request)
    key = fields.get("key", "").strip()
    next_ = _safe_next(fields.get("next", ""))
    core = core_of(request)
    try:
        principal = await run_in_threadpool(core.auth.authenticate, f"Bearer {key}")
        if principal.viewer is not None:
            raise Unauthorized("a viewer token cannot sign in to the console; use an API key")
        if not principal.is_operator and not principal.key.scopes & {ADMIN, EVENTS_READ}:
            raise Unauthorized(
                f"key {principal.key.key_id} has neither admin nor events:read: it has "
                "nothing to show in the console"
            )
    except Unauthorized as exc:
        core.metrics.auth_failures.inc()
        return _render_sign_in(exc.detail, next_, status=401)
    sessions = sessions_of(request)
    session = sessions.new(principal.key.key_id)
    first = _nav(principal)[0][0]
    response = RedirectResponse(next_ or first, status_code=303, headers=SECURITY_HEADERS)
    _set_cookie(response, request, sessions.encode(session), int(sessions.idle / 1e6))
    return response


@page("/console/sign-out", "sign out", form=True)
async def sign_out(p: Page, form: Mapping[str, str]) -> Response:
    """End the session: its cookie is refused from now on."""
    p.sessions.end(p.session)
    response = RedirectResponse("/console/sign-in", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/console")
    return response


@page("/console", "home: the first page the principal may see")
async def home(p: Page) -> Response:
    return p.redirect(_nav(p.principal)[0][0])


# -- events ---------------------------------------------------------------------------------


def _need_events(p: Page) -> None:
    if p.principal.is_operator or EVENTS_READ not in p.principal.key.scopes:
        raise Forbidden(
            f"key {p.principal.key.key_id} cannot read events (it needs events:read on a "
            "tenant); sign in with such a key"
        )


@page("/console/events", "event search", params=EVENT_FILTERS)
async def events_page(p: Page) -> Response:
    """Search with the filters of GET /v1/events; cursor paging through links."""
    _need_events(p)
    q = p.request.query_params
    filters = {name: q[name] for name in FILTER_NAMES if q.get(name)}
    params = dict(filters, limit=str(PAGE_SIZE))
    if q.get("cursor"):
        params["cursor"] = q["cursor"]
    core = core_of(p.request)
    error = ""
    result: dict[str, Any] = {"data": [], "next_cursor": None}
    try:
        result = await run_in_threadpool(core.query_events, p.principal.tenant_id, params)
    except ProblemError as exc:
        if exc.status >= 500:
            raise
        error = exc.detail
    next_url = ""
    if result["next_cursor"]:
        next_url = "/console/events?" + urlencode({**filters, "cursor": result["next_cursor"]})
    return p.render(
        "events.html",
        filters=filters,
        rows=result["data"],
        error=error,
        next_url=next_url,
        first_url="/console/events?" + urlencode(filters) if q.get("cursor") else "",
        outcomes=("success", "failure"),
    )


@page(
    "/console/events/{event_id}",
    "one event, with its proof checked in the browser",
    params=(path_param("event_id", "The event's id"),),
)
async def event_page(p: Page) -> Response:
    _need_events(p)
    event_id = p.request.path_params["event_id"]
    core = core_of(p.request)
    found = await run_in_threadpool(core.events(p.principal.tenant_id).get, event_id)
    if found is None:
        raise NotFound(f"no event with id {event_id[:128]!r} in tenant {p.principal.tenant_slug!r}")
    keys = await run_in_threadpool(core.tlog.public_keys, None)
    log_key = next(k["vkey"] for k in keys["keys"] if k["state"] != "retired")
    event = found.to_json()
    content = orjson.dumps(event, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return p.render(
        "event.html", event=event, content=content, token=p.viewer_token(), log_key=log_key
    )


@page("/console/tail", "live tail: new events as they arrive")
async def tail_page(p: Page) -> Response:
    _need_events(p)
    return p.render("tail.html", token=p.viewer_token())


# -- tenants and keys (operator) --------------------------------------------------------------


def _need_operator(p: Page) -> None:
    if not p.principal.is_operator:
        raise Forbidden("tenants and keys are managed with an operator key; sign in with one")


async def _tenants(p: Page, status: int = 200, **context: Any) -> Response:
    core = core_of(p.request)

    def load() -> list[tuple[Any, list[Any]]]:
        return [
            (t, core.store.list_keys(t.tenant_id))
            for t in core.store.list_tenants()
            if t.slug != "_system"
        ]

    context.setdefault("error", "")
    context.setdefault("created", None)
    return p.render("tenants.html", status, tenants=await run_in_threadpool(load), **context)


@page("/console/tenants", "tenants and their keys (operator)")
async def tenants_page(p: Page) -> Response:
    _need_operator(p)
    return await _tenants(p)


@page("/console/tenants/new", "create a tenant (operator)", form=True)
async def tenant_create(p: Page, form: Mapping[str, str]) -> Response:
    _need_operator(p)
    core = core_of(p.request)
    try:
        await run_in_threadpool(core.create_tenant, form.get("slug", ""), form.get("name"))
    except ProblemError as exc:
        return await _tenants(p, 400, error=exc.detail)
    return p.redirect("/console/tenants")


@page(
    "/console/tenants/{tenant}/keys",
    "create a key for a tenant, shown once (operator)",
    params=(path_param("tenant", "The tenant's name"),),
    form=True,
)
async def key_create(p: Page, form: Mapping[str, str]) -> Response:
    _need_operator(p)
    core = core_of(p.request)
    scopes = [s for s in ("events:write", "events:read", "admin") if form.get(s)]
    try:
        tenant = await run_in_threadpool(core.tenant, p.request.path_params["tenant"])
        record, key = await run_in_threadpool(
            functools.partial(
                core.create_key,
                tenant,
                parse_scopes(scopes),
                name=form.get("name", "")[:200],
                principal=p.principal,
            )
        )
    except ProblemError as exc:
        return await _tenants(p, exc.status, error=exc.detail)
    return await _tenants(p, 201, created=(record, key))


@page(
    "/console/tenants/{tenant}/keys/{key_id}/revoke",
    "revoke a key (operator)",
    params=(path_param("tenant", "The tenant's name"), path_param("key_id", "The key id")),
    form=True,
)
async def key_revoke(p: Page, form: Mapping[str, str]) -> Response:
    _need_operator(p)
    core = core_of(p.request)
    try:
        tenant = await run_in_threadpool(core.tenant, p.request.path_params["tenant"])
        await run_in_threadpool(core.revoke_key, tenant, p.request.path_params["key_id"])
    except ProblemError as exc:
        return await _tenants(p, exc.status, error=exc.detail)
    return p.redirect("/console/tenants")


# -- destinations (tenant admin) -------------------------------------------------------------


def _need_admin(p: Page) -> None:
    if p.principal.is_operator or ADMIN not in p.principal.key.scopes:
        raise Forbidden("destinations are managed with a tenant key that has admin")


@page("/console/destinations", "the tenant's destinations with lag and errors (admin)")
async def destinations_page(p: Page) -> Response:
    _need_admin(p)
    core = core_of(p.request)
    tenant = await run_in_threadpool(core.tenant, p.principal.tenant_slug, p.principal)
    rows = await run_in_threadpool(core.destinations.list, tenant)
    return p.render("destinations.html", rows=rows)


async def _pause_or_resume(p: Page, pause: bool) -> Response:
    _need_admin(p)
    core = core_of(p.request)
    dest_id = p.request.path_params["dest_id"]
    tenant = await run_in_threadpool(core.tenant, p.principal.tenant_slug, p.principal)
    if pause:
        by = f"paused in the console by key {p.principal.key.key_id}"
        await run_in_threadpool(core.destinations.pause, tenant, dest_id, by)
    else:
        await run_in_threadpool(core.destinations.resume, tenant, dest_id)
    return p.redirect("/console/destinations")


_DEST = (path_param("dest_id", "The destination's id"),)


@page("/console/destinations/{dest_id}/pause", "pause a destination", params=_DEST, form=True)
async def destination_pause(p: Page, form: Mapping[str, str]) -> Response:
    return await _pause_or_resume(p, True)


@page("/console/destinations/{dest_id}/resume", "resume a destination", params=_DEST, form=True)
async def destination_resume(p: Page, form: Mapping[str, str]) -> Response:
    return await _pause_or_resume(p, False)


routes = [
    Route("/console", home, methods=["GET"]),
    Route("/console/sign-in", sign_in, methods=["GET", "POST"]),
    Route("/console/sign-out", sign_out, methods=["POST"]),
    Route("/console/events", events_page, methods=["GET"]),
    Route("/console/events/{event_id}", event_page, methods=["GET"]),
    Route("/console/tail", tail_page, methods=["GET"]),
    Route("/console/tenants", tenants_page, methods=["GET"]),
    Route("/console/tenants/new", tenant_create, methods=["POST"]),
    Route("/console/tenants/{tenant}/keys", key_create, methods=["POST"]),
    Route("/console/tenants/{tenant}/keys/{key_id}/revoke", key_revoke, methods=["POST"]),
    Route("/console/destinations", destinations_page, methods=["GET"]),
    Route("/console/destinations/{dest_id}/pause", destination_pause, methods=["POST"]),
    Route("/console/destinations/{dest_id}/resume", destination_resume, methods=["POST"]),
]

__all__ = ["CSP", "routes"]

"""Request recording for ASGI (FastAPI, Starlette, ...) and WSGI (Flask, Django, ...) apps.

For every HTTP request the middleware opens a request context (request id from
``X-Request-ID`` or a new one, client ip, user agent) that ``log()`` calls made while handling
the request pick up, and when the response is done it records:

- an **access** event (category ``access``, action ``http.request``), sampled by
  ``sample_rate`` deterministically by request id;
- an **error** event (category ``error``, action ``http.exception``) when the app raised, with
  the exception type and a redacted, truncated stack trace;
- a **security** event (category ``security``, ``http.unauthorized`` / ``http.forbidden``) for
  401 and 403 answers;
- a **performance** event (category ``performance``, ``http.slow_request``) when the request
  took longer than ``slow_threshold_ms``.

Metadata: method, route template (when the framework tells it), path, redacted query
parameters, status, latency_ms, request/response body sizes and the bound ``client_id``.
Bodies and the Authorization, Cookie, Set-Cookie and API-key headers are never read into an
event. The client's processor chain (redaction) runs on every event, as for ``log()``.

Recording never raises into the app and never waits on the network: events go to the outbox.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import time
import traceback
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from .context import RequestContext, _current
from .errors import describe
from .redaction import redact_text

if TYPE_CHECKING:
    from .client import AsyncAuditKeep, AuditKeep

__all__ = [
    "AuditKeepASGIMiddleware",
    "AuditKeepWSGIMiddleware",
    "MiddlewareOptions",
    "instrument_flask",
]

log = logging.getLogger("auditkeep_client.middleware")

#: Headers never copied into an event (compared lower-case).
SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)

#: The WSGI environ key the Flask integration sets to the matched URL rule.
ROUTE_ENVIRON_KEY: Final = "auditkeep.route"
EXC_ENVIRON_KEY: Final = "auditkeep.exception"

_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_MAX_QUERY_PARAMS: Final = 50
_MAX_VALUE_CHARS: Final = 512
_MAX_STACK_CHARS: Final = 6000

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class MiddlewareOptions:
    """Options shared by both middlewares.

    ``sample_rate``: fraction of access events kept (0..1), decided by a hash of the request
    id, so all services in a call chain keep or drop the same requests. Error, security and
    performance events are never sampled.
    ``slow_threshold_ms``: requests slower than this also produce a performance event (None:
    never).
    ``trust_forwarded``: take the client ip from the first ``X-Forwarded-For`` entry (only
    behind a proxy you control).
    ``exclude_paths``: paths recorded not at all (health checks...).
    ``action_prefix``: the actions are ``<prefix>.request`` etc.
    ``echo_request_id``: add ``X-Request-ID`` to the response.
    """

    sample_rate: float = 1.0
    slow_threshold_ms: float | None = 1000.0
    trust_forwarded: bool = False
    exclude_paths: frozenset[str] = frozenset()
    action_prefix: str = "http"
    echo_request_id: bool = True
    record_errors: bool = True
    record_security: bool = True
    request_id_header: str = "x-request-id"


def _sampled(request_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return zlib.crc32(request_id.encode()) / 4294967296.0 < rate


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return value


def _request_id(value: str | None) -> str:
    if value and _REQUEST_ID_RE.fullmatch(value.strip()):
        return value.strip()
    return uuid.uuid4().hex


def _query_params(query: str) -> dict[str, Any]:
    """Query parameters as a dict (lists for repeated names); values truncated. Redaction of
    sensitive names happens in the processor chain like for any metadata."""
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(parse_qsl(query, keep_blank_values=True)):
        if i >= _MAX_QUERY_PARAMS:
            out["_truncated"] = True
            break
        value = value[:_MAX_VALUE_CHARS]
        if name in out:
            prev = out[name]
            out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[name] = value
    return out


class _Recorder:
    """The event-building part shared by the ASGI and WSGI middlewares."""

    def __init__(self, client: AuditKeep | AsyncAuditKeep, options: MiddlewareOptions) -> None:
        from .client import AsyncAuditKeep

        self.sync_client: AuditKeep = client.sync if isinstance(client, AsyncAuditKeep) else client
        self.async_client = client if isinstance(client, AsyncAuditKeep) else None
        self.options = options

    def stack(self, exc: BaseException) -> str:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        text = redact_text(self.sync_client.processors, text)
        if len(text) > _MAX_STACK_CHARS:
            text = "…" + text[-_MAX_STACK_CHARS:]
        return text

    def events(
        self,
        frame: RequestContext,
        *,
        method: str,
        path: str,
        route: str | None,
        query: str,
        status: int | None,
        latency_ms: float,
        request_bytes: int,
        response_bytes: int,
        exc: BaseException | None,
    ) -> list[dict[str, Any]]:
        """Build the keyword arguments of each log() call for one finished request."""
        o = self.options
        prefix = o.action_prefix
        if status is None:
            status = 500 if exc is not None else 0
        meta: dict[str, Any] = {
            "method": method,
            "path": path[:_MAX_VALUE_CHARS],
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
        }
        if route:
            meta["route"] = route
        if query:
            meta["query"] = _query_params(query)
        if frame.client_id:
            meta["client_id"] = frame.client_id
        actor = frame.actor or {"id": "anonymous", "type": "anonymous"}
        failed = exc is not None or status >= 400
        reason = type(exc).__name__ if exc is not None else (f"HTTP {status}" if failed else None)
        base = {"actor": actor, "outcome": "failure" if failed else "success", "reason": reason}
        out: list[dict[str, Any]] = []
        rid = frame.request_id or ""
        if _sampled(rid, o.sample_rate):
            m = dict(meta)
            if o.sample_rate < 1.0:
                m["sample_rate"] = o.sample_rate
            out.append({**base, "action": f"{prefix}.request", "category": "access", "metadata": m})
        if exc is not None and o.record_errors:
            m = dict(meta)
            m["exception_type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
            m["exception_message"] = redact_text(self.sync_client.processors, str(exc))[
                :_MAX_VALUE_CHARS
            ]
            m["stack"] = self.stack(exc)
            out.append(
                {**base, "action": f"{prefix}.exception", "category": "error", "metadata": m}
            )
        if status in (401, 403) and o.record_security:
            action = f"{prefix}.unauthorized" if status == 401 else f"{prefix}.forbidden"
            out.append({**base, "action": action, "category": "security", "metadata": dict(meta)})
        if o.slow_threshold_ms is not None and latency_ms > o.slow_threshold_ms:
            m = dict(meta, threshold_ms=o.slow_threshold_ms)
            out.append(
                {
                    **base,
                    "action": f"{prefix}.slow_request",
                    "category": "performance",
                    "metadata": m,
                }
            )
        return out

    def emit_sync(self, events: list[dict[str, Any]]) -> None:
        for kwargs in events:
            try:
                self.sync_client.log(**kwargs)
            except Exception as exc:  # never raise into the app
                log.error(
                    "auditkeep: could not record %s (%s)", kwargs.get("action"), describe(exc)
                )

    async def emit_async(self, events: list[dict[str, Any]]) -> None:
        if self.async_client is None:
            self.emit_sync(events)
            return
        for kwargs in events:
            try:
                await self.async_client.log(**kwargs)
            except Exception as exc:
                log.error(
                    "auditkeep: could not record %s (%s)", kwargs.get("action"), describe(exc)
                )


def _asgi_route(scope: MutableMapping[str, Any], entry_root: str) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    if not isinstance(path, str):
        return None
    root = scope.get("root_path", "") or ""
    prefix = root[len(entry_root) :] if root.startswith(entry_root) else ""
    return prefix + path


class AuditKeepASGIMiddleware:
    """Pure ASGI middleware: ``app.add_middleware(AuditKeepASGIMiddleware, client=client)``.

    ``client`` may be an AuditKeep or an AsyncAuditKeep (then the outbox write is awaited off
    the loop). Route templates come from ``scope["route"]`` (Starlette and FastAPI set it).
    """

    def __init__(
        self,
        app: ASGIApp,
        client: AuditKeep | AsyncAuditKeep,
        *,
        sample_rate: float = 1.0,
        slow_threshold_ms: float | None = 1000.0,
        trust_forwarded: bool = False,
        exclude_paths: Iterable[str] = (),
        action_prefix: str = "http",
        echo_request_id: bool = True,
        record_errors: bool = True,
        record_security: bool = True,
    ) -> None:
        self.app = app
        self.options = MiddlewareOptions(
            sample_rate=sample_rate,
            slow_threshold_ms=slow_threshold_ms,
            trust_forwarded=trust_forwarded,
            exclude_paths=frozenset(exclude_paths),
            action_prefix=action_prefix,
            echo_request_id=echo_request_id,
            record_errors=record_errors,
            record_security=record_security,
        )
        self.recorder = _Recorder(client, self.options)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") != "http" or scope.get("path") in self.options.exclude_paths:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            frame = self._frame(scope)
        except Exception:  # pragma: no cover - malformed scope; do not get in the way
            log.debug("could not read the request", exc_info=True)
            await self.app(scope, receive, send)
            return
        entry_root = scope.get("root_path", "") or ""
        state = {"status": None, "req": 0, "resp": 0}
        echo = self.options.echo_request_id
        rid_header = (frame.request_id or "").encode("latin-1")

        async def _receive() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                state["req"] += len(message.get("body", b""))  # type: ignore[operator]
            return message

        async def _send(message: Any) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                state["status"] = message.get("status")
                if echo:
                    headers = list(message.get("headers", []))
                    if not any(k.lower() == b"x-request-id" for k, _ in headers):
                        headers.append((b"x-request-id", rid_header))
                        message = {**message, "headers": headers}
            elif kind == "http.response.body":
                state["resp"] += len(message.get("body", b""))  # type: ignore[operator]
            await send(message)

        token = _current.set(frame)
        error: BaseException | None = None
        try:
            await self.app(scope, _receive, _send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _current.reset(token)
            try:
                await self._record(scope, frame, state, start, error, entry_root)
            except Exception:  # pragma: no cover - never raise into the app
                log.exception("auditkeep: recording a request failed")

    def _frame(self, scope: MutableMapping[str, Any]) -> RequestContext:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            if name in ("x-request-id", "user-agent", "x-forwarded-for"):
                headers[name] = raw_value.decode("latin-1")
        ip = None
        if self.options.trust_forwarded and "x-forwarded-for" in headers:
            ip = _valid_ip(headers["x-forwarded-for"].split(",")[0])
        if ip is None:
            client = scope.get("client")
            ip = _valid_ip(client[0]) if client else None
        ua = headers.get("user-agent")
        return RequestContext(
            ip=ip,
            user_agent=ua[:1024] if ua else None,
            request_id=_request_id(headers.get("x-request-id")),
            in_scope=True,
        )

    async def _record(
        self,
        scope: MutableMapping[str, Any],
        frame: RequestContext,
        state: dict[str, Any],
        start: float,
        error: BaseException | None,
        entry_root: str,
    ) -> None:
        latency_ms = (time.perf_counter() - start) * 1000.0
        exc = error if isinstance(error, Exception) else None
        status = state["status"]
        if error is not None and exc is None:
            status = status or 499  # cancelled: the client went away
        query = scope.get("query_string", b"")
        events = self.recorder.events(
            frame,
            method=str(scope.get("method", "")),
            path=str(scope.get("path", "")),
            route=_asgi_route(scope, entry_root),
            query=query.decode("latin-1") if isinstance(query, bytes) else str(query),
            status=status,
            latency_ms=latency_ms,
            request_bytes=state["req"],
            response_bytes=state["resp"],
            exc=exc,
        )
        token = _current.set(frame)
        try:
            await self.recorder.emit_async(events)
        finally:
            _current.reset(token)


class _ClosingIterable:
    """Wraps a WSGI response iterable: counts bytes, records the request when closed."""

    def __init__(self, result: Iterable[bytes], on_close: Callable[[int], None]) -> None:
        self._result = result
        self._on_close = on_close
        self._bytes = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._bytes += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._bytes)


class AuditKeepWSGIMiddleware:
    """WSGI middleware: ``app.wsgi_app = AuditKeepWSGIMiddleware(app.wsgi_app, client)``.

    The route template is read from ``environ["auditkeep.route"]``, which
    :func:`instrument_flask` sets (other frameworks may set it too).
    """

    def __init__(
        self,
        app: WSGIApp,
        client: AuditKeep,
        *,
        sample_rate: float = 1.0,
        slow_threshold_ms: float | None = 1000.0,
        trust_forwarded: bool = False,
        exclude_paths: Iterable[str] = (),
        action_prefix: str = "http",
        echo_request_id: bool = True,
        record_errors: bool = True,
        record_security: bool = True,
    ) -> None:
        self.app = app
        self.options = MiddlewareOptions(
            sample_rate=sample_rate,
            slow_threshold_ms=slow_threshold_ms,
            trust_forwarded=trust_forwarded,
            exclude_paths=frozenset(exclude_paths),
            action_prefix=action_prefix,
            echo_request_id=echo_request_id,
            record_errors=record_errors,
            record_security=record_security,
        )
        self.recorder = _Recorder(client, self.options)

    def _frame(self, environ: dict[str, Any]) -> RequestContext:
        ip = None
        if self.options.trust_forwarded and environ.get("HTTP_X_FORWARDED_FOR"):
            ip = _valid_ip(str(environ["HTTP_X_FORWARDED_FOR"]).split(",")[0])
        if ip is None:
            ip = _valid_ip(environ.get("REMOTE_ADDR"))
        ua = environ.get("HTTP_USER_AGENT")
        return RequestContext(
            ip=ip,
            user_agent=str(ua)[:1024] if ua else None,
            request_id=_request_id(environ.get("HTTP_X_REQUEST_ID")),
            in_scope=True,
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self.options.exclude_paths:
            return self.app(environ, start_response)
        start = time.perf_counter()
        try:
            frame = self._frame(environ)
        except Exception:  # pragma: no cover
            log.debug("could not read the request", exc_info=True)
            return self.app(environ, start_response)
        status: list[int | None] = [None]
        echo = self.options.echo_request_id

        def _start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            try:
                status[0] = int(status_line.split(" ", 1)[0])
            except ValueError:
                status[0] = None
            if echo and not any(k.lower() == "x-request-id" for k, _ in headers):
                headers = [*headers, ("X-Request-ID", frame.request_id or "")]
            if exc_info is not None:
                return start_response(status_line, headers, exc_info)
            return start_response(status_line, headers)

        def _finish(response_bytes: int, exc: BaseException | None = None) -> None:
            try:
                self._record(environ, frame, status[0], start, response_bytes, exc)
            except Exception:  # pragma: no cover - never raise into the app
                log.exception("auditkeep: recording a request failed")

        token = _current.set(frame)
        try:
            result = self.app(environ, _start_response)
        except Exception as exc:
            _finish(0, exc)
            raise
        finally:
            _current.reset(token)
        return _ClosingIterable(result, _finish)

    def _record(
        self,
        environ: dict[str, Any],
        frame: RequestContext,
        status: int | None,
        start: float,
        response_bytes: int,
        exc: BaseException | None,
    ) -> None:
        latency_ms = (time.perf_counter() - start) * 1000.0
        if exc is None:
            flagged = environ.get(EXC_ENVIRON_KEY)
            if isinstance(flagged, BaseException):
                exc = flagged
        try:
            request_bytes = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            request_bytes = 0
        route = environ.get(ROUTE_ENVIRON_KEY)
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        events = self.recorder.events(
            frame,
            method=str(environ.get("REQUEST_METHOD", "")),
            path=path,
            route=str(route) if route else None,
            query=str(environ.get("QUERY_STRING", "")),
            status=status,
            latency_ms=latency_ms,
            request_bytes=request_bytes,
            response_bytes=response_bytes,
            exc=exc,
        )
        token = _current.set(frame)
        try:
            self.recorder.emit_sync(events)
        finally:
            _current.reset(token)


def instrument_flask(app: Any, client: AuditKeep, **options: Any) -> AuditKeepWSGIMiddleware:
    """Wrap a Flask app's ``wsgi_app`` and report route templates and handled exceptions.

    Sets ``environ["auditkeep.route"]`` to ``request.url_rule.rule`` before each request and
    ``environ["auditkeep.exception"]`` when Flask turns an exception into a 500 (via the
    ``got_request_exception`` signal), so error events carry the type and stack trace.
    """
    from flask import got_request_exception, request

    def _set_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_ENVIRON_KEY] = rule.rule

    def _on_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
        with contextlib.suppress(RuntimeError):  # outside a request
            request.environ[EXC_ENVIRON_KEY] = exception

    app.before_request(_set_route)
    got_request_exception.connect(_on_exception, app, weak=False)
    middleware = AuditKeepWSGIMiddleware(app.wsgi_app, client, **options)
    app.wsgi_app = middleware
    return middleware

"""Request context: who is acting, from where, in which request, carried in a contextvar.

Middleware opens a scope per request (ip, user agent, request id); service code adds what it
learns later (``bind(actor=...)`` once the user is authenticated). ``log()`` merges the current
context into every event: explicit arguments win, then the bound values.

Inside a scope, :func:`bind` updates the scope's frame *in place*, so a value bound in a
worker thread that runs part of the request (Starlette/FastAPI run sync endpoints and
dependencies in a thread pool with a copy of the context) is still seen by the middleware when
it records the request. Outside any scope, :func:`bind` sets a new frame for the current
context (thread or asyncio task) only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["RequestContext", "bind", "clear", "current", "scope"]

CONTEXT_FIELDS = ("ip", "user_agent", "request_id", "session_id", "location")


@dataclass(slots=True)
class RequestContext:
    """What is known about the current request. ``actor`` is an event actor object."""

    actor: dict[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    location: str | None = None
    client_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    in_scope: bool = False

    def event_context(self) -> dict[str, str]:
        """The event ``context`` object for these values (unset ones left out)."""
        out: dict[str, str] = {}
        if self.ip is not None:
            out["ip"] = self.ip
        if self.user_agent is not None:
            out["user_agent"] = self.user_agent
        if self.request_id is not None:
            out["request_id"] = self.request_id
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.location is not None:
            out["location"] = self.location
        return out

    def update(self, fields: Mapping[str, Any]) -> None:
        for key, value in fields.items():
            if key == "actor":
                self.actor = actor_object(value)
            elif key == "metadata":
                if value is not None:
                    self.metadata.update(value)
            elif key in _BINDABLE:
                setattr(self, key, value)
            else:
                raise TypeError(
                    f"bind() got an unknown field {key!r}; known fields are "
                    f"{', '.join(sorted(_BINDABLE | {'actor', 'metadata'}))}"
                )


_BINDABLE = frozenset({*CONTEXT_FIELDS, "client_id"})

_current: ContextVar[RequestContext | None] = ContextVar("auditkeep_request_context", default=None)


def actor_object(value: Any) -> dict[str, Any] | None:
    """``"user_1"`` becomes ``{"id": "user_1"}``; a mapping is copied; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, Mapping):
        return dict(value)
    return value  # type: ignore[no-any-return]  # normalize_event reports the wrong type


def current() -> RequestContext | None:
    """The current frame, or None when nothing was bound."""
    return _current.get()


def bind(**fields: Any) -> None:
    """Bind ``actor``, ``ip``, ``user_agent``, ``request_id``, ``session_id``, ``location``,
    ``client_id`` or extra ``metadata`` (merged into every event's metadata) for the current
    request (or, outside a request scope, the current thread / task)."""
    frame = _current.get()
    if frame is not None and frame.in_scope:
        frame.update(fields)
        return
    new = RequestContext() if frame is None else replace(frame, metadata=dict(frame.metadata))
    new.update(fields)
    _current.set(new)


def clear() -> None:
    """Forget everything bound in the current context (outside a scope)."""
    _current.set(None)


@contextmanager
def scope(**fields: Any) -> Iterator[RequestContext]:
    """A fresh frame for the duration of the block (one request), inheriting nothing."""
    frame = RequestContext(in_scope=True)
    frame.update(fields)
    token = _current.set(frame)
    try:
        yield frame
    finally:
        _current.reset(token)

"""Scoped reads: one tenant's events seen through a fixed filter, with fields hidden.

A viewer token (``auth.ViewerToken``) is bound to a :class:`ViewScope`. Its reads go through
:class:`ScopedEvents`, which wraps the tenant's :class:`~auditkeep.store.base.TenantEvents`:
every query's filters are first narrowed by the scope's (``narrow``: a request can only ask
for less, never for more; a request filter that contradicts the scope's matches nothing), and
every event read by id or seq is checked against the scope and looks absent when outside it.
Hidden fields are removed from every event served; the event keeps its leaf hash (``hash``)
and lists what was removed under ``redacted``, so its inclusion can still be proved even
though its content can no longer be hashed by the reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from auditkeep.store.base import EventFilter, PageRequest, StoredEvent, TenantEvents

_EXACT = ("actor_id", "target_id", "target_type", "outcome", "category")


@dataclass(frozen=True, slots=True)
class ViewScope:
    """What a viewer may see: events matching ``filters`` (every field set there is fixed),
    with the dotted ``hidden`` paths (e.g. ``context.ip``) removed."""

    filters: EventFilter
    hidden: tuple[str, ...] = ()


WHOLE_TENANT = ViewScope(EventFilter())
"""The scope of a ``"scope": "tenant"`` viewer token that hides nothing: every event."""


def narrow(fixed: EventFilter, asked: EventFilter) -> EventFilter | None:
    """The filter that matches what both ``fixed`` and ``asked`` match, or None when nothing
    can (e.g. ``actor_id`` differs): a request can narrow a scope, never widen it."""
    out: dict[str, Any] = {}
    for name in _EXACT:
        mine, theirs = getattr(fixed, name), getattr(asked, name)
        if mine is not None and theirs is not None and mine != theirs:
            return None
        out[name] = mine if mine is not None else theirs
    action, prefix = _narrow_action(fixed, asked)
    if action is False:
        return None
    out["action"], out["action_prefix"] = action, prefix
    sinces = [t for t in (fixed.since, asked.since) if t is not None]
    untils = [t for t in (fixed.until, asked.until) if t is not None]
    out["since"] = max(sinces) if sinces else None
    out["until"] = min(untils) if untils else None
    if out["since"] is not None and out["until"] is not None and out["since"] >= out["until"]:
        return None
    return EventFilter(**out)


def _narrow_action(fixed: EventFilter, asked: EventFilter) -> tuple[Any, str | None]:
    """``(action, action_prefix)`` of both; ``(False, None)`` when they exclude each other."""
    actions = {a for a in (fixed.action, asked.action) if a is not None}
    prefixes = [p for p in (fixed.action_prefix, asked.action_prefix) if p is not None]
    if len(actions) > 1:
        return False, None
    if actions:
        (action,) = actions
        if any(not action.startswith(p) for p in prefixes):
            return False, None
        return action, None
    if not prefixes:
        return None, None
    longest = max(prefixes, key=len)
    if any(not longest.startswith(p) for p in prefixes):
        return False, None
    return None, longest


def matches(f: EventFilter, event: StoredEvent) -> bool:
    """Whether ``event`` is one that a query with filters ``f`` returns."""
    if f.since is not None and event.occurred_at < f.since:
        return False
    if f.until is not None and event.occurred_at >= f.until:
        return False
    data = orjson.loads(event.leaf_data)
    action = data.get("action", "")
    if f.action is not None and action != f.action:
        return False
    if f.action_prefix is not None and not action.startswith(f.action_prefix):
        return False
    if f.actor_id is not None and (data.get("actor") or {}).get("id") != f.actor_id:
        return False
    for name in ("outcome", "category"):
        wanted = getattr(f, name)
        if wanted is not None and data.get(name) != wanted:
            return False
    if f.target_id is not None or f.target_type is not None:
        return any(
            (f.target_id is None or t.get("id") == f.target_id)
            and (f.target_type is None or t.get("type") == f.target_type)
            for t in data.get("targets") or ()
        )
    return True


def redact(event: StoredEvent, hidden: tuple[str, ...]) -> StoredEvent:
    """``event`` without the dotted paths ``hidden``; those it held are listed in
    ``redacted``. The leaf hash stays: it is what inclusion proofs are about."""
    if not hidden:
        return event
    data = orjson.loads(event.leaf_data)
    removed = tuple(path for path in hidden if _remove(data, path.split(".")))
    if not removed:
        return event
    return dataclasses.replace(
        event, leaf_data=orjson.dumps(data, option=orjson.OPT_SORT_KEYS), redacted=removed
    )


def _remove(data: Any, parts: list[str]) -> bool:
    for part in parts[:-1]:
        if not isinstance(data, dict) or not isinstance(data.get(part), dict):
            return False
        data = data[part]
    if isinstance(data, dict) and parts[-1] in data:
        del data[parts[-1]]
        return True
    return False


class ScopedEvents:
    """A tenant's events as a :class:`ViewScope` lets them be seen (a ``TenantEvents``)."""

    def __init__(self, events: TenantEvents, scope: ViewScope) -> None:
        self._events = events
        self.scope = scope
        self.tenant_id = events.tenant_id

    def query(self, page: PageRequest) -> list[StoredEvent]:
        filters = narrow(self.scope.filters, page.filters)
        if filters is None:
            return []
        rows = self._events.query(dataclasses.replace(page, filters=filters))
        return [redact(ev, self.scope.hidden) for ev in rows]

    def _visible(self, event: StoredEvent | None) -> StoredEvent | None:
        if event is None or not matches(self.scope.filters, event):
            return None
        return redact(event, self.scope.hidden)

    def get(self, event_id: str) -> StoredEvent | None:
        return self._visible(self._events.get(event_id))

    def after_seq(self, seq: int, limit: int) -> list[StoredEvent]:
        """The events in scope among the ``limit`` events after ``seq`` (fewer than
        ``limit``, possibly none, when some are outside the scope)."""
        found = (self._visible(ev) for ev in self._events.after_seq(seq, limit))
        return [ev for ev in found if ev is not None]

    def size(self) -> int:
        return self._events.size()

    def scan(self, batch: int = 5000) -> Iterator[StoredEvent]:
        for ev in self._events.scan(batch):
            visible = self._visible(ev)
            if visible is not None:
                yield visible

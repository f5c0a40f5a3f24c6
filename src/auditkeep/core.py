"""The core of one auditkeep process: store, writer, keys and the operations on them.

The HTTP API and the CLI both call into this; nothing here knows about HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from auditkeep.auth import (
    ADMIN,
    EVENTS_READ,
    OPERATOR,
    Authenticator,
    Principal,
    RateLimiter,
    ViewerTokens,
    check_slug,
    make_key,
)
from auditkeep.delivery.dispatcher import DeliverySettings, DeliveryStatusCollector, Dispatcher
from auditkeep.delivery.formats import FORMATS, ExportFormat
from auditkeep.delivery.manage import DestinationAdmin
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.secretbox import SecretBox
from auditkeep.errors import (
    AboveRateCeiling,
    BadRequest,
    ConfigError,
    Conflict,
    NotFound,
    ValidationFailed,
)
from auditkeep.ingest import GroupCommitWriter
from auditkeep.logwatch import LogWatch
from auditkeep.model import (
    EventValidationError,
    PreparedEvent,
    format_timestamp,
    now_micros,
    parse_timestamp,
    prepare_event,
)
from auditkeep.monitor.metrics import Metrics
from auditkeep.query import EVENT_FILTERS, Param, encode_cursor, parse_filters, parse_query
from auditkeep.settings import DEFAULT_LOG_ORIGIN, Config
from auditkeep.store import open_store
from auditkeep.store.base import (
    SYSTEM_TENANT_ID,
    SYSTEM_TENANT_SLUG,
    ApiKey,
    EventFilter,
    Position,
    Tenant,
    TenantEvents,
)
from auditkeep.store.scope import ScopedEvents, ViewScope
from auditkeep.translog import Checkpointer, KeyRing, TransparencyLog, check_key_name

log = logging.getLogger("auditkeep.core")

_MIN_METRICS_TOKEN = 16


def check_metrics_token(token: str) -> None:
    """A metrics_token, if set, must be a usable bearer token."""
    if token and (
        len(token) < _MIN_METRICS_TOKEN
        or not token.isascii()
        or not token.isprintable()
        or " " in token
    ):
        raise ConfigError(
            f"metrics_token must be at least {_MIN_METRICS_TOKEN} printable ASCII characters "
            "without spaces (e.g. the output of: openssl rand -hex 32)"
        )


EXPORT_PARAMS: tuple[Param, ...] = (
    Param("format", "ndjson (default), csv or ocsf", default="ndjson", enum=tuple(FORMATS)),
    *EVENT_FILTERS,
    Param("order", "asc (oldest first, default) or desc", default="asc", enum=("asc", "desc")),
)
"""The query parameters of GET /v1/export: the filters of GET /v1/events, a format, an order."""


DEFAULT_VIEWER_TTL = 900
HIDEABLE = ("context.", "metadata.")
HIDEABLE_FIELDS = ("reason", "actor.name")


def check_hidden_field(path: str) -> str:
    """A field a viewer token may hide: under context or metadata, the reason, the actor's
    name (an event's identity and what queries match stay visible)."""
    if not isinstance(path, str) or not (
        path in HIDEABLE_FIELDS
        or (path.startswith(HIDEABLE) and all(path.split(".")) and len(path) <= 256)
    ):
        raise BadRequest(
            f"hide_fields: {str(path)[:80]!r} cannot be hidden; hide a field under context. or "
            "metadata. (e.g. context.ip), reason or actor.name"
        )
    return path


class Core:
    """Components of one process, opened from a Config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        check_key_name(config.log_origin)
        check_metrics_token(config.metrics_token)
        self.metrics = Metrics()
        self.store = open_store(config)
        self.store.migrate()
        self.writer = GroupCommitWriter(
            self.store,
            max_batch=config.writer_max_batch,
            queue_limit=config.writer_queue_limit,
            metrics=self.metrics,
        )
        self.viewer_tokens = ViewerTokens(config.data_dir / "keys")
        self.auth = Authenticator(
            self.store,
            cache_seconds=config.key_cache_seconds,
            revocation_check=config.key_revocation_check,
            viewer_tokens=self.viewer_tokens,
        )
        self.rate_limiter = RateLimiter(config.rate_limit_rps, config.rate_limit_burst)
        self.keys = KeyRing(self.store, config.data_dir, config.log_origin)
        self.tlog = TransparencyLog(self.store, self.keys)
        self._check_log_name()
        self.checkpointer = Checkpointer(self.tlog, config.checkpoint_interval)
        self.log_watch = LogWatch()
        self.writer.on_commit(self.log_watch.notify)
        try:
            guard = NetGuard.from_setting(config.delivery_allow_networks)
        except ValueError as exc:
            self.store.close()
            raise ConfigError(f"delivery_allow_networks: {exc}") from None
        box = self.secret_box = SecretBox(config.data_dir / "keys")
        self._slugs: dict[int, str] = {}
        self.dispatcher = Dispatcher(
            self.store,
            box,
            guard,
            self.metrics,
            DeliverySettings(
                batch_size=config.delivery_batch_size,
                retry_base=config.delivery_retry_base,
                retry_cap=config.delivery_retry_cap,
                pause_after=config.delivery_pause_after,
                timeout=config.delivery_timeout,
                workers=max(1, config.delivery_workers),
            ),
            tenant_slug=self.tenant_slug,
            tenant_label=self.tenant_label,
        )
        self.writer.on_commit(self.dispatcher.wake)
        self.destinations = DestinationAdmin(self.store, box, guard, self.dispatcher.wake)
        self.metrics.registry.register(DeliveryStatusCollector(self.store, self.tenant_label))
        self._started = False

    def start(self) -> None:
        """Start the writer, the checkpoint signer (making the first signing key if none) and
        the delivery dispatcher."""
        self.keys.ensure_key()
        self.secret_box.ensure()
        self.viewer_tokens.ensure()
        self.auth.start()
        self.writer.start()
        self.checkpointer.start()
        self.dispatcher.start(sole=not self.config.database_url)
        self._started = True

    def tenant_slug(self, tenant_id: int) -> str:
        slug = self._slugs.get(tenant_id)
        if slug is None:
            self._slugs = {t.tenant_id: t.slug for t in self.store.list_tenants()}
            slug = self._slugs.get(tenant_id, str(tenant_id))
        return slug

    def tenant_label(self, tenant_id: int) -> str:
        """The tenant label of a metric series: see the metrics_tenant_label setting."""
        how = self.config.metrics_tenant_label
        if how == "slug":
            return self.tenant_slug(tenant_id)
        return str(tenant_id) if how == "id" else ""

    def render_metrics(self) -> bytes:
        """The Prometheus exposition, without the series of destinations deleted since (by
        any node). Reads the store: call it off the event loop."""
        self.metrics.forget_destinations({d.dest_id for d in self.store.all_destinations()})
        return self.metrics.render()

    def _check_log_name(self) -> None:
        """Once a signing key exists its name is the log's identity; an explicit, different
        log_origin is a mistake (the default just defers to the data directory)."""
        configured = self.config.log_origin
        name = self.keys.key_name
        if name != configured and configured != DEFAULT_LOG_ORIGIN:
            self.store.close()
            raise ConfigError(
                f"this data directory's logs are named {name!r} (the name of its checkpoint "
                f"signing key), but log_origin is {configured!r}. A log cannot be renamed: "
                "witnesses and verifiers would see a different log. Remove the log_origin "
                "setting, or set it to the existing name."
            )

    def close(self) -> None:
        """Finish queued writes, sign a last checkpoint, then close the store. Safe to call
        twice."""
        self.dispatcher.stop()
        self.checkpointer.stop()
        self.auth.stop()
        self.writer.stop()
        if self._started and self.config.checkpoint_interval > 0:
            self._started = False
            try:
                self.tlog.sign_all()
            except Exception:
                log.exception("signing the final checkpoints failed")
        self.store.close()
        log.info("writer drained and store closed")

    # -- operator bootstrap -----------------------------------------------------------------

    def ensure_operator_key(self) -> str | None:
        """On a store with no operator key, create one and return it (shown once)."""
        if any(k.revoked_at is None for k in self.store.list_keys(SYSTEM_TENANT_ID)):
            return None
        record, key = make_key(
            SYSTEM_TENANT_ID, SYSTEM_TENANT_SLUG, frozenset({OPERATOR}), name="operator"
        )
        self.store.create_key(record)
        log.info("created operator key %s", record.key_id)
        return key

    # -- tenants and keys -------------------------------------------------------------------

    def create_tenant(self, slug: str, name: str | None = None) -> Tenant:
        check_slug(slug)
        return self.store.create_tenant(slug, name or slug)

    def tenant(self, slug: str, principal: Principal | None = None) -> Tenant:
        """Look a tenant up; with a principal, one it may manage (others look absent)."""
        if principal is not None and principal.viewer is not None:
            principal.require(ADMIN)  # a viewer token manages nothing: 403, saying so
        tenant = self.store.get_tenant(slug) if slug != SYSTEM_TENANT_SLUG else None
        if tenant is None or (principal is not None and not principal.may_manage(tenant.tenant_id)):
            raise NotFound(f"no tenant named {slug!r} (or your key may not manage it)")
        return tenant

    def create_key(
        self,
        tenant: Tenant,
        scopes: frozenset[str],
        *,
        name: str = "",
        expires_at: int | None = None,
        rate_limit_rps: float | None = None,
        principal: Principal | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``tenant``. ``principal``: who asks over the API (None: the operator
        with the data directory); a tenant admin may not exceed the server's rate limit."""
        if expires_at is not None and expires_at <= now_micros():
            raise BadRequest("expires_at must be in the future")
        if rate_limit_rps is not None and rate_limit_rps < 0:
            raise BadRequest("rate_limit_rps must not be negative")
        if principal is not None and not principal.is_operator:
            self._check_rate_ceiling(rate_limit_rps)
        record, key = make_key(
            tenant.tenant_id,
            tenant.slug,
            scopes,
            name=name,
            expires_at=expires_at,
            rate_limit_rps=rate_limit_rps,
        )
        self.store.create_key(record)
        return record, key

    def _check_rate_ceiling(self, rate_limit_rps: float | None) -> None:
        """The operator's ``rate_limit_rps`` is a ceiling for keys made by tenant admins: 0
        (unlimited) or more than the ceiling is the operator's call alone."""
        ceiling = self.config.rate_limit_rps
        if ceiling <= 0 or rate_limit_rps is None:
            return  # no server-wide limit; or the key gets the server's default
        if rate_limit_rps == 0 or rate_limit_rps > ceiling:
            asked = "0 (unlimited)" if rate_limit_rps == 0 else f"{rate_limit_rps:g}"
            raise AboveRateCeiling(
                f"rate_limit_rps {asked} is above this server's limit of {ceiling:g} "
                f"requests/s per key, which tenant admins cannot exceed: choose a value "
                f"from above 0 up to {ceiling:g}, leave it out for the default, or ask the "
                "operator for a key with a higher limit",
                ceiling=ceiling,
            )

    def revoke_key(self, tenant: Tenant, key_id: str) -> ApiKey:
        record = self.store.revoke_key(tenant.tenant_id, key_id, now_micros())
        if record is None:
            raise NotFound(f"tenant {tenant.slug!r} has no key {key_id!r}")
        self.auth.forget(key_id)
        return record

    # -- reads ------------------------------------------------------------------------------

    def events(self, tenant_id: int, scope: ViewScope | None = None) -> TenantEvents:
        """A tenant's events, as a viewer token's ``scope`` lets them be seen if given."""
        events = self.store.events(tenant_id)
        return events if scope is None else ScopedEvents(events, scope)

    def query_events(
        self, tenant_id: int, params: Mapping[str, str], scope: ViewScope | None = None
    ) -> dict[str, Any]:
        """One page of GET /v1/events for a tenant: ``{"data": [...], "next_cursor": ...}``."""
        page = parse_query(params)
        rows = self.events(tenant_id, scope).query(page)
        cursor = None
        if len(rows) == page.limit:
            last = rows[-1]
            cursor = encode_cursor(Position(last.occurred_at, last.seq), page.descending)
        return {"data": [ev.to_json() for ev in rows], "next_cursor": cursor}

    def feed(self, tenant_id: int, after: int, limit: int) -> dict[str, Any]:
        """Events with seq > ``after`` in seq order, the log's current size, and the ``after``
        to ask with next (the last seq returned, or ``after`` again when there was none)."""
        if after < 0 or not 0 <= limit <= 1000:
            raise BadRequest("after must be >= 0 and limit between 0 and 1000")
        reader = self.store.events(tenant_id)
        size = reader.size()
        rows = reader.after_seq(after, limit) if limit else []
        return {
            "data": [ev.to_json() for ev in rows],
            "size": size,
            "next_after": rows[-1].seq if rows else after,
        }

    def export(
        self, tenant_id: int, params: Mapping[str, str]
    ) -> tuple[ExportFormat, Iterator[bytes]]:
        """Check an export request, then stream it: the format and its chunks (one per page of
        1,000 events, so memory stays constant however many events match). Filters are those
        of GET /v1/events; the order is oldest first unless ``order=desc``."""
        query = parse_query(params, EXPORT_PARAMS, what="export parameter")
        page = dataclasses.replace(query, limit=1000)
        fmt = FORMATS[params.get("format", "ndjson")]  # one of them: parse_query checked it
        reader = self.store.events(tenant_id)

        first = reader.query(page)  # before the answer starts: a failure here is a 503

        def chunks() -> Iterator[bytes]:
            nonlocal page
            yield fmt.header()
            rows = first
            while True:
                if rows:
                    yield fmt.page(rows)
                if len(rows) < page.limit:
                    return
                last = rows[-1]
                page = dataclasses.replace(page, after=Position(last.occurred_at, last.seq))
                rows = reader.query(page)

        return fmt, chunks()

    # -- viewer tokens ----------------------------------------------------------------------

    def mint_viewer_token(
        self,
        principal: Principal,
        *,
        actor_id: str | None = None,
        target: tuple[str, str] | None = None,
        filters: Mapping[str, str] | None = None,
        hide_fields: Sequence[str] = (),
        ttl_seconds: int = DEFAULT_VIEWER_TTL,
        whole_tenant: bool = False,
    ) -> tuple[str, int, PreparedEvent]:
        """A viewer token for ``principal``'s tenant: ``(token, expires_at, the event that
        records its issuance)``. The caller appends the event before handing the token out."""
        principal.require_tenant_scope(EVENTS_READ)
        fixed = parse_filters(filters or {}, what="filters field")
        for name, value in (
            ("actor_id", actor_id),
            ("target_type", target[0] if target else None),
            ("target_id", target[1] if target else None),
        ):
            if value is None:
                continue
            if value == "":
                raise BadRequest(f"{name} must not be empty")
            if getattr(fixed, name) not in (None, value):
                raise BadRequest(f"{name} is given twice, with different values")
            fixed = dataclasses.replace(fixed, **{name: value})  # type: ignore[arg-type]
        if fixed == EventFilter() and not whole_tenant:
            raise BadRequest(
                "a viewer token needs a scope: give actor_id, target or filters; for a token "
                'that reads every event of the tenant, ask for it with "scope": "tenant"'
            )
        if fixed != EventFilter() and whole_tenant:
            raise BadRequest(
                '"scope": "tenant" cannot be combined with actor_id, target or filters'
            )
        hidden = tuple(dict.fromkeys(check_hidden_field(p) for p in hide_fields))
        scope = ViewScope(fixed, hidden)
        token, minted = self.viewer_tokens.mint(principal.key, scope, ttl_seconds)
        described: dict[str, Any] = {"tenant": True} if whole_tenant else {}
        for name in EventFilter.__dataclass_fields__:
            value = getattr(fixed, name)
            if value is not None:
                described[name] = format_timestamp(value) if name in ("since", "until") else value
        event = self.change_event(
            principal,
            "auditkeep.viewer_token.created",
            category="access",
            metadata={
                "token_id": minted.token_id,
                "scope": described,
                "hide_fields": list(hidden),
                "ttl_seconds": ttl_seconds,
                "expires_at": format_timestamp(minted.expires_at),
            },
        )
        return token, minted.expires_at, event

    def change_event(
        self,
        principal: Principal,
        action: str,
        *,
        metadata: Mapping[str, Any],
        category: str = "audit",
        targets: Sequence[Mapping[str, str]] = (),
        reason: str | None = None,
    ) -> PreparedEvent:
        """An event recording something the service did at ``principal``'s request (a viewer
        token minted, a policy or rule changed): actor = the API key, ``action`` under
        ``auditkeep.``. The caller appends it to the principal's tenant with the change, so a
        tenant's own log is the change history of its settings."""
        now = now_micros()
        raw: dict[str, Any] = {
            "action": action,
            "occurred_at": format_timestamp(now),
            "actor": {"type": "api_key", "id": principal.key.key_id},
            "category": category,
            "metadata": dict(metadata),
        }
        if targets:
            raw["targets"] = [dict(t) for t in targets]
        if reason:
            raw["reason"] = reason
        return prepare_event(raw, principal.tenant_slug, now)

    # -- ingest -----------------------------------------------------------------------------

    def prepare(
        self, raw_events: Sequence[Any], tenant_slug: str
    ) -> tuple[list[dict[str, Any] | None], list[tuple[int, PreparedEvent]]]:
        """Validate every event; return per-index rejections and the prepared ones."""
        received = now_micros()
        results: list[dict[str, Any] | None] = [None] * len(raw_events)
        prepared: list[tuple[int, PreparedEvent]] = []
        budget = RESPONSE_ERRORS  # problems listed in the whole answer, so its size is bounded
        for i, raw in enumerate(raw_events):
            try:
                prepared.append((i, prepare_event(raw, tenant_slug, received)))
            except EventValidationError as exc:
                results[i] = {"index": i, **rejected(raw, exc, budget)}
                budget -= min(budget, len(exc.errors))
        return results, prepared

    def settle(
        self,
        results: list[dict[str, Any] | None],
        prepared: list[tuple[int, PreparedEvent]],
        appended: Sequence[Any],
    ) -> list[dict[str, Any]]:
        """Merge writer results into per-event results and count them."""
        for (i, ev), res in zip(prepared, appended, strict=True):
            if res.status == "conflict":
                results[i] = {
                    "index": i,
                    "id": ev.id,
                    "status": "rejected",
                    "error": Conflict(
                        f"event id {ev.id!r} is already stored (seq {res.seq}) with different "
                        "content; ids are idempotency keys: a retry must resend the same event"
                    ).to_problem(),
                }
            else:
                results[i] = {"index": i, "id": ev.id, "status": res.status, "seq": res.seq}
        final = [r for r in results if r is not None]
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for r in final:
            counts[r["status"]] += 1
        for status, n in counts.items():
            if n:
                self.metrics.events_ingested.labels(status).inc(n)
        return final


def parse_expiry(text: str | None) -> int | None:
    """A key's ``expires_at`` (RFC 3339) as microseconds; BadRequest if it is not one."""
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise BadRequest(f"expires_at: {exc}") from None


RESPONSE_ERRORS = 1000
"""Most schema problems one ingest answer lists, over all its events (each event lists at most
auditkeep_client.schema.MAX_ERRORS); the rest are counted in ``errors_omitted``."""


def rejected(raw: Any, exc: EventValidationError, budget: int = RESPONSE_ERRORS) -> dict[str, Any]:
    """The per-event result of an event that failed validation, listing at most ``budget`` of
    its problems (and counting the rest)."""
    event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    listed = exc.errors[: max(0, budget)]
    omitted = exc.total - len(listed)
    if listed:
        problem = ValidationFailed(str(exc), errors=[e.as_dict() for e in listed])
    else:
        problem = ValidationFailed(
            f"the event breaks the schema in {exc.total} place(s); this answer lists the "
            "problems of earlier events only: send this event alone to see them"
        )
    if omitted:
        problem.extra["errors_omitted"] = omitted
    return {"id": event_id, "status": "rejected", "error": problem.to_problem()}

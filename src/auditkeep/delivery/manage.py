"""Managing destinations: create, change, pause, resume, rotate secrets, delete.

Both the HTTP API (``/v1/tenants/{tenant}/destinations``) and the CLI in data-directory mode
call this with a request body (a dict), so both check input the same way and answer the same
JSON. Secrets are sealed before they reach the store and never appear in any answer, except a
secret the server made itself (a webhook signing secret), shown once in the answer that made it.
"""

from __future__ import annotations

import re
import secrets as _secrets
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from auditkeep.bodies import check_body
from auditkeep.delivery.base import Secrets
from auditkeep.delivery.dispatcher import destination_status
from auditkeep.delivery.kinds import KIND_NAMES, get_kind
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.secretbox import SecretBox
from auditkeep.errors import InvalidDestination, NotFound
from auditkeep.model import format_timestamp, now_micros
from auditkeep.store.base import Destination, Store, Tenant

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_MAX_PREVIOUS_SECRETS = 3

_NAME_TEXT = Annotated[
    str,
    msgspec.Meta(
        description="1-64 of letters, digits, space, '.', '_', '-'",
        extra_json_schema={"pattern": f"^{_NAME.pattern}$"},
    ),
]
_CONFIG = Annotated[dict[str, Any], msgspec.Meta(description="Per kind: see docs/delivery.md")]
_SECRET = Annotated[
    str, msgspec.Meta(description="The kind's credential (write-only, never shown again)")
]


class NewDestination(msgspec.Struct, forbid_unknown_fields=True):
    """The body that creates a destination (its fields: ``check_body``; their values: the
    checks below, which answer 422 naming the field)."""

    name: _NAME_TEXT
    kind: Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(KIND_NAMES)})]
    config: _CONFIG
    secret: _SECRET | None = None
    start: (
        Annotated[
            str,
            msgspec.Meta(
                description="beginning (deliver the whole log, default) or now (new events)",
                extra_json_schema={"enum": ["beginning", "now"]},
            ),
        ]
        | None
    ) = None


class DestinationChange(msgspec.Struct, forbid_unknown_fields=True):
    """The body that changes a destination: any of name, config (replaced whole), secret."""

    name: _NAME_TEXT | None = None
    config: _CONFIG | None = None
    secret: _SECRET | None = None


class SecretRotation(msgspec.Struct, forbid_unknown_fields=True):
    """The body of rotate-secret (optional)."""

    secret: _SECRET | None = None
    keep_previous: (
        Annotated[
            bool,
            msgspec.Meta(description="Keep signing with the previous secrets (webhooks)"),
        ]
        | None
    ) = None


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidDestination(
            "name must be 1-64 characters: letters, digits, space, '.', '_' or '-', "
            "starting with a letter or digit",
            errors=[{"path": "name", "message": "1-64 of [A-Za-z0-9 ._-]"}],
        )
    return value


def _when(micros: int | None) -> str | None:
    return format_timestamp(micros) if micros is not None else None


class DestinationAdmin:
    """The destination operations of one process."""

    def __init__(
        self, store: Store, box: SecretBox, guard: NetGuard, wake: Callable[[], None]
    ) -> None:
        self.store = store
        self.box = box
        self.guard = guard
        self._wake = wake

    def to_json(self, tenant: Tenant, dest: Destination) -> dict[str, Any]:
        secrets = self.box.open(dest.tenant_id, dest.dest_id, dest.secret)
        return {
            "id": dest.dest_id,
            "tenant": tenant.slug,
            "name": dest.name,
            "kind": dest.kind,
            "config": dest.config,
            "state": dest.state,
            "paused_reason": dest.paused_reason,
            "cursor": dest.cursor,
            "delivered": dest.delivered,
            **destination_status(self.store, dest),
            "attempts": dest.attempts,
            "last_error": dest.last_error,
            "failing_since": _when(dest.failing_since),
            "last_attempt_at": _when(dest.last_attempt_at),
            "last_success_at": _when(dest.last_success_at),
            "next_attempt_at": _when(dest.next_attempt_at),
            "secrets": len(secrets.all),
            "created_at": _when(dest.created_at),
            "updated_at": _when(dest.updated_at),
        }

    def _get(self, tenant: Tenant, dest_id: str) -> Destination:
        dest = self.store.destinations(tenant.tenant_id).get(dest_id)
        if dest is None:
            raise NotFound(f"tenant {tenant.slug!r} has no destination {dest_id[:80]!r}")
        return dest

    def _secret(self, kind_name: str, value: Any) -> str:
        kind = get_kind(kind_name)
        if kind.credential_help is None:
            raise InvalidDestination(f"a {kind_name} destination takes no secret")
        if not isinstance(value, str):
            raise InvalidDestination("secret must be a string")
        try:
            kind.check_secret(value)
        except ValueError as exc:
            raise InvalidDestination(
                f"secret: {exc}", errors=[{"path": "secret", "message": str(exc)}]
            ) from None
        return value

    # -- operations -------------------------------------------------------------------------

    def create(self, tenant: Tenant, body: Any) -> dict[str, Any]:
        body = check_body(body, NewDestination)
        if not isinstance(body["kind"], str):
            raise InvalidDestination(f"kind must be a string: one of {', '.join(KIND_NAMES)}")
        kind = get_kind(body["kind"])
        name = _name(body["name"])
        config = kind.check_config(body["config"], self.guard)
        shown: str | None = None
        if body.get("secret") is not None:
            secret = self._secret(kind.name, body["secret"])
        elif kind.generates_secret:
            from auditkeep.delivery.webhook import new_secret

            secret = shown = new_secret()
        elif kind.credential_help is not None:
            raise InvalidDestination(
                f"a {kind.name} destination needs its {kind.credential_help} in 'secret'",
                errors=[{"path": "secret", "message": "required"}],
            )
        else:
            secret = None
        start = body.get("start", "beginning")
        if start not in ("beginning", "now"):
            raise InvalidDestination(
                "start must be 'beginning' (deliver the whole log) or 'now' (only new events)"
            )
        cursor = self.store.events(tenant.tenant_id).size() if start == "now" else 0
        dest_id = "dst_" + _secrets.token_hex(8)
        now = now_micros()
        sealed = self.box.seal(tenant.tenant_id, dest_id, Secrets(secret)) if secret else None
        dest = Destination(
            tenant_id=tenant.tenant_id,
            dest_id=dest_id,
            name=name,
            kind=kind.name,
            config=config,
            secret=sealed,
            state="active",
            paused_reason=None,
            cursor=cursor,
            batch_end=None,
            attempts=0,
            failing_since=None,
            next_attempt_at=None,
            last_error=None,
            last_attempt_at=None,
            last_success_at=None,
            delivered=0,
            created_at=now,
            updated_at=now,
        )
        self.store.destinations(tenant.tenant_id).create(dest)
        self._wake()
        out = self.to_json(tenant, dest)
        if shown is not None:
            out["secret"] = shown
        return out

    def list(self, tenant: Tenant) -> list[dict[str, Any]]:
        return [self.to_json(tenant, d) for d in self.store.destinations(tenant.tenant_id).list()]

    def get(self, tenant: Tenant, dest_id: str) -> dict[str, Any]:
        return self.to_json(tenant, self._get(tenant, dest_id))

    def update(self, tenant: Tenant, dest_id: str, body: Any) -> dict[str, Any]:
        body = check_body(body, DestinationChange)
        dest = self._get(tenant, dest_id)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _name(body["name"])
        if "config" in body:
            changes["config"] = get_kind(dest.kind).check_config(body["config"], self.guard)
        if "secret" in body:
            secret = self._secret(dest.kind, body["secret"])
            changes["secret"] = self.box.seal(tenant.tenant_id, dest_id, Secrets(secret))
        if changes:
            # a changed receiver gets a fresh start: no backoff, no failure streak (the batch
            # in flight stays the same)
            changes |= {"next_attempt_at": None, "attempts": 0, "failing_since": None}
            self.store.destinations(tenant.tenant_id).update(dest_id, **changes)
            self._wake()
        return self.get(tenant, dest_id)

    def pause(self, tenant: Tenant, dest_id: str, reason: str | None = None) -> dict[str, Any]:
        self._get(tenant, dest_id)
        self.store.destinations(tenant.tenant_id).update(
            dest_id, state="paused", paused_reason=(reason or "paused by an operator")[:300]
        )
        return self.get(tenant, dest_id)

    def resume(self, tenant: Tenant, dest_id: str) -> dict[str, Any]:
        """Active again, with an immediate attempt; the batch in flight stays the same."""
        self._get(tenant, dest_id)
        self.store.destinations(tenant.tenant_id).update(
            dest_id,
            state="active",
            paused_reason=None,
            attempts=0,
            failing_since=None,
            next_attempt_at=None,
        )
        self._wake()
        return self.get(tenant, dest_id)

    def rotate_secret(self, tenant: Tenant, dest_id: str, body: Any) -> dict[str, Any]:
        """A new current secret (made by the server for webhooks, else given in ``secret``).
        Webhooks keep signing with the previous ones too, so receivers switch at their pace;
        ``{"keep_previous": false}`` alone then drops them (with a ``secret``: a switch with
        no overlap)."""
        body = check_body(body if body is not None else {}, SecretRotation)
        dest = self._get(tenant, dest_id)
        kind = get_kind(dest.kind)
        keep = body.get("keep_previous", kind.generates_secret)
        if not isinstance(keep, bool):
            raise InvalidDestination("keep_previous must be true or false")
        old = self.box.open(tenant.tenant_id, dest_id, dest.secret)
        shown: str | None = None
        if body.get("secret") is not None:
            new = self._secret(dest.kind, body["secret"])
        elif body.get("keep_previous") is False and old.current:
            new = old.current  # finishing a rotation: only the previous secrets go
        elif kind.generates_secret:
            from auditkeep.delivery.webhook import new_secret

            new = shown = new_secret()
        else:
            raise InvalidDestination(f"give the new {kind.credential_help} in 'secret'")
        previous: tuple[str, ...] = ()
        if keep and kind.generates_secret:
            previous = tuple(s for s in old.all if s != new)[:_MAX_PREVIOUS_SECRETS]
        sealed = self.box.seal(tenant.tenant_id, dest_id, Secrets(new, previous))
        self.store.destinations(tenant.tenant_id).update(dest_id, secret=sealed)
        out = self.get(tenant, dest_id)
        if shown is not None:
            out["secret"] = shown
        return out

    def delete(self, tenant: Tenant, dest_id: str) -> None:
        if not self.store.destinations(tenant.tenant_id).delete(dest_id):
            raise NotFound(f"tenant {tenant.slug!r} has no destination {dest_id[:80]!r}")

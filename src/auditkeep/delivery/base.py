"""The seam between the dispatcher and the places events are delivered to.

A destination *kind* (webhook, splunk_hec, syslog, s3) is a :class:`Kind`: it checks a
destination's configuration when the destination is created or changed, and makes a
:class:`Sender` for it. The dispatcher (``delivery/dispatcher.py``) owns the cursor, the
batching, the retry schedule and the pause; a sender only sends one batch and says how it went:
it returns when the receiver has taken the whole batch, and raises :class:`DeliveryFailed`
otherwise. A sender is used by one thread at a time and never retries by itself.

Batches are fixed once first attempted: a retry sends exactly the same events (the same seq
range), so receivers can deduplicate by batch id as well as by event id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from auditkeep.delivery.netguard import NetGuard
from auditkeep.errors import InvalidDestination
from auditkeep.store.base import StoredEvent


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive events of one tenant's log, ``first_seq..last_seq`` inclusive."""

    tenant_id: int
    tenant_slug: str
    destination_id: str
    events: Sequence[StoredEvent]

    @property
    def first_seq(self) -> int:
        return self.events[0].seq

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq

    @property
    def batch_id(self) -> str:
        """Stable across retries of this batch: ``<destination>-<first seq>-<last seq>``."""
        return f"{self.destination_id}-{self.first_seq}-{self.last_seq}"


class DeliveryFailed(Exception):
    """The receiver did not take the batch; the dispatcher retries it later.

    ``retry_after`` (seconds) is the receiver's own request (HTTP Retry-After), honoured as a
    lower bound on the next delay. ``status`` is the HTTP status where there was one.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status = status


class Sender(Protocol):
    def send(self, batch: Batch) -> None:
        """Deliver the batch, or raise :class:`DeliveryFailed`."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Secrets:
    """A destination's secrets, decrypted. ``current`` signs or authenticates; ``previous``
    are older webhook secrets still honoured during a rotation (they sign too)."""

    current: str | None = None
    previous: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return ((self.current,) if self.current else ()) + self.previous


@dataclass(frozen=True, slots=True)
class SenderContext:
    """What a sender may use besides its own configuration."""

    guard: NetGuard
    timeout: float = 10.0
    hostname: str = "auditkeep"
    extra: Mapping[str, Any] = field(default_factory=dict)


class Kind:
    """A destination kind. Subclasses set ``name``, ``fields``, ``secret`` and implement
    :meth:`make_sender`; :meth:`check_config` validates a configuration object."""

    name: ClassVar[str]
    #: configuration fields: name -> (type, required, help)
    fields: ClassVar[Mapping[str, tuple[type, bool, str]]]
    #: what the kind's secret is, for help texts (None: the kind has no secret)
    credential_help: ClassVar[str | None] = None
    #: the server makes a secret when none is given (webhook signing secrets)
    generates_secret: ClassVar[bool] = False

    def check_config(self, config: Any, guard: NetGuard) -> dict[str, Any]:
        """The configuration, checked: unknown fields, types, required fields, then
        :meth:`check_values`. Raises InvalidDestination with every problem."""
        if not isinstance(config, dict):
            raise InvalidDestination(f"config must be a JSON object for a {self.name} destination")
        errors: list[dict[str, str]] = []
        for key in sorted(set(config) - set(self.fields)):
            errors.append(
                {
                    "path": f"config.{key}",
                    "message": f"unknown field; a {self.name} destination takes "
                    + ", ".join(sorted(self.fields)),
                }
            )
        out: dict[str, Any] = {}
        for key, (typ, required, _help) in self.fields.items():
            if key not in config or config[key] is None:
                if required:
                    errors.append({"path": f"config.{key}", "message": "required"})
                continue
            value = config[key]
            ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok:
                errors.append({"path": f"config.{key}", "message": f"must be a {_type_name(typ)}"})
                continue
            out[key] = value
        if not errors:
            errors = self.check_values(out, guard)
        if errors:
            raise InvalidDestination(
                f"{self.name} destination: "
                + "; ".join(f"{e['path']}: {e['message']}" for e in errors),
                errors=errors,
            )
        return out

    def check_values(self, config: dict[str, Any], guard: NetGuard) -> list[dict[str, str]]:
        """Kind-specific checks of a well-typed configuration (URLs, ranges, SSRF)."""
        return []

    def check_secret(self, secret: str) -> None:
        """Raise ValueError if ``secret`` cannot be this kind's secret."""
        if not secret or len(secret) > 4096:
            raise ValueError("the secret must be 1 to 4,096 characters")
        if not secret.isprintable() or secret != secret.strip():
            raise ValueError(
                "the secret must be printable, without leading or trailing white space or "
                "line breaks (a pasted token often ends in a newline)"
            )

    def make_sender(
        self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext
    ) -> Sender:
        raise NotImplementedError


_TYPE_NAMES: dict[type, str] = {
    str: "string",
    int: "whole number",
    float: "number",
    bool: "boolean",
    dict: "JSON object",
    list: "list",
}


def _type_name(typ: type) -> str:
    return _TYPE_NAMES.get(typ, typ.__name__)

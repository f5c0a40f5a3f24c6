"""The destination kinds, by name. Each kind's module is imported when first used."""

from __future__ import annotations

import importlib

from auditkeep.delivery.base import Kind
from auditkeep.errors import InvalidDestination

_KINDS: dict[str, str] = {
    "webhook": "auditkeep.delivery.webhook:WebhookKind",
    "splunk_hec": "auditkeep.delivery.splunk:SplunkKind",
    "syslog": "auditkeep.delivery.syslog:SyslogKind",
    "s3": "auditkeep.delivery.s3:S3Kind",
}
_loaded: dict[str, Kind] = {}

KIND_NAMES: tuple[str, ...] = tuple(_KINDS)


def get_kind(name: str) -> Kind:
    """The kind named ``name``; InvalidDestination naming the kinds there are otherwise."""
    kind = _loaded.get(name)
    if kind is None:
        target = _KINDS.get(name)
        if target is None:
            raise InvalidDestination(
                f"unknown destination kind {name!r}; use one of {', '.join(KIND_NAMES)}",
                errors=[{"path": "kind", "message": f"one of {', '.join(KIND_NAMES)}"}],
            )
        module, attr = target.split(":")
        kind = _loaded[name] = getattr(importlib.import_module(module), attr)()
    return kind

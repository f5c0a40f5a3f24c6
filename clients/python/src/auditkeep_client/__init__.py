"""auditkeep-client: the Python SDK for auditkeep.

``AuditKeep.log()`` validates an event with the server's own rules, stores it durably in a
local SQLite outbox and returns its id; a background thread delivers it, retrying until the
server has it, exactly once. See docs/sdk.md.
"""

from __future__ import annotations

from . import context
from .client import AsyncAuditKeep, AuditKeep, Recorder
from .errors import AuditKeepError, ClientClosed, OutboxFull
from .outbox import DeadLetter, Outbox, OutboxStats
from .redaction import REDACTED, RedactKeys, RedactValues, ValuePattern, default_processors
from .schema import EventValidationError, FieldError, new_event_id
from .sender import RetryPolicy, SenderStatus
from .testing import CapturedEvents, capture_events

__version__ = "0.1.0"

__all__ = [
    "REDACTED",
    "AsyncAuditKeep",
    "AuditKeep",
    "AuditKeepError",
    "CapturedEvents",
    "ClientClosed",
    "DeadLetter",
    "EventValidationError",
    "FieldError",
    "Outbox",
    "OutboxFull",
    "OutboxStats",
    "Recorder",
    "RedactKeys",
    "RedactValues",
    "RetryPolicy",
    "SenderStatus",
    "ValuePattern",
    "__version__",
    "capture_events",
    "context",
    "default_processors",
    "new_event_id",
]

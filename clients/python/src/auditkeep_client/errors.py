"""Exceptions raised by the SDK at the call site."""

from __future__ import annotations

from .schema import EventValidationError, FieldError

__all__ = [
    "AuditKeepError",
    "ClientClosed",
    "EventValidationError",
    "FieldError",
    "OutboxFull",
    "describe",
]


class AuditKeepError(Exception):
    """Base class of the SDK's own exceptions (EventValidationError is a ValueError instead)."""


class OutboxFull(AuditKeepError):
    """The outbox cannot take this event: the disk is full or a configured cap is reached.

    The event was *not* stored. With ``on_full="block"`` this is raised only after waiting
    ``full_timeout`` seconds for room.
    """

    def __init__(self, message: str, *, pending_events: int = -1, pending_bytes: int = -1) -> None:
        super().__init__(message)
        self.pending_events = pending_events
        self.pending_bytes = pending_bytes


class ClientClosed(AuditKeepError):
    """log() was called on a client after close()."""


def describe(exc: BaseException) -> str:
    """A description of a failure to log that carries no event payload (safe for logs):
    validation errors name the offending fields, not their values."""
    if isinstance(exc, EventValidationError):
        fields = ", ".join(e.path or "(event)" for e in exc.errors[:10])
        return f"EventValidationError in {fields}"
    if isinstance(exc, AuditKeepError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__

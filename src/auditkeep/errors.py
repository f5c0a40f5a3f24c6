"""The exception tree. Every error a client can cause carries its HTTP status.

    AuditkeepError
    ├── ConfigError              bad settings or start-up configuration (not HTTP)
    ├── StoreError               the store failed (wraps the driver's error)
    │   └── StoreUnavailable     the store cannot be used right now -> 503
    └── ProblemError             rendered as RFC 9457 problem+json by the API
        ├── BadRequest           400  malformed JSON, bad query parameters, bad cursor
        ├── Unauthorized         401  missing, malformed, unknown, expired or revoked key
        ├── Forbidden            403  the key lacks the scope
        │   └── AboveRateCeiling 403  a tenant admin asks for more than the server's rate limit
        ├── NotFound             404  no such resource (or another tenant's)
        ├── Conflict             409  same event id, different content; name taken
        ├── PayloadTooLarge      413
        ├── UnsupportedMediaType 415
        ├── ValidationFailed     422  the JSON is well-formed but breaks the schema
        │   └── InvalidDestination    422  a destination's name, kind, config or secret
        ├── TooManyRequests      429  rate limited (Retry-After)
        └── ServiceUnavailable   503  overloaded or store unavailable (Retry-After)

Driver errors are mapped at the store boundary with ``raise StoreError(...) from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://auditkeep.dev/problems/"


class AuditkeepError(Exception):
    """Base of every auditkeep error."""


class ConfigError(AuditkeepError):
    """Settings or environment are wrong; the message says which and how to fix it."""


class StoreError(AuditkeepError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be used right now (locked, disk full, database away)."""


class ProblemError(AuditkeepError):
    """An error with an HTTP status, rendered as RFC 9457 problem details."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.retry_after = retry_after
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "The API key lacks the required scope"


class AboveRateCeiling(Forbidden):
    slug, title = "rate-limit-ceiling", "Above the server's rate limit"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation", "The event does not match the schema"


class InvalidDestination(ValidationFailed):
    """A delivery destination's name, kind, configuration or secret is not acceptable."""

    status, slug, title = 422, "invalid-destination", "The destination's configuration is invalid"


class TooManyRequests(ProblemError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "unavailable", "Service unavailable"

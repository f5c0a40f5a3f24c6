"""Every server setting, declared once.

Each setting has a name, a type, a default and help text here. CLI flags of ``auditkeep serve``,
``AUDITKEEP_<NAME>`` environment variables and docs/configuration.md all derive from this table;
a test checks that every setting is documented. Unknown settings are an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from auditkeep.errors import ConfigError

ENV_PREFIX = "AUDITKEEP_"
DEFAULT_LOG_ORIGIN = "auditkeep.local"


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    check: Callable[[Any], object] | None = None  # raises ConfigError on a bad value


def parse_origins(text: str) -> list[str]:
    """``cors_allow_origins``: comma-separated origins such as https://app.example.com."""
    origins = [o.strip().rstrip("/") for o in text.split(",") if o.strip()]
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ConfigError(
                f"cors_allow_origins: {origin!r} is not an origin; write scheme://host[:port], "
                "e.g. https://app.example.com (comma-separated for several)"
            )
    return origins


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", Path, Path("./auditkeep-data"), "Directory holding the SQLite store."),
    Setting(
        "database_url",
        str,
        "",
        "PostgreSQL instead of the embedded SQLite store: a libpq URL such as "
        "postgresql://auditkeep:PASSWORD@db1:5432,db2:5432/auditkeep"
        "?target_session_attrs=read-write (several hosts: the node follows a failover). "
        "Empty: SQLite in data_dir. The data directory still holds keys/ (signing and "
        "delivery keys), which every API node needs a copy of.",
    ),
    Setting(
        "database_pool_size",
        int,
        10,
        "Most database connections one API node keeps open: its PostgreSQL pool, or with "
        "SQLite its read connections (shared by every thread, plus the one write "
        "connection).",
    ),
    Setting(
        "database_write_timeout",
        float,
        5.0,
        "Seconds a PostgreSQL write transaction (an ingest group commit included; schema "
        "migrations excepted) may take "
        "before the node abandons its connection and answers 503: a primary that stops "
        "answering (hung, network black hole) cannot hold writes for longer. The outcome of "
        "such a write is unknown, and clients retry it with the same event ids, which is safe. "
        "0 waits for ever.",
    ),
    Setting("host", str, "127.0.0.1", "Address the HTTP server binds to."),
    Setting("port", int, 8080, "TCP port the HTTP server listens on (0 picks a free one)."),
    Setting(
        "durability",
        str,
        "full",
        "full: every acknowledged batch is fsynced before the ack (survives power loss). "
        "normal: acknowledged once in the OS page cache (survives a process crash, "
        "may lose the last acknowledged batches on power loss; faster).",
        choices=("full", "normal"),
    ),
    Setting("max_body_bytes", int, 5 * 1024 * 1024, "Largest accepted request body, in bytes."),
    Setting(
        "header_timeout",
        float,
        10.0,
        "Seconds a client has to send a request line and headers, from connecting or from the "
        "end of the previous response; then 408 and the connection is closed (slow or idle "
        "clients cannot hold connections). 0 disables.",
    ),
    Setting(
        "body_timeout",
        float,
        60.0,
        "Seconds a client has to send a request body once its headers arrived; then 408 and "
        "the connection is closed. 0 disables.",
    ),
    Setting(
        "max_connections",
        int,
        1000,
        "Most open client connections. Past it, requests are answered 503 (Retry-After) and "
        "closed; past it by 64, connections are closed at once. Lowered at start if the "
        "open-file limit (ulimit -n) cannot hold it plus 320.",
    ),
    Setting("max_batch_events", int, 1000, "Most events accepted in one batch request."),
    Setting(
        "rate_limit_rps",
        float,
        10000.0,
        "Default requests per second allowed per API key (token bucket; 0 disables). "
        "A key's own limit, set when it is created, takes precedence; tenant admins cannot "
        "give a key more than this (or 0), only the operator can.",
    ),
    Setting("rate_limit_burst", float, 20000.0, "Token bucket size for the default rate limit."),
    Setting(
        "writer_max_batch",
        int,
        5000,
        "Most events the group-commit writer puts in one transaction.",
    ),
    Setting(
        "writer_queue_limit",
        int,
        200000,
        "Events waiting for the writer beyond which ingest answers 503 with Retry-After.",
    ),
    Setting(
        "console_idle_timeout",
        float,
        1800.0,
        "Seconds a /console session lasts without a request before it must sign in again "
        "(each page view extends it; a session ends after 12 hours regardless).",
    ),
    Setting(
        "key_cache_seconds",
        float,
        5.0,
        "How long a verified API key is cached in memory (0: no cache, every request reads "
        "the store). A revocation empties the cache sooner: see key_revocation_check.",
    ),
    Setting(
        "key_revocation_check",
        float,
        0.25,
        "Seconds between looks at the store for API keys revoked by another process or node "
        "(auditkeep keys revoke --data-dir beside a running server, another API node): such a "
        "key stops working here within this time. A revocation through this server takes "
        "effect at once. 0: no looks (then within key_cache_seconds).",
    ),
    Setting(
        "ready_commit_timeout",
        float,
        15.0,
        "/readyz answers 503 while a commit has been running longer than this many seconds "
        "(e.g. PostgreSQL waiting for a synchronous standby that is gone). 0 disables.",
    ),
    Setting(
        "log_origin",
        str,
        DEFAULT_LOG_ORIGIN,
        "Name of this server's verifiable logs: tenant T's checkpoints carry the origin "
        "<log_origin>/T and are signed with a key named <log_origin>. Use a name you control, "
        "e.g. audit.example.com. It is fixed when the first signing key is made (first start); "
        "later it must be left unset or equal.",
    ),
    Setting(
        "checkpoint_interval",
        float,
        60.0,
        "Seconds between signed checkpoints of each tenant's log (one is signed only when the "
        "log grew, and at shutdown). 0 disables the background signer.",
    ),
    Setting(
        "delivery_allow_networks",
        str,
        "",
        "Networks (CIDRs, comma-separated, e.g. 10.0.0.0/8,127.0.0.1/32; or *) that delivery "
        "may connect to although they are private, loopback or reserved. Empty: public "
        "addresses only (SSRF protection).",
    ),
    Setting("delivery_batch_size", int, 500, "Most events per delivered batch."),
    Setting(
        "delivery_retry_base",
        float,
        1.0,
        "Seconds before the first retry of a failed batch; doubles with every failure.",
    ),
    Setting("delivery_retry_cap", float, 300.0, "Longest wait between two delivery attempts."),
    Setting(
        "delivery_pause_after",
        float,
        86400.0,
        "A destination failing for this many seconds is paused (resume it by API or CLI).",
    ),
    Setting("delivery_timeout", float, 10.0, "Seconds to wait for a receiver's answer."),
    Setting("delivery_workers", int, 4, "Destinations delivered to at the same time."),
    Setting(
        "feed_max_wait",
        float,
        30.0,
        "Longest long-poll of GET /v1/feed?wait=S, in seconds.",
    ),
    Setting(
        "metrics_token",
        str,
        "",
        "A secret that GET /metrics then requires as 'Authorization: Bearer <token>' (at least "
        "16 printable characters; give it as the environment variable, not a flag, which "
        "other users see in the process list). Empty: /metrics is open to anyone who can "
        "reach the server.",
    ),
    Setting(
        "metrics_tenant_label",
        str,
        "slug",
        "What the tenant label of the delivery metrics holds: the tenant's slug (often a "
        "customer's name), its numeric id, or nothing.",
        choices=("slug", "id", "none"),
    ),
    Setting(
        "cors_allow_origins",
        str,
        "",
        "Origins (comma-separated, e.g. https://app.example.com) whose pages may call the "
        "read-only endpoints the embeddable timeline uses (GET /v1/events..., GET /v1/log/...) "
        "from the browser with a bearer token (CORS). Empty: no cross-origin API access. "
        "The static files (/static/...) are always public. See docs/embedding.md.",
        check=parse_origins,
    ),
    Setting(
        "log_level",
        str,
        "info",
        "Minimum level of the JSON log.",
        choices=("debug", "info", "warning", "error"),
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Resolved settings for one server process."""

    data_dir: Path = Path("./auditkeep-data")
    database_url: str = ""
    database_pool_size: int = 10
    database_write_timeout: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8080
    durability: str = "full"
    max_body_bytes: int = 5 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000
    max_batch_events: int = 1000
    rate_limit_rps: float = 10000.0
    rate_limit_burst: float = 20000.0
    writer_max_batch: int = 5000
    writer_queue_limit: int = 200000
    console_idle_timeout: float = 1800.0
    key_cache_seconds: float = 5.0
    key_revocation_check: float = 0.25
    ready_commit_timeout: float = 15.0
    log_origin: str = DEFAULT_LOG_ORIGIN
    checkpoint_interval: float = 60.0
    delivery_allow_networks: str = ""
    delivery_batch_size: int = 500
    delivery_retry_base: float = 1.0
    delivery_retry_cap: float = 300.0
    delivery_pause_after: float = 86400.0
    delivery_timeout: float = 10.0
    delivery_workers: int = 4
    feed_max_wait: float = 30.0
    metrics_token: str = ""
    metrics_tenant_label: str = "slug"
    cors_allow_origins: str = ""
    log_level: str = "info"

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Config:
        """Defaults, then AUDITKEEP_* environment variables, then explicit overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in _BY_NAME:
                raise ConfigError(
                    f"unknown setting {key}; known settings: "
                    + ", ".join(ENV_PREFIX + n.upper() for n in _BY_NAME)
                )
            values[name] = _coerce(_BY_NAME[name], raw, source=key)
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = _coerce(_BY_NAME[name], value, source=name)
        return cls(**values)


# Environment variables the CLI reads that are not server settings.
_NOT_SETTINGS = frozenset(
    {
        "AUDITKEEP_URL",  # the CLI's --server
        "AUDITKEEP_KEY",  # the CLI's --key
        "AUDITKEEP_DEBUG",  # the CLI shows tracebacks
        # the SDK's (an app that logs to auditkeep may run beside a server or the CLI)
        "AUDITKEEP_API_KEY",
        "AUDITKEEP_ENDPOINTS",
        "AUDITKEEP_OUTBOX",
    }
)


def _coerce(setting: Setting, raw: Any, *, source: str) -> Any:
    try:
        value = setting.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}={raw!r}: expected {setting.type.__name__} ({setting.help})"
        ) from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{source}={raw!r}: choose one of {', '.join(setting.choices)}")
    if setting.check is not None:
        setting.check(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{source}={raw!r}: must not be negative")
    return value


def _check_table_matches_config() -> None:
    declared = {f.name: f.default for f in fields(Config)}
    table = {s.name: s.default for s in SETTINGS}
    if declared != table:
        raise AssertionError(
            f"SETTINGS and Config disagree: {set(declared.items()) ^ set(table.items())}"
        )


_check_table_matches_config()

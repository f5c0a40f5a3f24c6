"""API keys: creation, hashed storage, constant-time verification, scopes, rate limits.

A key looks like ``ak_<12 base32 chars>_<43 base64url chars>``: the part before the second
underscore is the public *key id* shown in listings; the whole key has 256 random bits. Only
SHA-256 of the whole key is stored (the key is high-entropy, so a slow hash adds nothing), and
the comparison uses ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditkeep import keyfile
from auditkeep.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from auditkeep.model import format_timestamp, now_micros
from auditkeep.store.base import SYSTEM_TENANT_ID, ApiKey, EventFilter, Store
from auditkeep.store.scope import ViewScope

EVENTS_WRITE = "events:write"
EVENTS_READ = "events:read"
ADMIN = "admin"
OPERATOR = "operator"
TENANT_SCOPES = frozenset({EVENTS_WRITE, EVENTS_READ, ADMIN})

log = logging.getLogger("auditkeep.auth")

_KEY_RE = re.compile(r"(ak_[a-z2-7]{12})_[A-Za-z0-9_-]{43}")
MAX_VIEWER_PAYLOAD = 4096
_VIEWER_RE = re.compile(rf"akv_([A-Za-z0-9_-]{{1,{MAX_VIEWER_PAYLOAD}}})\.([A-Za-z0-9_-]{{43}})")
VIEWER_KEY_FILE = "viewer.key"
MAX_VIEWER_TTL = 3600
VIEWER_READS = (
    "a viewer token can only read the events of its scope and their proofs "
    "(GET /v1/events, GET /v1/events/{id}, GET /v1/log/...); use a tenant API key for this"
)
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def new_key() -> tuple[str, str]:
    """Return ``(key_id, key)`` for a fresh key."""
    key_id = "ak_" + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:12]
    return key_id, f"{key_id}_{secrets.token_urlsafe(32)}"


def parse_scopes(text: str | list[str]) -> frozenset[str]:
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    scopes = frozenset(items)
    unknown = scopes - TENANT_SCOPES
    if unknown or not scopes:
        raise BadRequest(
            f"unknown scope(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(sorted(TENANT_SCOPES))}"
        )
    return scopes


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or SLUG_RE.fullmatch(slug) is None:
        raise BadRequest(
            f"{str(slug)[:70]!r} is not a valid tenant name: use 1-63 lower-case letters, "
            "digits and '-', starting with a letter or digit"
        )
    return slug


def make_key(
    tenant_id: int,
    tenant_slug: str,
    scopes: frozenset[str],
    *,
    name: str = "",
    expires_at: int | None = None,
    rate_limit_rps: float | None = None,
) -> tuple[ApiKey, str]:
    """A new key record and the key itself (to show once)."""
    key_id, key = new_key()
    record = ApiKey(
        tenant_id=tenant_id,
        tenant_slug=tenant_slug,
        key_id=key_id,
        secret_hash=hash_key(key),
        scopes=scopes,
        name=name,
        created_at=now_micros(),
        expires_at=expires_at,
        revoked_at=None,
        rate_limit_rps=rate_limit_rps,
    )
    return record, key


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified key's tenant and scopes. With ``viewer``, the caller holds
    a viewer token minted by ``key``: it may only read, and only within that scope."""

    key: ApiKey
    viewer: ViewScope | None = None

    @property
    def tenant_id(self) -> int:
        return self.key.tenant_id

    @property
    def tenant_slug(self) -> str:
        return self.key.tenant_slug

    @property
    def is_operator(self) -> bool:
        return self.key.tenant_id == SYSTEM_TENANT_ID and OPERATOR in self.key.scopes

    def require(self, scope: str) -> None:
        if self.viewer is not None:
            raise Forbidden(VIEWER_READS)
        if scope not in self.key.scopes:
            raise Forbidden(
                f"key {self.key.key_id} has scopes [{', '.join(sorted(self.key.scopes))}]; "
                f"this needs {scope}. Create a key with that scope."
            )

    def require_tenant_scope(self, scope: str) -> None:
        """For event endpoints: a tenant key with ``scope`` (operator keys hold no events)."""
        if self.key.tenant_id == SYSTEM_TENANT_ID:
            raise Forbidden(
                "operator keys manage tenants and keys but cannot read or write events; "
                "use a tenant key (auditkeep keys create --tenant NAME ...)"
            )
        self.require(scope)

    def require_reader(self) -> None:
        """For the reads a viewer token may make: a viewer token, or a tenant key with
        events:read."""
        if self.viewer is None:
            self.require_tenant_scope(EVENTS_READ)

    def may_manage(self, tenant_id: int) -> bool:
        if self.viewer is not None:
            return False
        return self.is_operator or (self.key.tenant_id == tenant_id and ADMIN in self.key.scopes)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class ViewerToken:
    """A viewer token's verified content."""

    token_id: str
    key_id: str  # the minting key: its revocation ends the token
    tenant_id: int
    expires_at: int
    scope: ViewScope


class ViewerTokens:
    """Mints and verifies viewer tokens: ``akv_<payload>.<mac>``, both base64url, the MAC
    HMAC-SHA256 of the payload under the data directory's ``keys/viewer.key`` (made at start,
    like the delivery key). The payload is JSON: token id, minting key id, tenant id, expiry
    (UTC microseconds), fixed filters and hidden fields. Nothing is stored: a token is checked
    by its MAC (constant time), its expiry and its minting key (which must still be valid)."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = Path(keys_dir) / VIEWER_KEY_FILE
        self._secret: bytes | None = None

    def ensure(self) -> None:
        """Make the key now if there is none (at start: nodes sharing keys/ share it)."""
        self._key()

    def _key(self) -> bytes:
        if self._secret is None:
            self._secret = keyfile.read_or_create(
                self.path, 32, "viewer-token key (a new one ends every viewer token issued)"
            )
        return self._secret

    def _mac(self, payload: str) -> bytes:
        return hmac.new(
            self._key(), b"auditkeep viewer token v1\n" + payload.encode(), "sha256"
        ).digest()

    def mint(self, key: ApiKey, scope: ViewScope, ttl_seconds: int) -> tuple[str, ViewerToken]:
        """A new token for ``scope``, valid ``ttl_seconds`` (1 to MAX_VIEWER_TTL)."""
        if not 1 <= ttl_seconds <= MAX_VIEWER_TTL:
            raise BadRequest(
                f"ttl_seconds must be between 1 and {MAX_VIEWER_TTL} (one hour), got {ttl_seconds}"
            )
        token = ViewerToken(
            token_id=_b64(secrets.token_bytes(9)),
            key_id=key.key_id,
            tenant_id=key.tenant_id,
            expires_at=now_micros() + ttl_seconds * 1_000_000,
            scope=scope,
        )
        filters = {
            name: value
            for name in EventFilter.__dataclass_fields__
            if (value := getattr(scope.filters, name)) is not None
        }
        payload = _b64(
            orjson.dumps(
                {
                    "v": 1,
                    "i": token.token_id,
                    "k": token.key_id,
                    "t": token.tenant_id,
                    "e": token.expires_at,
                    "f": filters,
                    "h": list(scope.hidden),
                }
            )
        )
        if len(payload) > MAX_VIEWER_PAYLOAD:
            raise BadRequest(
                f"the token's scope is too large ({len(payload)} characters encoded, at most "
                f"{MAX_VIEWER_PAYLOAD}): use fewer or shorter filters and hidden fields"
            )
        return f"akv_{payload}.{_b64(self._mac(payload))}", token

    def open(self, text: str) -> ViewerToken:
        """The verified token; Unauthorized if it is malformed, forged or expired."""
        m = _VIEWER_RE.fullmatch(text)
        if m is None:
            raise Unauthorized(
                "the viewer token is malformed: viewer tokens look like akv_<payload>.<mac>; "
                "check for truncation or extra characters"
            )
        payload, mac = m.groups()
        if not hmac.compare_digest(self._mac(payload), _unb64(mac)):
            raise Unauthorized(
                "the viewer token's signature does not match: it was changed, or minted by "
                "another server; mint a new one with POST /v1/viewer-tokens"
            )
        data: dict[str, Any] = orjson.loads(_unb64(payload))
        token = ViewerToken(
            token_id=data["i"],
            key_id=data["k"],
            tenant_id=data["t"],
            expires_at=data["e"],
            scope=ViewScope(EventFilter(**data["f"]), tuple(data["h"])),
        )
        if token.expires_at <= now_micros():
            raise Unauthorized(
                f"the viewer token expired at {format_timestamp(token.expires_at)}; "
                "mint a new one with POST /v1/viewer-tokens"
            )
        return token


class Authenticator:
    """Verifies bearer keys against the store, with a short in-memory cache.

    A cached key costs no store access. Revocations are seen two ways: this process's own
    (``forget``, at once), and any other process's or node's through the store's key revision
    counter, which a watcher thread reads every ``revocation_check`` seconds and which empties
    the cache when it moves (``start``). ``cache_seconds`` still bounds a cached key's age
    should the store be unreadable.
    """

    def __init__(
        self,
        store: Store,
        cache_seconds: float = 5.0,
        revocation_check: float = 0.25,
        viewer_tokens: ViewerTokens | None = None,
    ) -> None:
        self._store = store
        self._viewer_tokens = viewer_tokens
        self._cache_seconds = cache_seconds
        self._revocation_check = revocation_check
        self._cache: dict[bytes, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()
        self._revision: int | None = None  # the store's key revision the cache agrees with
        self._unreadable = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start watching the store for revocations made elsewhere."""
        if self._watcher is not None or self._revocation_check <= 0 or self._cache_seconds <= 0:
            return
        self.check_revocations()
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, name="auditkeep-key-revocations", daemon=True
        )
        self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher. Safe to call twice."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
            self._watcher = None

    def _watch(self) -> None:
        while not self._stop.wait(self._revocation_check):
            self.check_revocations()

    def check_revocations(self) -> None:
        """Empty the cache if a key was revoked since the last look (by any process)."""
        try:
            revision = self._store.key_revision()
        except Exception as exc:  # the store is away: cached keys age out (cache_seconds)
            if not self._unreadable:  # (once per outage, not four times a second)
                log.warning(
                    "cannot check for revoked API keys (cached keys stay valid for up to "
                    "key_cache_seconds): %s",
                    exc,
                )
            self._unreadable = True
            return
        if self._unreadable:
            log.info("checking for revoked API keys again")
            self._unreadable = False
        with self._lock:
            if revision != self._revision:
                self._cache.clear()
                self._revision = revision

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a bearer key (may read the store: call it off the event loop)."""
        principal = self.from_cache(authorization)
        if principal is not None:
            return principal
        key_id, digest, viewer = self._parse(authorization)
        revision = self._revision
        found = self._store.find_key(key_id)
        if viewer is not None:  # the MAC was checked: the key must still exist and be valid
            if found is None or found.tenant_id != viewer.tenant_id:
                raise Unauthorized(
                    f"the viewer token's key {key_id} does not exist any more; mint a new token"
                )
        elif found is None or not hmac.compare_digest(found.secret_hash, digest):
            raise Unauthorized("unknown API key: it does not exist or was deleted")
        with self._lock:
            # not if a revocation was seen meanwhile: the record may predate it
            if self._revision == revision:
                self._cache[digest] = (found, time.monotonic())
        return self._principal(found, viewer)

    def by_key_id(self, key_id: str) -> Principal:
        """The principal of the key ``key_id`` without the key itself: for a console session,
        whose signed cookie names the key it was opened with. Cached like a bearer key, so
        a revocation (here or on any node) ends the session as it ends the key. May read the
        store: call it off the event loop."""
        slot = b"id:" + key_id.encode()
        cached = self._cache.get(slot)
        if cached is not None and time.monotonic() - cached[1] < self._cache_seconds:
            return self._principal(cached[0])
        revision = self._revision
        found = self._store.find_key(key_id)
        if found is None:
            raise Unauthorized(f"API key {key_id} does not exist any more; sign in again")
        with self._lock:
            if self._revision == revision:
                self._cache[slot] = (found, time.monotonic())
        return self._principal(found)

    def from_cache(self, authorization: str | None) -> Principal | None:
        """The principal if the key is in the cache (no store access), None if the store must
        be asked; Unauthorized for a missing, malformed, revoked or expired key."""
        _key_id, digest, viewer = self._parse(authorization)
        cached = self._cache.get(digest)
        if cached is None or time.monotonic() - cached[1] >= self._cache_seconds:
            return None
        return self._principal(cached[0], viewer)

    def _parse(self, authorization: str | None) -> tuple[str, bytes, ViewerToken | None]:
        """``(key id, SHA-256 of the key, None)`` of a well-formed ``Bearer`` header with an
        API key; ``(minting key id, SHA-256 of the token, the token)`` with a viewer token
        (its MAC and expiry checked here)."""
        if not authorization:
            raise Unauthorized(
                "send your API key as 'Authorization: Bearer <key>'",
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        key = key.strip()
        if key.startswith("akv_") and self._viewer_tokens is not None:
            token = self._viewer_tokens.open(key)
            return token.key_id, hash_key(key), token
        m = _KEY_RE.fullmatch(key)
        if m is None:
            raise Unauthorized(
                "the API key is malformed: keys look like ak_xxxxxxxxxxxx_ followed by "
                "43 characters; check for truncation or extra characters"
            )
        return m.group(1), hash_key(key), None

    @staticmethod
    def _principal(record: ApiKey, viewer: ViewerToken | None = None) -> Principal:
        whose = "API key" if viewer is None else "the viewer token's key (which minted it)"
        if record.revoked_at is not None:
            raise Unauthorized(
                f"{whose} {record.key_id} was revoked at {format_timestamp(record.revoked_at)}"
            )
        if record.expires_at is not None and record.expires_at <= now_micros():
            raise Unauthorized(
                f"{whose} {record.key_id} expired at {format_timestamp(record.expires_at)}"
            )
        if viewer is None:
            return Principal(record)
        if EVENTS_READ not in record.scopes:
            raise Unauthorized(f"the viewer token's key {record.key_id} cannot read events")
        return Principal(record, viewer.scope)

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revocation)."""
        with self._lock:
            for digest, (record, _) in list(self._cache.items()):
                if record.key_id == key_id:
                    del self._cache[digest]


class RateLimiter:
    """Token bucket per key id; ``check`` raises TooManyRequests with a Retry-After."""

    def __init__(self, default_rps: float, burst: float) -> None:
        self._default_rps = default_rps
        self._burst = burst
        self._buckets: dict[str, list[float]] = {}

    def check(self, key: ApiKey) -> None:
        rps = key.rate_limit_rps if key.rate_limit_rps is not None else self._default_rps
        if rps <= 0:
            return
        burst = max(1.0, self._burst if key.rate_limit_rps is None else rps)
        now = time.monotonic()
        bucket = self._buckets.get(key.key_id)
        if bucket is None:
            bucket = self._buckets[key.key_id] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rps)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            wait = (1.0 - tokens) / rps
            raise TooManyRequests(
                f"key {key.key_id} is limited to {rps:g} requests/s; retry after {wait:.2f}s",
                retry_after=wait,
            )
        bucket[0] = tokens - 1.0

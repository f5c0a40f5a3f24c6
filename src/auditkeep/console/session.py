"""Console sessions: a signed, expiring cookie naming the API key a person signed in with.

The cookie is ``<payload>.<mac>`` (base64url): the payload holds a random session id, the key
id (never the key), the idle expiry and the sign-in time; the MAC is HMAC-SHA256 under
``keys/console.key`` (made at start, like ``viewer.key``; a new file ends every session).
Nothing else is stored, except the ids of sessions signed out, kept in memory until they
would have expired, so a signed-out cookie is refused by this process. The key is re-checked
on every request through the authenticator's cache (``Authenticator.by_key_id``), so revoking
it ends its sessions. CSRF tokens are HMACs of the session id: bound to the session, made
without state.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from auditkeep import keyfile
from auditkeep.model import now_micros

CONSOLE_KEY_FILE = "console.key"
COOKIE = "ak_console"
MAX_SESSION = 12 * 3600  # seconds since sign-in after which a session ends however active


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    key_id: str
    expires_at: int  # UTC microseconds: idle expiry
    signed_in_at: int


class Sessions:
    """Issues and checks console session cookies and their CSRF tokens."""

    def __init__(self, keys_dir: Path, idle_seconds: float) -> None:
        self.path = Path(keys_dir) / CONSOLE_KEY_FILE
        self.idle = int(idle_seconds * 1_000_000)
        self._secret: bytes | None = None
        self._ended: dict[str, int] = {}  # signed-out session id -> when its cookie expires
        self._lock = threading.Lock()

    def ensure(self) -> None:
        self._key()

    def _key(self) -> bytes:
        if self._secret is None:
            self._secret = keyfile.read_or_create(
                self.path, 32, "console session key (a new one signs everyone out)"
            )
        return self._secret

    def _mac(self, purpose: bytes, text: str) -> bytes:
        return hmac.new(self._key(), purpose + b"\n" + text.encode(), "sha256").digest()

    def new(self, key_id: str) -> Session:
        now = now_micros()
        return Session(_b64(secrets.token_bytes(16)), key_id, now + self.idle, now)

    def refreshed(self, session: Session) -> Session:
        """The same session with its idle expiry moved to now + the idle timeout."""
        return Session(
            session.session_id, session.key_id, now_micros() + self.idle, session.signed_in_at
        )

    def encode(self, session: Session) -> str:
        payload = _b64(
            orjson.dumps(
                {
                    "s": session.session_id,
                    "k": session.key_id,
                    "e": session.expires_at,
                    "a": session.signed_in_at,
                }
            )
        )
        return f"{payload}.{_b64(self._mac(b'auditkeep console session v1', payload))}"

    def open(self, cookie: str | None) -> Session | None:
        """The session of a valid, unexpired, not signed-out cookie; None otherwise."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        payload, mac = cookie.split(".")
        try:
            good = hmac.compare_digest(
                self._mac(b"auditkeep console session v1", payload), _unb64(mac)
            )
            if not good:
                return None
            data = orjson.loads(_unb64(payload))
            session = Session(str(data["s"]), str(data["k"]), int(data["e"]), int(data["a"]))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        now = now_micros()
        if session.expires_at <= now or now - session.signed_in_at > MAX_SESSION * 1_000_000:
            return None
        with self._lock:
            if session.session_id in self._ended:
                return None
        return session

    def end(self, session: Session) -> None:
        """Sign a session out: its cookie is refused from now on (by this process)."""
        now = now_micros()
        with self._lock:
            self._ended = {s: e for s, e in self._ended.items() if e > now}
            self._ended[session.session_id] = session.signed_in_at + MAX_SESSION * 1_000_000

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"auditkeep console csrf v1", session.session_id))

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            self.csrf_token(session).encode(), token.encode()
        )

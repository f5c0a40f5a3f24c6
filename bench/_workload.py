"""Realistic audit events for the benchmarks (shared by ingest.py and query.py).

Deterministic for a given seed. Distributions:

- 10,000 actors, Zipf-ish (s=0.9; the busiest actor does ~6% of everything); 5% of actors are
  service accounts;
- 50 actions in four namespaces (user., document., billing., role.), Zipf-ish popularity;
- 100,000 targets spread over types (document, user, invoice, subscription, role, project),
  Zipf-ish within a type; one target per event, 30% of events carry a second one (a project);
- 5% failures (with a reason); categories mostly follow the action (access / audit / security)
  with 7% error / performance / system mixed in;
- context: an IP from a pool of 5,000 (10% IPv6), one of 8 real user agents, a request id;
- metadata: 1-2 keys depending on the namespace.

The canonical JSON of such an event (normal form, without server fields) is ~400 bytes.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Any

from auditkeep_client.schema import format_timestamp

ACTIONS: dict[str, list[str]] = {
    "user": [
        "login",
        "logout",
        "login_failed",
        "created",
        "updated",
        "deleted",
        "password_changed",
        "mfa_enabled",
        "mfa_disabled",
        "invited",
        "email_changed",
        "session_revoked",
        "locked",
    ],
    "document": [
        "viewed",
        "updated",
        "created",
        "downloaded",
        "shared",
        "commented",
        "exported",
        "deleted",
        "renamed",
        "moved",
        "unshared",
        "restored",
        "permission_changed",
    ],
    "billing": [
        "invoice_created",
        "invoice_paid",
        "invoice_failed",
        "payment_method_added",
        "payment_method_removed",
        "subscription_created",
        "subscription_updated",
        "subscription_cancelled",
        "refund_issued",
        "plan_changed",
        "coupon_applied",
        "tax_id_updated",
    ],
    "role": [
        "assigned",
        "unassigned",
        "created",
        "updated",
        "deleted",
        "permission_added",
        "permission_removed",
        "renamed",
        "cloned",
        "reviewed",
        "expired",
        "imported",
    ],
}
ALL_ACTIONS = [f"{ns}.{verb}" for ns, verbs in ACTIONS.items() for verb in verbs]
assert len(ALL_ACTIONS) == 50

# target id space: 100,000 ids in total
TARGET_COUNTS = {
    "document": 50_000,
    "user": 20_000,
    "invoice": 15_000,
    "subscription": 5_000,
    "role": 500,
    "project": 9_500,
}
assert sum(TARGET_COUNTS.values()) == 100_000
TARGET_PREFIX = {
    "document": "doc",
    "user": "user",
    "invoice": "inv",
    "subscription": "sub",
    "role": "role",
    "project": "prj",
}
PRIMARY_TARGET = {
    "user": "user",
    "document": "document",
    "billing": "invoice",
    "role": "role",
}
N_ACTORS = 10_000
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4) Mobile/15E148",
    "acme-backend/2.14.0 (+https://acme.example/bots)",
    "python-httpx/0.27.0",
    "okhttp/4.12.0",
    "curl/8.7.1",
]
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"]


class Zipf:
    """Sample ranks 0..n-1 with weight 1/(rank+1)**s (inverse-CDF over precomputed sums)."""

    def __init__(self, n: int, s: float) -> None:
        self.cum = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))
        self.total = self.cum[-1]

    def sample(self, rng: random.Random) -> int:
        return bisect.bisect_left(self.cum, rng.random() * self.total)


@dataclass
class Workload:
    """Draws realistic events; ``event(occurred_at_micros)`` returns a JSON-ready dict (no id)."""

    seed: int = 1

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        rng = random.Random(self.seed + 1)
        self.actor_zipf = Zipf(N_ACTORS, 0.9)
        # actors by rank, shuffled so that rank does not equal id order
        ids = list(range(1, N_ACTORS + 1))
        rng.shuffle(ids)
        self.actors = []
        for n in ids:
            if n % 20 == 0:
                self.actors.append((f"svc_{n:05d}", "service", f"integration-{n}"))
            else:
                name = f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {LAST_NAMES[n % len(LAST_NAMES)]}"
                self.actors.append((f"user_{n:05d}", "user", name))
        self.actions = list(ALL_ACTIONS)
        rng.shuffle(self.actions)
        # a few very common actions up front, like real audit logs
        for common in ("document.viewed", "user.login", "document.updated", "user.logout"):
            self.actions.remove(common)
        self.actions[:0] = ["document.viewed", "user.login", "document.updated", "user.logout"]
        self.action_zipf = Zipf(len(self.actions), 1.0)
        self.target_zipf = {t: Zipf(n, 0.8) for t, n in TARGET_COUNTS.items()}
        self.target_perm = {}
        for t, n in TARGET_COUNTS.items():
            perm = list(range(1, n + 1))
            rng.shuffle(perm)
            self.target_perm[t] = perm
        self.ips = []
        for i in range(5000):
            if i % 10 == 0:
                self.ips.append(f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}")
            else:
                self.ips.append(
                    f"{rng.choice([10, 172, 192, 198, 203])}.{rng.randrange(256)}."
                    f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
                )

    # -- draws -----------------------------------------------------------------------------

    def actor(self) -> tuple[str, str, str]:
        return self.actors[self.actor_zipf.sample(self.rng)]

    def action(self) -> str:
        return self.actions[self.action_zipf.sample(self.rng)]

    def target_id(self, ttype: str) -> str:
        n = self.target_perm[ttype][self.target_zipf[ttype].sample(self.rng)]
        return f"{TARGET_PREFIX[ttype]}_{n:06d}"

    def category(self, action: str) -> str:
        r = self.rng.random()
        if r < 0.03:
            return "error"
        if r < 0.05:
            return "performance"
        if r < 0.07:
            return "system"
        ns, verb = action.split(".")
        if ns == "role" or verb in ("password_changed", "mfa_disabled", "locked", "login_failed"):
            return "security"
        if verb in ("login", "logout", "viewed", "downloaded", "session_revoked"):
            return "access"
        return "audit"

    def event(self, occurred_at: int) -> dict[str, Any]:
        rng = self.rng
        action = self.action()
        ns, verb = action.split(".")
        actor_id, actor_type, actor_name = self.actor()
        ptype = PRIMARY_TARGET[ns]
        if ns == "billing" and verb.startswith("subscription"):
            ptype = "subscription"
        if ns == "user" and verb in ("login", "logout", "login_failed", "locked"):
            tid = actor_id if actor_type == "user" else self.target_id("user")
        else:
            tid = self.target_id(ptype)
        targets: list[dict[str, str]] = [{"id": tid, "type": ptype}]
        if rng.random() < 0.3:
            targets.append({"id": self.target_id("project"), "type": "project"})
        failed = rng.random() < 0.05 or verb in ("login_failed", "invoice_failed")
        event: dict[str, Any] = {
            "action": action,
            "occurred_at": format_timestamp(occurred_at),
            "actor": {"id": actor_id, "type": actor_type, "name": actor_name},
            "targets": targets,
            "outcome": "failure" if failed else "success",
            "category": self.category(action),
            "context": {
                "ip": rng.choice(self.ips),
                "user_agent": rng.choice(USER_AGENTS),
                "request_id": f"req_{rng.getrandbits(48):012x}",
            },
            "metadata": self.metadata(ns, verb),
        }
        if failed:
            event["reason"] = rng.choice(
                ["invalid credentials", "permission denied", "card declined", "rate limited"]
            )
        return event

    def metadata(self, ns: str, verb: str) -> dict[str, Any]:
        rng = self.rng
        md: dict[str, Any] = {}
        if ns == "user":
            md["mfa"] = rng.random() < 0.6
            md["via"] = rng.choice(["web", "api", "mobile", "sso"])
        elif ns == "document":
            md["size"] = rng.randrange(1_000, 5_000_000)
            md["fields"] = rng.sample(["title", "body", "owner", "tags", "status"], 2)
        elif ns == "billing":
            md["amount"] = rng.randrange(500, 500_000)
            md["currency"] = rng.choice(["USD", "EUR", "GBP"])
        else:
            md["permissions"] = rng.sample(["read", "write", "admin", "billing", "audit"], 2)
        return md


def uuid7(ms: int, rng: random.Random) -> str:
    """A UUIDv7 string for ``ms`` (what retry-safe SDKs send as the event id)."""
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

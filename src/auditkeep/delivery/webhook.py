"""Generic webhooks, signed per the Standard Webhooks specification.

Each batch is one POST with a JSON body::

    {"type": "audit.events", "timestamp": "<received_at of the batch's last event>",
     "data": {"tenant": "acme", "destination": "dst_…", "batch_id": "dst_…-1-500",
              "first_seq": 1, "last_seq": 500, "events": [<event>, ...]}}

and the headers ``webhook-id`` (the batch id: the same on every retry of the batch, so a
receiver can drop a repeat), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`` for the
current secret and, during a rotation, for each previous one, separated by spaces. Secrets have
the form ``whsec_<base64 of 32 random bytes>``; the key is the base64-decoded part. A receiver
verifies with any Standard Webhooks library (``standardwebhooks`` on PyPI and others).

A 410 Gone answer pauses the destination (the specification's "disable the endpoint").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from auditkeep.delivery.base import Batch, DeliveryFailed, Kind, Secrets, SenderContext
from auditkeep.delivery.httpout import guarded_client, post
from auditkeep.delivery.netguard import BlockedAddress, NetGuard

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (a bare base64 secret is accepted too)."""
    text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret must hold 24 to 64 bytes (32 recommended)")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature, ``v1,<base64>``."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def payload(batch: Batch) -> bytes:
    events = [ev.to_json() for ev in batch.events]
    body: dict[str, Any] = {
        "type": "audit.events",
        "timestamp": events[-1].get("received_at"),
        "data": {
            "tenant": batch.tenant_slug,
            "destination": batch.destination_id,
            "batch_id": batch.batch_id,
            "first_seq": batch.first_seq,
            "last_seq": batch.last_seq,
            "events": events,
        },
    }
    return orjson.dumps(body)


class WebhookSender:
    def __init__(self, url: str, secrets: Secrets, ctx: SenderContext) -> None:
        if not secrets.all:
            raise ValueError("a webhook destination needs a signing secret")
        self.url = url
        self.secrets = secrets
        self.ctx = ctx
        self.client = guarded_client(ctx)

    def send(self, batch: Batch) -> None:
        body = payload(batch)
        msg_id = batch.batch_id
        timestamp = int(time.time())
        signatures = " ".join(sign(s, msg_id, timestamp, body) for s in self.secrets.all)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }
        post(self.client, self.ctx.guard, self.url, body, headers)

    def close(self) -> None:
        self.client.close()


def check_http_url(value: str, path: str, guard: NetGuard) -> list[dict[str, str]]:
    try:
        guard.check_url(value)
    except BlockedAddress as exc:
        return [{"path": path, "message": str(exc)}]
    return []


class WebhookKind(Kind):
    name = "webhook"
    fields: ClassVar[Mapping[str, tuple[type, bool, str]]] = {
        "url": (str, True, "The receiver's URL (https:// recommended)."),
    }
    credential_help = "signing secret (whsec_…; made by the server when not given)"
    generates_secret = True

    def check_values(self, config: dict[str, Any], guard: NetGuard) -> list[dict[str, str]]:
        return check_http_url(config["url"], "config.url", guard)

    def check_secret(self, secret: str) -> None:
        secret_key(secret)

    def make_sender(
        self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext
    ) -> WebhookSender:
        return WebhookSender(config["url"], secrets, ctx)


__all__ = ["DeliveryFailed", "WebhookKind", "new_secret", "sign"]

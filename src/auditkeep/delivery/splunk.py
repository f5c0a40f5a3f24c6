"""Splunk HTTP Event Collector (HEC).

Each batch is one POST to ``<url>/services/collector/event`` with ``Authorization: Splunk
<token>`` and a body of concatenated HEC event objects, one per event::

    {"time": 1764633600.25, "host": "<hostname>", "source": "auditkeep",
     "sourcetype": "auditkeep:event", "index": "<index, if set>",
     "fields": {"tenant": "acme", "action": "user.login", "outcome": "success", "seq": 7},
     "event": <the event object>}

``time`` is the event's occurred_at in epoch seconds (millisecond precision, as HEC takes it).
HEC answers ``{"text": "Success", "code": 0}``; any other answer is a failed attempt (a 503
"server busy" honours Retry-After). Without HEC indexer acknowledgement a 200 means Splunk
accepted the batch; the event ids in the events let searches drop a repeated batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import orjson

from auditkeep.delivery.base import Batch, DeliveryFailed, Kind, Secrets, SenderContext
from auditkeep.delivery.httpout import guarded_client, post
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.webhook import check_http_url

EVENT_PATH = "/services/collector/event"


def hec_body(batch: Batch, config: Mapping[str, Any], hostname: str) -> bytes:
    parts = []
    for ev in batch.events:
        event = ev.to_json()
        when = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        item: dict[str, Any] = {
            "time": round(when.timestamp(), 3),
            "host": config.get("host") or hostname,
            "source": config.get("source") or "auditkeep",
            "sourcetype": config.get("sourcetype") or "auditkeep:event",
            "fields": {
                "tenant": batch.tenant_slug,
                "action": event.get("action"),
                "outcome": event.get("outcome"),
                "seq": ev.seq,
            },
            "event": event,
        }
        if config.get("index"):
            item["index"] = config["index"]
        parts.append(orjson.dumps(item))
    return b"\n".join(parts)


class SplunkSender:
    def __init__(self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext) -> None:
        if not secrets.current:
            raise ValueError("a splunk_hec destination needs its HEC token as the secret")
        self.config = config
        self.url = config["url"].rstrip("/") + EVENT_PATH
        self.token = secrets.current
        self.ctx = ctx
        self.client = guarded_client(ctx)

    def send(self, batch: Batch) -> None:
        body = hec_body(batch, self.config, self.ctx.hostname)
        headers = {"Authorization": f"Splunk {self.token}", "Content-Type": "application/json"}
        response = post(self.client, self.ctx.guard, self.url, body, headers)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("code") != 0:
            raise DeliveryFailed(
                "HEC did not confirm the batch"
                + (
                    f": {str(answer.get('text'))[:200]!r} (code {answer.get('code')})"
                    if isinstance(answer, dict) and answer.get("text")
                    else ""
                ),
                status=response.status_code,
            )

    def close(self) -> None:
        self.client.close()


class SplunkKind(Kind):
    name = "splunk_hec"
    fields: ClassVar[Mapping[str, tuple[type, bool, str]]] = {
        "url": (str, True, "HEC base URL, e.g. https://splunk.example.com:8088"),
        "index": (str, False, "Splunk index (default: the token's default index)."),
        "source": (str, False, "HEC source (default auditkeep)."),
        "sourcetype": (str, False, "HEC sourcetype (default auditkeep:event)."),
        "host": (str, False, "HEC host field (default: this server's hostname)."),
    }
    credential_help = "HEC token"

    def check_values(self, config: dict[str, Any], guard: NetGuard) -> list[dict[str, str]]:
        return check_http_url(config["url"], "config.url", guard)

    def make_sender(
        self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext
    ) -> SplunkSender:
        return SplunkSender(config, secrets, ctx)

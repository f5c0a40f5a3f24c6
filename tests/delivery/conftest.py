"""Fixtures for delivery tests: an in-process app whose dispatcher may reach loopback and
retries fast, and verifying receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from auditkeep.api.app import create_app
from tests.conftest import App, _key, make_core
from tests.delivery.receivers import HTTPReceiver, WebhookLog

FAST_DELIVERY = {
    "delivery_allow_networks": "127.0.0.0/8",
    "delivery_retry_base": 0.05,
    "delivery_retry_cap": 0.3,
    "delivery_timeout": 5.0,
}


@pytest.fixture
async def dapp(tmp_path: Path) -> AsyncIterator[App]:
    core = make_core(tmp_path / "data", **FAST_DELIVERY)
    core.start()
    transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        a = App(core, client)
        a.keys["operator"] = a.operator_key = core.ensure_operator_key() or ""
        a.keys["acme"] = _key(core, "acme", {"events:write", "events:read"})
        a.keys["acme_read"] = _key(core, "acme", {"events:read"})
        a.keys["acme_admin"] = _key(core, "acme", {"admin"})
        a.keys["globex"] = _key(core, "globex", {"events:write", "events:read"})
        a.keys["globex_admin"] = _key(core, "globex", {"admin"})
        yield a
    core.close()


@pytest.fixture
def webhook() -> Iterator[tuple[HTTPReceiver, WebhookLog]]:
    log = WebhookLog(secret="")
    receiver = HTTPReceiver(log.handle)
    receiver.start()
    try:
        yield receiver, log
    finally:
        receiver.stop()

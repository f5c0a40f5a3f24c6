"""Redaction processors, request context, record(), test mode and the async client."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from auditkeep_client import (
    REDACTED,
    AsyncAuditKeep,
    AuditKeep,
    EventValidationError,
    RedactKeys,
    RedactValues,
    capture_events,
    context,
)
from auditkeep_client.redaction import CREDIT_CARD, default_processors, redact_text
from tests.sdk._support import FakeAuditServer
from tests.sdk.conftest import FAST

# -- redaction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "Password",
        "user_password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "refreshToken",
        "secret",
        "client_secret",
        "key",
        "api_key",
        "X-Api-Key",
        "apikey",
        "authorization",
        "Cookie",
        "set-cookie",
        "session",
        "sessionid",
        "SESSION_ID",
        "private_key",
        "db.password",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert RedactKeys().is_sensitive(name)


@pytest.mark.parametrize(
    "name", ["username", "keyboard", "monkey", "author", "status", "route", "client_id", "plan"]
)
def test_ordinary_names(name: str) -> None:
    assert not RedactKeys().is_sensitive(name)


def test_keys_are_redacted_at_any_depth_without_touching_the_input() -> None:
    meta = {
        "user": "ada",
        "password": "hunter2",
        "nested": {"list": [{"api_key": "k1", "ok": 1}], "Session": {"id": 3}},
    }
    event = RedactKeys()({"metadata": meta})
    assert event["metadata"] == {
        "user": "ada",
        "password": REDACTED,
        "nested": {"list": [{"api_key": REDACTED, "ok": 1}], "Session": REDACTED},
    }
    assert meta["password"] == "hunter2"


def test_extra_names_and_patterns() -> None:
    chain = default_processors(
        extra_names=["ssn_last4", "mother maiden"], extra_patterns=[CREDIT_CARD]
    )
    event: dict[str, Any] = {
        "metadata": {
            "ssn_last4": "1234",
            "mother_maiden": "x",
            "note": "card 4111 1111 1111 1111 and order 1234567890123",
        },
        "reason": "Authorization: Bearer eyJhbGciOi.abc.def failed",
    }
    for p in chain:
        event = p(event)
    assert event["metadata"]["ssn_last4"] == REDACTED
    assert event["metadata"]["mother_maiden"] == REDACTED
    assert event["metadata"]["note"] == f"card {REDACTED} and order 1234567890123"  # not Luhn
    assert "eyJhbGciOi" not in event["reason"]


def test_value_patterns_in_text() -> None:
    rv = RedactValues()
    text = 'login failed: password=hunter2&user=ada {"api_key": "abc123"} token: zzz'
    out = rv.text(text)
    assert "hunter2" not in out and "abc123" not in out and "zzz" not in out
    assert "user=ada" in out
    assert rv.text("Bearer abcdefghijklmnop") == f"Bearer {REDACTED}"
    assert redact_text(default_processors(), "secret=s3cr3t") == f"secret={REDACTED}"


def test_log_applies_the_chain(tmp_path: Path) -> None:
    client = AuditKeep(testing=True, redact_keys=["internal_note"])
    client.log(
        "user.login",
        actor="u1",
        metadata={"password": "hunter2", "internal_note": "x", "q": "Bearer abcdefghijkl"},
        reason="token=abc123",
    )
    ev = client.captured.events[0]
    assert ev["metadata"] == {
        "password": REDACTED,
        "internal_note": REDACTED,
        "q": f"Bearer {REDACTED}",
    }
    assert ev["reason"] == f"token={REDACTED}"


def test_custom_processor_chain() -> None:
    def add_env(event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("metadata", {})["env"] = "test"
        return event

    client = AuditKeep(testing=True, processors=[add_env, *default_processors()])
    client.log("user.login", actor="u1", metadata={"secret": "x"})
    assert client.captured.events[0]["metadata"] == {"secret": REDACTED, "env": "test"}


# -- context --------------------------------------------------------------------------------------


def test_bind_outside_a_scope_is_per_thread() -> None:
    client = AuditKeep(testing=True)
    seen: dict[str, Any] = {}

    def worker() -> None:
        context.bind(actor="thread-user")
        seen["id"] = client.prepare("user.login")["actor"]["id"]

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["id"] == "thread-user"
    assert context.current() is None
    context.bind(actor="main", metadata={"tenant_plan": "pro"})
    try:
        ev = client.prepare("user.login", metadata={"x": 1})
        assert ev["actor"]["id"] == "main" and ev["metadata"] == {"tenant_plan": "pro", "x": 1}
    finally:
        context.clear()


def test_bind_inside_a_scope_mutates_the_request_frame() -> None:
    with context.scope(request_id="r1") as frame:

        def in_pool() -> None:  # e.g. a sync endpoint in a thread pool with a copied context
            context.bind(actor={"id": "u7", "type": "user"}, client_id="app-1")

        import contextvars

        t = threading.Thread(target=contextvars.copy_context().run, args=(in_pool,))
        t.start()
        t.join()
        assert frame.actor == {"id": "u7", "type": "user"} and frame.client_id == "app-1"
    with pytest.raises(TypeError, match="unknown field"):
        context.bind(colour="red")


# -- record ---------------------------------------------------------------------------------------


def test_record_as_decorator_and_context_manager() -> None:
    client = AuditKeep(testing=True)

    @client.record("document.deleted", actor="u1", targets=[{"id": "d1", "type": "document"}])
    def delete(fail: bool) -> str:
        if fail:
            raise PermissionError("nope")
        return "done"

    assert delete(False) == "done"
    with pytest.raises(PermissionError):
        delete(True)
    with client.record("invoice.paid", actor="u2") as rec:
        rec.metadata["amount"] = 12
        rec.targets.append({"id": "inv1", "type": "invoice"})
    with pytest.raises(KeyError), client.record("invoice.refund", actor="u2"):
        raise KeyError("x")
    cap = client.captured
    cap.assert_logged("document.deleted", outcome="success", count=1)
    failure = cap.assert_logged("document.deleted", outcome="failure")
    assert failure["reason"] == "PermissionError"
    paid = cap.assert_logged("invoice.paid", metadata={"amount": 12})
    assert paid["targets"] == [{"id": "inv1", "type": "invoice"}]
    cap.assert_logged("invoice.refund", outcome="failure", reason="KeyError")


def test_record_never_masks_the_callers_exception() -> None:
    client = AuditKeep(testing=True)

    @client.record("Not Valid")
    def boom() -> None:
        raise RuntimeError("original")

    with pytest.raises(RuntimeError, match="original") as info:
        boom()
    assert any("auditkeep" in n for n in getattr(info.value, "__notes__", []))

    @client.record("also Not Valid")
    def fine() -> None:
        return None

    with pytest.raises(EventValidationError):
        fine()


def test_record_async_function() -> None:
    client = AuditKeep(testing=True)

    @client.record("report.exported", actor="u1")
    async def export(fail: bool) -> int:
        await asyncio.sleep(0)
        if fail:
            raise ValueError
        return 1

    assert asyncio.run(export(False)) == 1
    with pytest.raises(ValueError):
        asyncio.run(export(True))
    client.captured.assert_logged("report.exported", outcome="success")
    client.captured.assert_logged("report.exported", outcome="failure", reason="ValueError")


# -- test mode ------------------------------------------------------------------------------------


def test_capture_events_intercepts_every_client(tmp_path: Path) -> None:
    real = AuditKeep(
        "k", endpoints="http://127.0.0.1:9", outbox=tmp_path / "o.db", start_sender=False
    )
    with capture_events() as captured:
        real.log("user.login", actor={"id": "u1"}, metadata={"password": "x"})
        with pytest.raises(EventValidationError):
            real.log("nope", actor="u1")
    assert real.outbox_stats().pending == 0
    ev = captured.assert_logged(action="user.login", actor={"id": "u1"})
    assert ev["metadata"]["password"] == REDACTED
    with pytest.raises(AssertionError, match="expected an event"):
        captured.assert_logged(action="user.logout")
    captured.assert_not_logged(action="user.logout")
    assert captured.actions == ["user.login"] and len(captured) == 1
    real.close(0)


def test_assert_logged_subset_matching() -> None:
    client = AuditKeep(testing=True)
    client.log(
        "doc.shared",
        actor={"id": "u1", "name": "Ada"},
        targets=[{"id": "d1", "type": "doc"}, {"id": "u2", "type": "user"}],
        metadata={"via": "link", "n": 1},
    )
    cap = client.captured
    cap.assert_logged("doc.shared", actor={"id": "u1"}, targets=[{"id": "u2"}])
    cap.assert_logged(metadata={"via": "link"}, category="audit")
    with pytest.raises(AssertionError):
        cap.assert_logged("doc.shared", targets=[{"id": "zz"}])
    cap.clear()
    assert cap.events == []


# -- async client ---------------------------------------------------------------------------------


def test_async_client_delivers(tmp_path: Path, fake_server: FakeAuditServer) -> None:
    async def main() -> list[str]:
        async with AsyncAuditKeep(
            "test-key", endpoints=[fake_server.url], outbox=tmp_path / "a.db", **FAST
        ) as client:
            ids = await asyncio.gather(
                *(client.log("user.login", actor=f"u{i}") for i in range(50))
            )
            rec_ids = []
            async with client.record("job.ran", actor="cron") as rec:
                rec.metadata["k"] = 1
            rec_ids.append(rec.event_id)
            assert await client.flush(10)
            assert client.outbox_stats().pending == 0
            return [*ids, *(r for r in rec_ids if r)]

    ids = asyncio.run(main())
    assert len(ids) == 51 and set(ids) == set(fake_server.stored)


def test_async_client_in_test_mode() -> None:
    async def main() -> None:
        client = AsyncAuditKeep(testing=True)
        await client.log("user.login", actor="u1")
        client.captured.assert_logged("user.login")
        await client.aclose()

    asyncio.run(main())


def test_unhashable_outcome_or_category_is_a_validation_error() -> None:
    """Regression: these raised TypeError (unhashable) instead of EventValidationError."""
    client = AuditKeep(testing=True)
    with pytest.raises(EventValidationError, match="outcome"):
        client.log("user.login", actor="u1", outcome={})  # type: ignore[arg-type]
    with pytest.raises(EventValidationError, match="category"):
        client.log("user.login", actor="u1", category=[])  # type: ignore[arg-type]

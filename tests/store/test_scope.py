"""store/scope.narrow: a request's filters can narrow a viewer token's scope, never widen it."""

from __future__ import annotations

import pytest

from auditkeep.store.base import EventFilter
from auditkeep.store.scope import narrow

F = EventFilter


@pytest.mark.parametrize(
    ("fixed", "asked", "expected"),
    [
        (F(actor_id="a"), F(), F(actor_id="a")),
        (F(actor_id="a"), F(actor_id="a", outcome="failure"), F(actor_id="a", outcome="failure")),
        (F(actor_id="a"), F(actor_id="b"), None),
        (F(target_id="t", target_type="doc"), F(target_type="user"), None),
        (F(action_prefix="user."), F(action="user.login"), F(action="user.login")),
        (F(action_prefix="user."), F(action="admin.login"), None),
        (F(action_prefix="user."), F(action_prefix="user.mfa."), F(action_prefix="user.mfa.")),
        (F(action_prefix="user.mfa."), F(action_prefix="user."), F(action_prefix="user.mfa.")),
        (F(action_prefix="user."), F(action_prefix="admin."), None),
        (F(action="user.login"), F(action_prefix="user."), F(action="user.login")),
        (F(action="user.login"), F(action="user.logout"), None),
        (F(since=10, until=20), F(since=0, until=100), F(since=10, until=20)),
        (F(since=10, until=20), F(since=15), F(since=15, until=20)),
        (F(since=10, until=20), F(since=20), None),
    ],
)
def test_narrow(fixed: EventFilter, asked: EventFilter, expected: EventFilter | None) -> None:
    assert narrow(fixed, asked) == expected

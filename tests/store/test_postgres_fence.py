"""Fencing on PostgreSQL: a store refuses a database whose logs are behind what it has already
acknowledged or signed (store/postgres.py Fence), across a restart through its state file.

(The timeline half, a former primary that comes back read-write after a promotion, needs a
replicated pair: tests/server/test_postgres_failover.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditkeep.errors import StoreUnavailable
from auditkeep.model import prepare_event
from auditkeep.store.base import TenantAppend
from auditkeep.store.postgres import STATE_FILE, Fence, PostgresStore, StaleDatabase
from tests.conftest import event
from tests.store.conftest import Backend


def _append(store: PostgresStore, tenant_id: int, *ids: str) -> None:
    events = [prepare_event(event(i), "acme", 1_700_000_000_000_000) for i in ids]
    store.append([TenantAppend(tenant_id, events)])


def test_a_database_behind_what_was_acknowledged_is_refused(
    pg_backend: Backend, tmp_path: Path
) -> None:
    state = tmp_path / STATE_FILE
    store = PostgresStore(pg_backend.url, durability="full", state_path=state)
    store.migrate()
    acme = store.create_tenant("acme", "Acme")
    _append(store, acme.tenant_id, "1", "2", "3")
    store.close()
    saved = json.loads(state.read_text())
    assert saved["log_sizes"] == {str(acme.tenant_id): 3}
    assert saved["timeline"] == 1 and saved["system_identifier"]

    # The same database: fine. Restored from an older backup (simulated): refused at start.
    PostgresStore(pg_backend.url, state_path=state).close()
    pg_backend.sql("UPDATE log_heads SET size = 1 WHERE tenant_id = %s", (acme.tenant_id,))
    with pytest.raises(StaleDatabase) as refused:
        PostgresStore(pg_backend.url, state_path=state)
    message = str(refused.value)
    assert f"tenant {acme.tenant_id}'s log has 1 events there" in message
    assert "already acknowledged or signed 3" in message and str(state) in message
    assert "password" not in message.lower()


def test_a_running_store_refuses_new_connections_to_a_database_gone_behind(
    pg_backend: Backend,
) -> None:
    """No state file: what the store acknowledged in this process is enough."""
    store = PostgresStore(pg_backend.url, durability="full", pool_size=2)
    pg_backend.opened.append(store)
    store.migrate()
    acme = store.create_tenant("acme", "Acme")
    _append(store, acme.tenant_id, "1", "2")
    pg_backend.sql("UPDATE log_heads SET size = 0 WHERE tenant_id = %s", (acme.tenant_id,))
    store._lost()  # as after a failover: every pooled connection is replaced
    with pytest.raises(StoreUnavailable) as refused:
        store.check_ready()
    assert "already acknowledged or signed 2" in str(refused.value)
    pg_backend.sql("UPDATE log_heads SET size = 2 WHERE tenant_id = %s", (acme.tenant_id,))
    store.check_ready()  # the next connection is accepted again


def test_a_process_that_loaded_the_state_earlier_never_saves_smaller_sizes(
    tmp_path: Path,
) -> None:
    """A CLI command opened on a node's data directory (it loads the state file at start)
    closes after the node saved larger sizes: its save merges them instead of rolling them
    back, so fencing still knows how far each log went."""
    path = tmp_path / STATE_FILE
    path.write_text(json.dumps({"system_identifier": 7, "timeline": 2, "log_sizes": {"1": 5}}))
    cli_process, node = Fence(path), Fence(path)
    node.saw({1: 40, 2: 3})
    node.save()
    cli_process.saw({3: 1})
    cli_process.save()  # at close, with its stale copy of tenant 1's size
    saved = json.loads(path.read_text())
    assert saved["log_sizes"] == {"1": 40, "2": 3, "3": 1}
    assert (saved["system_identifier"], saved["timeline"]) == (7, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE, f"{STATE_FILE}.lock"]

"""Storage: the Store contract (``base.py``) and its implementations, and :func:`open_store`,
which picks one from the settings: PostgreSQL when ``database_url`` is set (several API nodes
share it), else the embedded SQLite file in ``data_dir``.

The implementations are imported only when opened, so a SQLite deployment never imports the
PostgreSQL driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from auditkeep.settings import Config
    from auditkeep.store.postgres import PostgresStore
    from auditkeep.store.sqlite import SQLiteStore

AnyStore: TypeAlias = "SQLiteStore | PostgresStore"
"""Either store: what :func:`open_store` returns (both have the same public surface)."""


def open_store(config: Config, *, data_dir: bool = True) -> AnyStore:
    """The store the settings name (not migrated yet: call ``migrate()``). With PostgreSQL and
    ``data_dir`` false, the data directory is neither made nor used (``auditkeep migrate``
    without ``--data-dir``)."""
    if config.database_url:
        from auditkeep.errors import StoreUnavailable
        from auditkeep.store.postgres import STATE_FILE, PostgresStore

        if data_dir:
            try:  # it still holds keys/ (checkpoint signing and delivery secrets)
                config.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create data directory {config.data_dir}: {exc}"
                ) from exc
        return PostgresStore(
            config.database_url,
            pool_size=config.database_pool_size,
            durability=config.durability,
            write_timeout=config.database_write_timeout,
            state_path=config.data_dir / STATE_FILE if data_dir else None,
        )
    from auditkeep.store.sqlite import SQLiteStore

    return SQLiteStore(
        config.data_dir, durability=config.durability, readers=config.database_pool_size
    )

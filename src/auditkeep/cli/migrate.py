"""``auditkeep migrate``: apply pending schema migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from auditkeep.cli.backends import (
    DATABASE_URL_HELP,
)
from auditkeep.settings import Config


@click.command()
@click.option(
    "--data-dir",
    envvar="AUDITKEEP_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The SQLite store's data directory (env AUDITKEEP_DATA_DIR); with --database-url, "
    "optional: a node's data directory, whose postgres-state.json is then checked too.",
)
@click.option("--database-url", envvar="AUDITKEEP_DATABASE_URL", help=DATABASE_URL_HELP)
def migrate(data_dir: Path | None, database_url: str | None) -> None:
    """Apply pending schema migrations: to the SQLite store of --data-dir, or to the
    PostgreSQL database of --database-url. One of them is required."""
    from auditkeep.store import open_store

    if data_dir is None and not database_url:
        raise click.UsageError(
            "say which store to migrate: --data-dir DIR (SQLite) or --database-url URL "
            "(PostgreSQL), or set AUDITKEEP_DATA_DIR / AUDITKEEP_DATABASE_URL"
        )
    settings: dict[str, Any] = {"database_url": database_url}
    if data_dir is not None:
        settings["data_dir"] = data_dir
    store = open_store(Config.load(settings), data_dir=data_dir is not None)
    try:
        version = store.migrate()
    finally:
        store.close()
    click.echo(f"schema is at version {version}")

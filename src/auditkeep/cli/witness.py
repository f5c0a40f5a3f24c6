"""``auditkeep witness``: watch a log's checkpoints for rollbacks, forks and key changes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditkeep.cli.log import LOG_KEY_HELP, pinned_keys


@click.command()
@click.option(
    "--server",
    envvar="AUDITKEEP_URL",
    required=True,
    help="The auditkeep server to watch (env AUDITKEEP_URL).",
)
@click.option(
    "--key",
    envvar="AUDITKEEP_KEY",
    required=True,
    help="An API key with events:read of the tenant whose log to watch (env AUDITKEEP_KEY).",
)
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory where the witness keeps the last checkpoint it verified and the pinned keys.",
)
@click.option(
    "--interval", type=float, default=60.0, show_default=True, help="Seconds between polls."
)
@click.option(
    "--once", is_flag=True, help="Poll once and exit: 0 ok, 1 server unreachable, 2 alarm."
)
@click.option("--webhook", help="POST a JSON alarm here on a rollback, fork or key change.")
@click.option(
    "--publish-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write every verified checkpoint here (e.g. a repository or bucket that the log "
    "operator does not control alone).",
)
@click.option("--log-key", "log_keys", multiple=True, help=LOG_KEY_HELP)
def witness(
    server: str,
    key: str,
    state_dir: Path,
    interval: float,
    once: bool,
    webhook: str | None,
    publish_dir: Path | None,
    log_keys: tuple[str, ...],
) -> None:
    """Watch a log's checkpoints: each must be signed by the pinned key and consistent with the
    last one kept. A rollback, fork or unannounced key change is an alarm: an error log line,
    the optional webhook, and exit code 2. See docs/witness.md."""
    from auditkeep import logs
    from auditkeep.translog import Witness

    logs.configure("info")
    w = Witness(
        server,
        key,
        state_dir,
        log_keys=pinned_keys(log_keys),
        webhook=webhook,
        publish_dir=publish_dir,
    )
    try:
        code = w.run(interval, once)
    except KeyboardInterrupt:
        code = 0
    finally:
        w.close()
    sys.exit(code)

"""The ``auditkeep`` command line.

Admin and read commands work either directly on a data directory (no server needed) or over
HTTP against a running server (``--server URL --key KEY``, or AUDITKEEP_URL / AUDITKEEP_KEY).

This module is the top-level group and the one place where every error becomes one line and
an exit status (:class:`_Main`). :mod:`~auditkeep.cli.backends` holds the two places a command
can act on (a data directory, a server) and the options that choose one;
:mod:`~auditkeep.cli.output` how results are printed; and each command group has its module:
``serve``, ``migrate``, ``tenants`` (with ``keys``), ``events`` (with ``export``),
``destinations``, ``log`` (with ``verify`` and ``export-bundle``) and ``witness``.
"""

from __future__ import annotations

import os
from typing import Any

import click
import httpx

from auditkeep.cli.destinations import destinations
from auditkeep.cli.events import events, export_events
from auditkeep.cli.log import export_bundle_cmd, log_group, verify
from auditkeep.cli.migrate import migrate
from auditkeep.cli.serve import serve
from auditkeep.cli.tenants import keys, tenants
from auditkeep.cli.viewer import viewer_tokens
from auditkeep.cli.witness import witness
from auditkeep.errors import AuditkeepError, ProblemError

__all__ = ["error_message", "main"]


def error_message(exc: BaseException) -> str:
    """One line a person can act on, for any error a command can meet."""
    if isinstance(exc, ProblemError):
        return exc.detail
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        also = f" -> {exc.filename2}" if exc.filename2 else ""
        return f"{where}{exc.strerror}{also}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP request failed: {exc}"
    if isinstance(exc, AuditkeepError | OSError):
        return str(exc) or type(exc).__name__
    return (
        f"unexpected error: {type(exc).__name__}: {exc} (set AUDITKEEP_DEBUG=1 to see where; "
        "please report it)"
    )


class _Main(click.Group):
    """The top-level group: the one place where every error becomes one line on standard
    error and exit status 1 (click's own usage errors keep their status 2). A traceback is
    printed only with AUDITKEEP_DEBUG=1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            if os.environ.get("AUDITKEEP_DEBUG"):
                raise
            message = " ".join(error_message(exc).split("\n"))
            raise click.ClickException(message) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="auditkeep")
def main() -> None:
    """auditkeep: a tamper-evident audit and event log service.

    Commands that read or manage data act on a data directory (--data-dir, default
    ./auditkeep-data) or on a running server (--server URL --key KEY, or AUDITKEEP_URL and
    AUDITKEEP_KEY). Errors are one line on standard error and a non-zero exit status.
    """


for _command in (
    serve,
    migrate,
    tenants,
    keys,
    destinations,
    export_events,
    events,
    verify,
    export_bundle_cmd,
    log_group,
    witness,
    viewer_tokens,
):
    main.add_command(_command)

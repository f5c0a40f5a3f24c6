"""``auditkeep events`` (search, tail) and ``auditkeep export``: reading events."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson

from auditkeep.cli.backends import (
    Backend,
    on_backend,
    target_options,
)
from auditkeep.cli.output import table

_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _when(text: str | None) -> str | None:
    """Accept RFC 3339 or a relative age such as 15m, 24h, 7d."""
    if text is None:
        return None
    m = _RELATIVE.fullmatch(text)
    if m:
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return text


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The event filters of GET /v1/events, shared by `events search` and `export`."""
    for option in reversed(
        [
            click.option("--actor", "actor_id", help="Actor id."),
            click.option("--action", help="Action, or a prefix such as user.*"),
            click.option("--target", "target_id", help="Target id."),
            click.option("--target-type", help="Target type."),
            click.option("--outcome", type=click.Choice(["success", "failure"])),
            click.option("--category"),
            click.option("--since", help="RFC 3339 time or an age such as 15m, 24h, 7d."),
            click.option("--until", help="RFC 3339 time or an age."),
        ]
    ):
        fn = option(fn)
    return fn


def _filter_params(filters: dict[str, Any]) -> dict[str, str]:
    """Filter options -> query parameters (relative ages resolved)."""
    filters["since"] = _when(filters["since"])
    filters["until"] = _when(filters["until"])
    return {k: str(v) for k, v in filters.items() if v is not None}


@click.command("export")
@click.option("--tenant", help="Tenant (needed with --data-dir; a key implies its own).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv", "ocsf"]),
    default="ndjson",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    help="File to write (default: standard output).",
)
@_filter_options
@click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress on standard error.")
@target_options
def export_events(
    tenant: str | None,
    fmt: str,
    output: Path,
    quiet: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
    **filters: Any,
) -> None:
    """Export matching events as NDJSON, CSV or OCSF, streamed (constant memory)."""
    params = _filter_params(filters) | {"format": fmt}
    to_stdout = str(output) == "-"
    show = not quiet and not (to_stdout and sys.stdout.isatty())
    lines_per_event_header = 1 if fmt == "csv" else 0

    def run(b: Backend) -> tuple[int, int]:
        out = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
        lines = size = 0
        started = last = time.monotonic()
        try:
            for chunk in b.export(tenant, params):
                out.write(chunk)
                lines += chunk.count(b"\n")
                size += len(chunk)
                now = time.monotonic()
                if show and now - last >= 0.5:
                    last = now
                    n = max(0, lines - lines_per_event_header)
                    click.echo(
                        f"\rexported {n:,} events, {size / 1e6:,.1f} MB "
                        f"({n / max(now - started, 1e-9):,.0f} events/s)",
                        err=True,
                        nl=False,
                    )
            out.flush()
        finally:
            if not to_stdout:
                out.close()
        return max(0, lines - lines_per_event_header), size

    count, size = on_backend(data_dir, server, key, run)
    if show or not to_stdout:
        where = "" if to_stdout else f" to {output}"
        click.echo(
            f"\rexported {count:,} events ({size / 1e6:,.1f} MB){where}" + " " * 20, err=True
        )


@click.group()
def events() -> None:
    """Search and tail events."""


_EVENT_COLUMNS = [
    ("seq", "SEQ"),
    ("occurred_at", "OCCURRED"),
    ("action", "ACTION"),
    ("actor", "ACTOR"),
    ("outcome", "OUTCOME"),
    ("targets", "TARGETS"),
]


def _event_row(ev: dict[str, Any]) -> dict[str, Any]:
    return {
        **ev,
        "occurred_at": ev["occurred_at"][:23] + "Z",
        "actor": f"{ev['actor']['type']}:{ev['actor']['id']}",
        "targets": [f"{t['type']}:{t['id']}" for t in ev["targets"]],
    }


@events.command("search")
@click.option("--tenant", help="Tenant (needed with --data-dir; a key implies its own).")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Follow cursors to the end.")
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON, one event a line.")
@target_options
def events_search(
    tenant: str | None,
    all_pages: bool,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
    **filters: Any,
) -> None:
    """Find events, newest first."""
    params = _filter_params(filters)

    def pages(b: Backend) -> Iterator[dict[str, Any]]:
        while True:
            page = b.search(tenant, params)
            yield from page["data"]
            if not all_pages or not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    found = on_backend(data_dir, server, key, lambda b: list(pages(b)))
    if as_json:
        for ev in found:
            click.echo(orjson.dumps(ev).decode())
    else:
        table([_event_row(ev) for ev in found], _EVENT_COLUMNS)


@events.command("tail")
@click.option("--tenant", help="Tenant (needed with --data-dir).")
@click.option("-n", "--lines", type=click.IntRange(0, 1000), default=10, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Poll interval (s).")
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON.")
@target_options
def events_tail(
    tenant: str | None,
    lines: int,
    follow: bool,
    interval: float,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Print the latest events in log order, and with -f keep following."""

    def emit(rows: list[dict[str, Any]]) -> None:
        for ev in rows:
            if as_json:
                click.echo(orjson.dumps(ev).decode())
            else:
                r = _event_row(ev)
                click.echo(
                    f"{r['seq']:>8}  {r['occurred_at']}  {r['action']:<28} {r['actor']:<24} "
                    f"{r['outcome']:<7} {' '.join(r['targets'])}"
                )

    def run(b: Backend) -> None:
        after = max(0, b.feed(tenant, 0, 0)["size"] - lines)
        while True:
            rows = b.feed(tenant, after, 1000)["data"]
            emit(rows)
            if rows:
                after = rows[-1]["seq"]
                continue
            if not follow:
                return
            time.sleep(interval)

    with contextlib.suppress(KeyboardInterrupt):
        on_backend(data_dir, server, key, run)

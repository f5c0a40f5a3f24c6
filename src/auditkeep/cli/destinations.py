"""``auditkeep destinations``: delivery to webhooks, Splunk HEC, syslog and S3."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from auditkeep.cli.backends import (
    on_backend,
    target_options,
)
from auditkeep.cli.output import print_json, table


@click.group()
def destinations() -> None:
    """Deliver a tenant's events to webhooks, Splunk HEC, syslog or S3 (docs/delivery.md)."""


_DEST_COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("kind", "KIND"),
    ("state", "STATE"),
    ("cursor", "CURSOR"),
    ("lag_events", "LAG"),
    ("lag_seconds", "LAG S"),
    ("attempts", "FAILS"),
    ("last_error", "LAST ERROR"),
]


def _config_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs; values that parse as JSON (numbers, true) are taken so."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: use --set name=value", param_hint="--set")
        try:
            out[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[name] = value
    return out


def _in(when: str | None) -> str:
    """``when`` with how far it is from now, e.g. ``2026-…Z (in 12s)``."""
    if not when:
        return "-"
    try:
        delta = (
            datetime.fromisoformat(when.replace("Z", "+00:00")) - datetime.now(UTC)
        ).total_seconds()
    except ValueError:
        return when
    return f"{when} ({'in ' if delta >= 0 else ''}{abs(delta):.0f}s{'' if delta >= 0 else ' ago'})"


def _next_attempt(dest: dict[str, Any]) -> str:
    if dest.get("next_attempt_at"):
        return _in(dest["next_attempt_at"])
    if dest.get("state") == "paused":
        return "when resumed"
    return "now, or when new events arrive"


def _print_destination(dest: dict[str, Any], as_json: bool) -> None:
    """One destination in full: configuration, delivery position, and the whole last error."""
    if as_json:
        print_json(dest)
        return
    rows: list[tuple[str, Any]] = [
        ("id", dest.get("id")),
        ("name", dest.get("name")),
        ("kind", dest.get("kind")),
        ("state", dest.get("state")),
    ]
    if dest.get("paused_reason"):
        rows.append(("paused because", dest["paused_reason"]))
    config = dest.get("config") or {}
    rows += [
        (f"config.{k}", orjson.dumps(v).decode() if not isinstance(v, str) else v)
        for k, v in sorted(config.items())
    ]
    rows += [
        ("cursor", f"{dest.get('cursor')} (delivered {dest.get('delivered')})"),
        ("lag", f"{dest.get('lag_events')} events, {dest.get('lag_seconds')} s"),
        ("failures in a row", dest.get("attempts")),
        ("failing since", dest.get("failing_since")),
        ("last error", dest.get("last_error")),
        ("last attempt", dest.get("last_attempt_at")),
        ("last success", dest.get("last_success_at")),
        ("next attempt", _next_attempt(dest)),
        ("secrets", dest.get("secrets")),
        ("created", dest.get("created_at")),
        ("updated", dest.get("updated_at")),
    ]
    width = max(len(k) for k, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {'-' if value is None else value}")
    if dest.get("secret"):
        click.echo(f"\nsecret (shown once, give it to the receiver): {dest['secret']}")


@destinations.command("create")
@click.option("--tenant", required=True)
@click.option("--name", required=True, help="A name unique in the tenant.")
@click.option("--kind", required=True, type=click.Choice(["webhook", "splunk_hec", "syslog", "s3"]))
@click.option("--url", help="Receiver URL (webhook, splunk_hec).")
@click.option(
    "--set", "pairs", multiple=True, help="Other config fields: --set host=h --set port=6514."
)
@click.option("--secret", help="Secret (HEC token, S3 secret key; webhooks get one made).")
@click.option(
    "--start",
    type=click.Choice(["beginning", "now"]),
    default="beginning",
    show_default=True,
    help="Deliver the whole log, or only events from now on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def destinations_create(
    tenant: str,
    name: str,
    kind: str,
    url: str | None,
    pairs: tuple[str, ...],
    secret: str | None,
    start: str,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Create a destination; delivery starts at once."""
    config = _config_pairs(pairs) | ({"url": url} if url else {})
    body: dict[str, Any] = {"name": name, "kind": kind, "config": config, "start": start}
    if secret is not None:
        body["secret"] = secret
    dest = on_backend(data_dir, server, key, lambda b: b.destinations(tenant, "create", body))
    _print_destination(dest, as_json)


@destinations.command("list")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def destinations_list(
    tenant: str, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """A tenant's destinations with cursor, lag and last error."""
    found = on_backend(data_dir, server, key, lambda b: b.destinations(tenant, "list"))
    if as_json:
        print_json(found)
    else:
        table(found, _DEST_COLUMNS)


def _dest_command(name: str, op: str, doc: str, *, reason: bool = False) -> None:
    @destinations.command(name, help=doc)
    @click.argument("dest_id")
    @click.option("--tenant", required=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @target_options
    def command(
        dest_id: str,
        tenant: str,
        as_json: bool,
        data_dir: Path,
        server: str | None,
        key: str | None,
        **extra: Any,
    ) -> None:
        args: tuple[Any, ...] = (dest_id,)
        if reason:
            args += (extra.get("reason"),)
        dest = on_backend(data_dir, server, key, lambda b: b.destinations(tenant, op, *args))
        _print_destination(dest, as_json)

    if reason:
        click.option("--reason", help="Shown in the destination's status.")(command)


_dest_command("show", "get", "Show one destination's configuration and delivery status.")
_dest_command("pause", "pause", "Stop delivering until resumed.", reason=True)
_dest_command("resume", "resume", "Deliver again now, from where it stopped.")


@destinations.command("rotate-secret")
@click.argument("dest_id")
@click.option("--tenant", required=True)
@click.option("--secret", help="The new secret (webhooks get one made when not given).")
@click.option(
    "--drop-previous",
    is_flag=True,
    help="Stop signing with previous webhook secrets (after receivers switched).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def destinations_rotate(
    dest_id: str,
    tenant: str,
    secret: str | None,
    drop_previous: bool,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Give a destination a new secret (webhooks co-sign with the old one meanwhile)."""
    body: dict[str, Any] = {} if secret is None else {"secret": secret}
    if drop_previous:
        body["keep_previous"] = False
    dest = on_backend(
        data_dir, server, key, lambda b: b.destinations(tenant, "rotate_secret", dest_id, body)
    )
    _print_destination(dest, as_json)


@destinations.command("delete")
@click.argument("dest_id")
@click.option("--tenant", required=True)
@target_options
def destinations_delete(
    dest_id: str, tenant: str, data_dir: Path, server: str | None, key: str | None
) -> None:
    """Delete a destination (its events stay in the log)."""
    on_backend(data_dir, server, key, lambda b: b.destinations(tenant, "delete", dest_id))
    click.echo(f"deleted {dest_id}")

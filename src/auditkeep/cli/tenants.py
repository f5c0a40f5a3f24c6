"""``auditkeep tenants`` and ``auditkeep keys``: tenants and their API keys."""

from __future__ import annotations

from pathlib import Path

import click

from auditkeep.auth import parse_scopes
from auditkeep.cli.backends import (
    on_backend,
    target_options,
)
from auditkeep.cli.output import print_json, table
from auditkeep.core import parse_expiry
from auditkeep.errors import AuditkeepError


@click.group()
def tenants() -> None:
    """Create and list tenants."""


@tenants.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (defaults to the slug).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def tenants_create(
    slug: str, name: str | None, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """Create tenant SLUG (lower-case letters, digits, '-')."""
    tenant = on_backend(data_dir, server, key, lambda b: b.create_tenant(slug, name))
    if as_json:
        print_json(tenant)
    else:
        click.echo(f"created tenant {tenant['slug']}")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def tenants_list(as_json: bool, data_dir: Path, server: str | None, key: str | None) -> None:
    """List tenants."""
    rows = on_backend(data_dir, server, key, lambda b: b.list_tenants())
    if as_json:
        print_json(rows)
    else:
        table(rows, [("slug", "TENANT"), ("name", "NAME"), ("created_at", "CREATED")])


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key belongs to.")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated: events:write, events:read, admin.",
)
@click.option("--name", default="", help="A label shown in listings.")
@click.option("--expires", help="Expiry: RFC 3339 time (the key stops working then).")
@click.option("--rate-limit", type=float, help="Requests per second for this key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the key is in field 'key').")
@target_options
def keys_create(
    tenant: str,
    scopes: str,
    name: str,
    expires: str | None,
    rate_limit: float | None,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Create an API key. The key is printed once and never stored."""
    if expires is not None:
        try:
            parse_expiry(expires)
        except AuditkeepError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None
    body = {
        "scopes": sorted(parse_scopes(scopes)),
        "name": name,
        "expires_at": expires,
        "rate_limit_rps": rate_limit,
    }
    created = on_backend(data_dir, server, key, lambda b: b.create_key(tenant, body))
    if as_json:
        print_json(created)
        return
    click.echo(
        f"created key {created['key_id']} for tenant {created['tenant']} "
        f"with scopes {','.join(created['scopes'])}"
    )
    click.echo("Store it now; it is not shown again:\n")
    click.echo(f"    {created['key']}\n")


@keys.command("list")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def keys_list(
    tenant: str, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """List a tenant's keys (ids and state, never the keys)."""
    rows = on_backend(data_dir, server, key, lambda b: b.list_keys(tenant))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["state"] = "revoked" if row["revoked_at"] else "active"
    table(
        rows,
        [
            ("key_id", "KEY ID"),
            ("name", "NAME"),
            ("scopes", "SCOPES"),
            ("state", "STATE"),
            ("created_at", "CREATED"),
            ("expires_at", "EXPIRES"),
        ],
    )


@keys.command("revoke")
@click.argument("key_id")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def keys_revoke(
    key_id: str, tenant: str, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """Revoke KEY_ID; it stops working at once (within 0.25 s on a server running on the
    same data directory or database: key_revocation_check)."""
    record = on_backend(data_dir, server, key, lambda b: b.revoke_key(tenant, key_id))
    if as_json:
        print_json(record)
    else:
        click.echo(f"revoked {record['key_id']} at {record['revoked_at']}")

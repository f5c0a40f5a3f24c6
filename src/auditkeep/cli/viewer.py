"""``auditkeep viewer-tokens create``: mint a viewer token on a running server."""

from __future__ import annotations

from typing import Any

import click

from auditkeep.cli.backends import Remote
from auditkeep.cli.output import print_json


@click.group("viewer-tokens")
def viewer_tokens() -> None:
    """Short-lived, scoped, read-only tokens for end users (POST /v1/viewer-tokens)."""


@viewer_tokens.command("create")
@click.option(
    "--server", envvar="AUDITKEEP_URL", required=True, help="The server's URL (env AUDITKEEP_URL)."
)
@click.option(
    "--key", envvar="AUDITKEEP_KEY", help="A tenant key with events:read (env AUDITKEEP_KEY)."
)
@click.option("--actor", "actor_id", help="Only events by this actor id.")
@click.option("--target", nargs=2, metavar="TYPE ID", help="Only events that touched this target.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A fixed filter, as the query parameters of GET /v1/events (repeatable).",
)
@click.option("--hide", "hide_fields", multiple=True, help="A field to hide, e.g. context.ip.")
@click.option(
    "--ttl",
    "ttl_seconds",
    type=click.IntRange(1, 3600),
    default=900,
    show_default=True,
    help="Lifetime in seconds (at most an hour).",
)
@click.option("--whole-tenant", is_flag=True, help="Every event of the tenant (no scope).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def create(
    server: str,
    key: str | None,
    actor_id: str | None,
    target: tuple[str, str] | None,
    filters: tuple[str, ...],
    hide_fields: tuple[str, ...],
    ttl_seconds: int,
    whole_tenant: bool,
    as_json: bool,
) -> None:
    """Mint a viewer token (printed alone, for scripts; --json adds its expiry). The server
    records the issuance in the tenant's log."""
    fixed: dict[str, str] = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--filter")
        fixed[name] = value
    body: dict[str, Any] = {"ttl_seconds": ttl_seconds}
    if actor_id is not None:
        body["actor_id"] = actor_id
    if target:
        body["target"] = {"type": target[0], "id": target[1]}
    if fixed:
        body["filters"] = fixed
    if hide_fields:
        body["hide_fields"] = list(hide_fields)
    if whole_tenant:
        body["scope"] = "tenant"
    remote = Remote(server, key)
    try:
        answer = remote._call("POST", "/v1/viewer-tokens", json=body)
    finally:
        remote.close()
    if as_json:
        print_json(answer)
    else:
        click.echo(answer["token"])

"""The ``auditkeep`` command line.

Admin and read commands work either directly on a data directory (no server needed) or over
HTTP against a running server (``--server URL --key KEY``, or AUDITKEEP_URL / AUDITKEEP_KEY).
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from auditkeep.auth import parse_scopes
from auditkeep.core import Core
from auditkeep.errors import AuditkeepError, ProblemError
from auditkeep.model import format_timestamp, parse_timestamp
from auditkeep.settings import SETTINGS, Config
from auditkeep.store.base import ApiKey, Tenant
from auditkeep.verify import check_events, check_http_event

DEFAULT_DATA_DIR = "./auditkeep-data"


# -- where commands act: a data directory or a server ----------------------------------------


class Local:
    """Acts on a data directory through the core (no writer thread needed for admin)."""

    def __init__(self, data_dir: Path) -> None:
        self.core = Core(Config.load({"data_dir": data_dir}))

    def close(self) -> None:
        self.core.close()

    def create_tenant(self, slug: str, name: str | None) -> dict[str, Any]:
        return _tenant_json(self.core.create_tenant(slug, name))

    def list_tenants(self) -> list[dict[str, Any]]:
        return [_tenant_json(t) for t in self.core.store.list_tenants()]

    def create_key(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        expires = body.get("expires_at")
        record, key = self.core.create_key(
            self.core.tenant(tenant),
            parse_scopes(body["scopes"]),
            name=body.get("name") or "",
            expires_at=parse_timestamp(expires) if expires else None,
            rate_limit_rps=body.get("rate_limit_rps"),
        )
        return {**record.public(), "key": key}

    def list_keys(self, tenant: str) -> list[dict[str, Any]]:
        return [k.public() for k in self.core.store.list_keys(self.core.tenant(tenant).tenant_id)]

    def revoke_key(self, tenant: str, key_id: str) -> dict[str, Any]:
        record: ApiKey = self.core.revoke_key(self.core.tenant(tenant), key_id)
        return record.public()

    def _tenant_id(self, tenant: str | None) -> int:
        if not tenant:
            raise click.UsageError("--tenant is required when working on a data directory")
        return self.core.tenant(tenant).tenant_id

    def search(self, tenant: str | None, params: dict[str, str]) -> dict[str, Any]:
        return self.core.query_events(self._tenant_id(tenant), params)

    def feed(self, tenant: str | None, after: int, limit: int) -> dict[str, Any]:
        return self.core.feed(self._tenant_id(tenant), after, limit)

    def verify(self, tenant: str | None) -> list[tuple[str, int, list[str]]]:
        tenants = [self.core.tenant(tenant)] if tenant else self.core.store.list_tenants()
        out = []
        for t in tenants:
            reader = self.core.store.events(t.tenant_id)
            report = check_events(t.slug, reader.scan(), reader.size())
            out.append((t.slug, report.checked, report.problems))
        return out


class Remote:
    """Acts on a running server over HTTP."""

    def __init__(self, url: str, key: str | None) -> None:
        if not key:
            raise click.UsageError("--key (or AUDITKEEP_KEY) is required with --server")
        self.client = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        )

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.client.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                problem = response.json()
                message = f"{problem.get('title')}: {problem.get('detail')}"
            except ValueError:
                message = response.text[:200]
            raise click.ClickException(f"server answered {response.status_code}: {message}")
        return response.json()

    def create_tenant(self, slug: str, name: str | None) -> dict[str, Any]:
        body = {"slug": slug} | ({"name": name} if name else {})
        result: dict[str, Any] = self._call("POST", "/v1/tenants", json=body)
        return result

    def list_tenants(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/tenants")["data"]
        return result

    def create_key(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in body.items() if v is not None}
        result: dict[str, Any] = self._call("POST", f"/v1/tenants/{tenant}/keys", json=body)
        return result

    def list_keys(self, tenant: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/tenants/{tenant}/keys")["data"]
        return result

    def revoke_key(self, tenant: str, key_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/tenants/{tenant}/keys/{key_id}")
        return result

    def search(self, tenant: str | None, params: dict[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/events", params=params)
        return result

    def feed(self, tenant: str | None, after: int, limit: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/v1/feed", params={"after": after, "limit": limit}
        )
        return result

    def verify(self, tenant: str | None) -> list[tuple[str, int, list[str]]]:
        problems: list[str] = []
        checked, expected, slug = 0, 1, ""
        while True:
            page = self.feed(None, expected - 1, 1000)["data"]
            if not page:
                break
            for event in page:
                slug = slug or event["tenant"]
                if event["seq"] != expected:
                    problems.append(f"seq {expected}..{event['seq'] - 1}: missing")
                problems += check_http_event(slug, event)
                expected = event["seq"] + 1
                checked += 1
        return [(slug or "(this key's tenant)", checked, problems)]


Backend = Local | Remote


def _tenant_json(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "created_at": format_timestamp(t.created_at)}


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir / --server / --key, shared by every command that reads or manages data."""
    fn = click.option(
        "--key", envvar="AUDITKEEP_KEY", help="API key for --server (env AUDITKEEP_KEY)."
    )(fn)
    fn = click.option(
        "--server",
        envvar="AUDITKEEP_URL",
        help="Act on a running server at this URL instead of a data directory (env AUDITKEEP_URL).",
    )(fn)
    fn = click.option(
        "--data-dir",
        envvar="AUDITKEEP_DATA_DIR",
        default=DEFAULT_DATA_DIR,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Act directly on this data directory (env AUDITKEEP_DATA_DIR).",
    )(fn)
    return fn


def open_backend(data_dir: Path, server: str | None, key: str | None) -> Backend:
    if server:
        return Remote(server, key)
    return Local(data_dir)


def _run(data_dir: Path, server: str | None, key: str | None, fn: Callable[[Backend], Any]) -> Any:
    try:
        backend = open_backend(data_dir, server, key)
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return fn(backend)
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from None
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        backend.close()


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print rows as an aligned text table; columns are (key, heading)."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(k)) for k, _ in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = str(value)
    return text if len(text) <= 48 else text[:47] + "…"


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


# -- commands ------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="auditkeep")
def main() -> None:
    """auditkeep: a tamper-evident audit and event log service."""


def _serve_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for setting in reversed(SETTINGS):
        flag = "--" + setting.name.replace("_", "-")
        kind: Any = click.Choice(setting.choices) if setting.choices else setting.type
        if setting.type is Path:
            kind = click.Path(file_okay=False, path_type=Path)
        fn = click.option(
            flag,
            setting.name,
            type=kind,
            default=None,
            help=f"{setting.help} "
            f"[default: {setting.default}; env AUDITKEEP_{setting.name.upper()}]",
        )(fn)
    return fn


@main.command()
@_serve_options
def serve(**overrides: Any) -> None:
    """Run the HTTP server (creates the data directory and an operator key on first start)."""
    import uvicorn

    from auditkeep import logs
    from auditkeep.api.app import create_app

    try:
        config = Config.load(overrides)
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(config.log_level)
    try:
        core = Core(config)
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    port = sock.getsockname()[1]
    url = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{port}"
    operator_key = core.ensure_operator_key()
    data_dir = config.data_dir.resolve()
    click.echo(f"auditkeep {_version()} listening on {url}  (data: {data_dir})", err=True)
    if operator_key:
        click.echo(
            "\nNew data directory: created an operator key. It is shown ONCE; only its hash is "
            f"stored.\n\n    {operator_key}\n\n"
            "Create a tenant and an ingest key with it:\n"
            f"    export AUDITKEEP_URL={url} AUDITKEEP_KEY=<the key above>\n"
            "    auditkeep tenants create acme\n"
            "    auditkeep keys create --tenant acme --scopes events:write,events:read\n"
            f"or, without the server: auditkeep keys create --data-dir {data_dir} --tenant acme "
            "--scopes events:write,events:read\n",
            err=True,
        )
    else:
        click.echo(
            "Get a key: auditkeep keys create --tenant NAME --scopes events:write,events:read "
            f"--data-dir {data_dir}",
            err=True,
        )
    app = create_app(core)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=10,
            backlog=2048,
        )
    )
    server.run(sockets=[sock])


def _version() -> str:
    from auditkeep import __version__

    return __version__


@main.command()
@click.option(
    "--data-dir",
    envvar="AUDITKEEP_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def migrate(data_dir: Path) -> None:
    """Apply pending schema migrations to a data directory."""
    from auditkeep.store.sqlite import SQLiteStore

    try:
        store = SQLiteStore(data_dir)
        version = store.migrate()
        store.close()
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schema is at version {version}")


@main.group()
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
    tenant = _run(data_dir, server, key, lambda b: b.create_tenant(slug, name))
    if as_json:
        _print_json(tenant)
    else:
        click.echo(f"created tenant {tenant['slug']}")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def tenants_list(as_json: bool, data_dir: Path, server: str | None, key: str | None) -> None:
    """List tenants."""
    rows = _run(data_dir, server, key, lambda b: b.list_tenants())
    if as_json:
        _print_json(rows)
    else:
        _table(rows, [("slug", "TENANT"), ("name", "NAME"), ("created_at", "CREATED")])


@main.group()
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
    body = {
        "scopes": sorted(parse_scopes(scopes)),
        "name": name,
        "expires_at": expires,
        "rate_limit_rps": rate_limit,
    }
    created = _run(data_dir, server, key, lambda b: b.create_key(tenant, body))
    if as_json:
        _print_json(created)
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
    rows = _run(data_dir, server, key, lambda b: b.list_keys(tenant))
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        row["state"] = "revoked" if row["revoked_at"] else "active"
    _table(
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
    """Revoke KEY_ID; it stops working at once."""
    record = _run(data_dir, server, key, lambda b: b.revoke_key(tenant, key_id))
    if as_json:
        _print_json(record)
    else:
        click.echo(f"revoked {record['key_id']} at {record['revoked_at']}")


@main.group()
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
@click.option("--actor", "actor_id", help="Actor id.")
@click.option("--action", help="Action, or a prefix such as user.*")
@click.option("--target", "target_id", help="Target id.")
@click.option("--target-type", help="Target type.")
@click.option("--outcome", type=click.Choice(["success", "failure"]))
@click.option("--category")
@click.option("--since", help="RFC 3339 time or an age such as 15m, 24h, 7d.")
@click.option("--until", help="RFC 3339 time or an age.")
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
    filters["since"] = _when(filters["since"])
    filters["until"] = _when(filters["until"])
    params = {k: str(v) for k, v in filters.items() if v is not None}

    def pages(b: Backend) -> Iterator[dict[str, Any]]:
        while True:
            page = b.search(tenant, params)
            yield from page["data"]
            if not all_pages or not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    found = _run(data_dir, server, key, lambda b: list(pages(b)))
    if as_json:
        for ev in found:
            click.echo(orjson.dumps(ev).decode())
    else:
        _table([_event_row(ev) for ev in found], _EVENT_COLUMNS)


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
        _run(data_dir, server, key, run)


@main.command()
@click.option("--tenant", help="Only this tenant (data directory mode).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def verify(
    tenant: str | None, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """Recompute every stored leaf hash and check seqs are gap-free. Exit 1 on any problem."""
    results = _run(data_dir, server, key, lambda b: b.verify(tenant))
    failed = False
    if as_json:
        _print_json(
            [{"tenant": t, "checked": n, "ok": not p, "problems": p} for t, n, p in results]
        )
        failed = any(p for _, _, p in results)
    else:
        for slug, checked, problems in results:
            if problems:
                failed = True
                click.echo(f"tenant {slug}: {checked} events checked, {len(problems)} problem(s):")
                for problem in problems[:100]:
                    click.echo(f"  - {problem}")
                if len(problems) > 100:
                    click.echo(f"  … and {len(problems) - 100} more")
            else:
                click.echo(f"tenant {slug}: {checked} events OK")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()

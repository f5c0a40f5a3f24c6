"""The ``auditkeep`` command line.

Admin and read commands work either directly on a data directory (no server needed) or over
HTTP against a running server (``--server URL --key KEY``, or AUDITKEEP_URL / AUDITKEEP_KEY).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import click
import httpx
import orjson

from auditkeep.auth import parse_scopes
from auditkeep.core import Core, parse_expiry
from auditkeep.errors import AuditkeepError, ProblemError
from auditkeep.integrity.checkpoint import KeyFormatError, Verifier, parse_verifier
from auditkeep.model import canonical_json, format_timestamp
from auditkeep.settings import SETTINGS, Config
from auditkeep.store.base import ApiKey, Tenant
from auditkeep.translog import (
    BundleError,
    VerifyReport,
    checkpoint_json,
    default_jobs,
    export_bundle,
    stored_log_input,
    verify_bundle,
    verify_feed,
    verify_store_log,
)

DEFAULT_DATA_DIR = "./auditkeep-data"
#: where `serve` puts a new operator key when stderr is not a terminal (in DATA_DIR/keys/)
OPERATOR_KEY_FILE = "operator-key.txt"


# -- where commands act: a data directory or a server ----------------------------------------


class Local:
    """Acts on a data directory through the core (no writer thread needed for admin)."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.core = Core(Config.load({"data_dir": data_dir, "database_url": database_url}))

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
            expires_at=parse_expiry(expires),
            rate_limit_rps=body.get("rate_limit_rps"),
        )
        return {**record.public(), "key": key}

    def list_keys(self, tenant: str) -> list[dict[str, Any]]:
        return [k.public() for k in self.core.store.list_keys(self.core.tenant(tenant).tenant_id)]

    def revoke_key(self, tenant: str, key_id: str) -> dict[str, Any]:
        record: ApiKey = self.core.revoke_key(self.core.tenant(tenant), key_id)
        return record.public()

    def destinations(self, tenant: str, op: str, *args: Any) -> Any:
        """Destination operations: create/list/get/update/pause/resume/rotate_secret/delete."""
        return getattr(self.core.destinations, op)(self.core.tenant(tenant), *args)

    def export(self, tenant: str | None, params: dict[str, str]) -> Iterator[bytes]:
        _fmt, chunks = self.core.export(self._tenant_id(tenant), params)
        return chunks

    def _tenant_id(self, tenant: str | None) -> int:
        if not tenant:
            raise click.UsageError("--tenant is required when working on a data directory")
        return self.core.tenant(tenant).tenant_id

    def search(self, tenant: str | None, params: dict[str, str]) -> dict[str, Any]:
        return self.core.query_events(self._tenant_id(tenant), params)

    def feed(self, tenant: str | None, after: int, limit: int) -> dict[str, Any]:
        return self.core.feed(self._tenant_id(tenant), after, limit)

    def verify(
        self, tenant: str | None, pinned: list[Verifier], jobs: int, content: bool
    ) -> list[VerifyReport]:
        store = self.core.store
        tenants = [self.core.tenant(tenant)] if tenant else store.list_tenants()
        verifiers = pinned or self.core.keys.verifiers()
        out = []
        for t in tenants:
            inp = stored_log_input(
                store, t, self.core.tlog.origin(t.slug), verifiers, pinned=bool(pinned)
            )
            out.append(verify_store_log(inp, jobs=jobs, content=content))
        return out

    def sign_checkpoints(self, tenant: str | None) -> list[dict[str, Any]]:
        tenants = [self.core.tenant(tenant)] if tenant else self.core.store.list_tenants()
        out = []
        for t in tenants:
            cp, made = self.core.tlog.sign(t)
            out.append({**checkpoint_json(cp), "signed_now": made})
        return out

    def public_keys(self) -> dict[str, Any]:
        self.core.keys.ensure_key()
        return self.core.tlog.public_keys()

    def bundle_source(self, tenant: str | None) -> tuple[LocalBundleSource, str, str]:
        if not tenant:
            raise click.UsageError("--tenant is required when working on a data directory")
        t = self.core.tenant(tenant)
        return LocalBundleSource(self.core, t), self.core.tlog.origin(t.slug), t.slug


class LocalBundleSource:
    """Export bundles straight from a data directory (signs a checkpoint if one is needed)."""

    def __init__(self, core: Core, tenant: Tenant) -> None:
        self.core = core
        self.tenant = tenant
        self.log = core.store.log(tenant.tenant_id)

    def checkpoint(self, covering: int) -> bytes:
        latest = self.log.latest_checkpoint()
        if latest is None or latest.size < covering:
            latest, _ = self.core.tlog.sign(self.tenant)
        return latest.note

    def verifier_keys(self) -> list[str]:
        return [v.vkey for v in self.core.keys.verifiers(include_retired=False)]

    def frontier(self, size: int) -> list[bytes]:
        from auditkeep.integrity.merkle import CompactRange

        return list(CompactRange.from_reader(size, self.log).hashes)

    def consistency(self, first: int, second: int) -> list[bytes]:
        from auditkeep.integrity.merkle import consistency_proof

        return consistency_proof(first, second, self.log)

    def events(self, from_seq: int, to_seq: int) -> Iterator[tuple[int, bytes, bytes]]:
        reader = self.core.store.events(self.tenant.tenant_id)
        after = from_seq - 1
        while after < to_seq:
            rows = reader.after_seq(after, min(5000, to_seq - after))
            if not rows:
                return
            for ev in rows:
                yield ev.seq, ev.leaf_hash, ev.leaf_data
            after = rows[-1].seq


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
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
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
        return response

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

    _DEST_CALLS: ClassVar[dict[str, tuple[str, str]]] = {
        "create": ("POST", ""),
        "list": ("GET", ""),
        "get": ("GET", "/{}"),
        "update": ("PATCH", "/{}"),
        "pause": ("POST", "/{}/pause"),
        "resume": ("POST", "/{}/resume"),
        "rotate_secret": ("POST", "/{}/rotate-secret"),
        "delete": ("DELETE", "/{}"),
    }

    def destinations(self, tenant: str, op: str, *args: Any) -> Any:
        method, path = self._DEST_CALLS[op]
        if "{}" in path:
            path = path.format(args[0])
            args = args[1:]
        url = f"/v1/tenants/{tenant}/destinations{path}"
        if op == "pause":
            args = ({"reason": args[0]} if args and args[0] else {},)
        response = self._send(method, url, **({"json": args[0]} if args else {}))
        if op == "delete":
            return None
        body = response.json()
        return body["data"] if op == "list" else body

    def export(self, tenant: str | None, params: dict[str, str]) -> Iterator[bytes]:
        try:
            with self.client.stream("GET", "/v1/export", params=params, timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    self._send("GET", "/v1/export", params=params)  # raises with the problem
                yield from r.iter_bytes()
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"the export from {self.client.base_url} failed: {exc}"
            ) from None

    def feed(self, tenant: str | None, after: int, limit: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/v1/feed", params={"after": after, "limit": limit}
        )
        return result

    def _feed_events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        while True:
            page = self.feed(None, after, 1000)["data"]
            if not page:
                return
            yield from page
            after = page[-1]["seq"]

    def _checkpoint_notes(self) -> tuple[list[bytes], str | None]:
        notes: list[bytes] = []
        origin = None
        params: dict[str, int] = {"limit": 1000}
        while True:
            body = self._call("GET", "/v1/log/checkpoints", params=params)
            for cp in body["data"]:
                notes.append(cp["note"].encode("utf-8"))
                origin = cp["origin"]
            if body["next_after_size"] is None:
                return notes, origin
            params["after_size"] = body["next_after_size"]

    def published_verifiers(self) -> list[Verifier]:
        keys = self._call("GET", "/v1/log/key", params={"format": "json"})["keys"]
        return [parse_verifier(k["vkey"]) for k in keys]

    def verify(
        self, tenant: str | None, pinned: list[Verifier], jobs: int, content: bool
    ) -> list[VerifyReport]:
        events = self._feed_events()
        first = next(events, None)
        slug = first["tenant"] if first else "(this key's tenant)"
        notes, origin = self._checkpoint_notes()
        verifiers = pinned or self.published_verifiers()
        expected = {f"{v.name}/{slug}" for v in verifiers}
        if origin is not None and first is not None and origin not in expected:
            raise click.ClickException(
                f"the server's checkpoints are for {origin!r}, not {' or '.join(sorted(expected))}"
            )
        stream = iter([first]) if first else iter([])
        report = verify_feed(
            slug, itertools.chain(stream, events), notes, verifiers, origin, pinned=bool(pinned)
        )
        return [report]

    def sign_checkpoints(self, tenant: str | None) -> list[dict[str, Any]]:
        response = self._send("POST", "/v1/log/checkpoints")
        return [{**response.json(), "signed_now": response.status_code == 201}]

    def public_keys(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/log/key", params={"format": "json"})
        return result

    def bundle_source(self, tenant: str | None) -> tuple[RemoteBundleSource, str, str]:
        source = RemoteBundleSource(self)
        origin = source.origin()
        return source, origin, origin.rsplit("/", 1)[-1]


class RemoteBundleSource:
    """Export bundles over HTTP: events from /v1/feed, proofs from /v1/log."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def origin(self) -> str:
        body = self.remote._call("GET", "/v1/log/checkpoint", params={"format": "json"})
        origin: str = body["origin"]
        return origin

    def checkpoint(self, covering: int) -> bytes:
        body = self.remote._call("GET", "/v1/log/checkpoint", params={"format": "json"})
        if body["size"] < covering:
            signed = self.remote.client.post("/v1/log/checkpoints")
            if signed.is_success:
                body = signed.json()
        note: str = body["note"]
        return note.encode("utf-8")

    def verifier_keys(self) -> list[str]:
        keys = self.remote.public_keys()["keys"]
        return [k["vkey"] for k in keys if k["state"] != "retired"]

    def frontier(self, size: int) -> list[bytes]:
        body = self.remote._call("GET", "/v1/log/frontier", params={"tree_size": size})
        return [bytes.fromhex(h) for h in body["hashes"]]

    def consistency(self, first: int, second: int) -> list[bytes]:
        body = self.remote._call(
            "GET", "/v1/log/proof/consistency", params={"first": first, "second": second}
        )
        return [bytes.fromhex(h) for h in body["hashes"]]

    def events(self, from_seq: int, to_seq: int) -> Iterator[tuple[int, bytes, bytes]]:
        for event in self.remote._feed_events(from_seq - 1):
            if event["seq"] > to_seq:
                return
            body = {k: v for k, v in event.items() if k not in ("seq", "hash")}
            yield event["seq"], bytes.fromhex(event["hash"]), canonical_json(body)


Backend = Local | Remote


def _tenant_json(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "created_at": format_timestamp(t.created_at)}


_DATABASE_URL_META = "auditkeep.database_url"
_DATABASE_URL_HELP = (
    "The PostgreSQL store, as `serve --database-url` uses it (env AUDITKEEP_DATABASE_URL; "
    "several API nodes share it). The data directory then holds only keys/ and the node's "
    "postgres-state.json. Without it: the SQLite store in the data directory."
)


def database_url_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--database-url (env AUDITKEEP_DATABASE_URL) for commands that open the store
    themselves; kept in the click context for :func:`_run` rather than passed to each."""

    def keep(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        ctx.meta[_DATABASE_URL_META] = value or None

    return click.option(
        "--database-url",
        envvar="AUDITKEEP_DATABASE_URL",
        expose_value=False,
        callback=keep,
        help=_DATABASE_URL_HELP,
    )(fn)


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir / --database-url / --server / --key, shared by every command that reads or
    manages data."""
    fn = database_url_option(fn)
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
    ctx = click.get_current_context(silent=True)
    return Local(data_dir, ctx.meta.get(_DATABASE_URL_META) if ctx is not None else None)


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
    """Run the HTTP server (creates the data directory and an operator key on first start).

    The new operator key is printed once when stderr is a terminal; otherwise it is written
    to DATA_DIR/keys/operator-key.txt (mode 0600) and only that path is logged.
    """
    import uvicorn

    from auditkeep import logs
    from auditkeep.api.app import create_app
    from auditkeep.api.protocol import connection_limit, guarded_protocol

    try:
        config = Config.load(overrides)
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(config.log_level)
    if not config.metrics_token and not _loopback(config.host):
        logging.getLogger("auditkeep.serve").warning(
            "/metrics is open to anyone who can reach %s:%s, and its delivery series name "
            "tenants and destinations: set metrics_token (docs/operations.md)",
            config.host,
            config.port,
        )
    try:
        core = Core(config)
    except AuditkeepError as exc:
        raise click.ClickException(str(exc)) from None
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except (OSError, OverflowError) as exc:
        sock.close()
        core.close()
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    port = sock.getsockname()[1]
    url = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{port}"
    operator_key = core.ensure_operator_key()
    data_dir = config.data_dir.resolve()
    where = f"data: {data_dir}"
    if config.database_url:
        where = f"store: PostgreSQL at {getattr(core.store, 'where', '?')}; keys: {data_dir}/keys"
    click.echo(f"auditkeep {_version()} listening on {url}  ({where})", err=True)
    cmd = command_name()
    if operator_key and sys.stderr.isatty():
        click.echo(
            "\nNew data directory: created an operator key. It is shown ONCE; only its hash is "
            f"stored.\n\n    {operator_key}\n\n"
            "Create a tenant and an ingest key with it:\n"
            f"    export AUDITKEEP_URL={url} AUDITKEEP_KEY=<the key above>\n"
            f"    {cmd} tenants create acme\n"
            f"    {cmd} keys create --tenant acme --scopes events:write,events:read\n"
            "then use that tenant key (export AUDITKEEP_KEY=<it>) to send and read events;\n"
            f"or, without the server: {cmd} keys create --data-dir {data_dir} --tenant acme "
            "--scopes events:write,events:read\n",
            err=True,
        )
    elif operator_key:
        # stderr is a log collector, not a person: the key goes to a file only its owner reads
        key_file = _write_operator_key(data_dir, operator_key)
        click.echo(
            "New data directory: created an operator key. It is not shown here (stderr is not "
            f"a terminal): it is in {key_file} (mode 0600), the only copy; only its hash is "
            "stored. Move it to your secret store and delete the file. Then:\n"
            f'    export AUDITKEEP_URL={url} AUDITKEEP_KEY="$(cat {key_file})"\n'
            f"    {cmd} tenants create acme\n",
            err=True,
        )
    else:
        click.echo(
            f"Get a key: {cmd} keys create --tenant NAME --scopes events:write,events:read "
            f"--data-dir {data_dir}",
            err=True,
        )
    app = create_app(core)
    protocol = guarded_protocol(
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        max_connections=connection_limit(config.max_connections),
        refused=lambda reason: core.metrics.connections_refused.labels(reason).inc(),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http=protocol,
            timeout_graceful_shutdown=10,
            backlog=2048,
        )
    )
    server.run(sockets=[sock])


def command_name() -> str:
    """How to run this CLI again from a shell: ``auditkeep`` when that is what the PATH finds,
    else its full path (e.g. ``/srv/auditkeep/.venv/bin/auditkeep`` before ``source
    .venv/bin/activate``)."""
    script = Path(sys.executable).parent / "auditkeep"
    if Path(sys.argv[0]).name == "auditkeep":
        script = Path(sys.argv[0])
    found = shutil.which("auditkeep")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "auditkeep"
    if script.exists():
        return str(script.absolute())
    return f"{sys.executable} -m auditkeep.cli"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_operator_key(data_dir: Path, key: str) -> Path:
    """Write the new operator key to ``DATA_DIR/keys/operator-key.txt``, readable by the
    server's user only (made 0600 before the key is written; replaced atomically)."""
    folder = data_dir / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / OPERATOR_KEY_FILE
    tmp = folder / f".{OPERATOR_KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # (the umask cannot widen it, but an old file could be wider)
        os.write(fd, f"{key}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _version() -> str:
    from auditkeep import __version__

    return __version__


@main.command()
@click.option(
    "--data-dir",
    envvar="AUDITKEEP_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The SQLite store's data directory (env AUDITKEEP_DATA_DIR); with --database-url, "
    "optional: a node's data directory, whose postgres-state.json is then checked too.",
)
@click.option("--database-url", envvar="AUDITKEEP_DATABASE_URL", help=_DATABASE_URL_HELP)
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
    try:
        store = open_store(Config.load(settings), data_dir=data_dir is not None)
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
    """Revoke KEY_ID; it stops working at once (within 0.25 s on a server running on the
    same data directory or database: key_revocation_check)."""
    record = _run(data_dir, server, key, lambda b: b.revoke_key(tenant, key_id))
    if as_json:
        _print_json(record)
    else:
        click.echo(f"revoked {record['key_id']} at {record['revoked_at']}")


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


@main.group()
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
        _print_json(dest)
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
    dest = _run(data_dir, server, key, lambda b: b.destinations(tenant, "create", body))
    _print_destination(dest, as_json)


@destinations.command("list")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def destinations_list(
    tenant: str, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """A tenant's destinations with cursor, lag and last error."""
    found = _run(data_dir, server, key, lambda b: b.destinations(tenant, "list"))
    if as_json:
        _print_json(found)
    else:
        _table(found, _DEST_COLUMNS)


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
        dest = _run(data_dir, server, key, lambda b: b.destinations(tenant, op, *args))
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
    dest = _run(
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
    _run(data_dir, server, key, lambda b: b.destinations(tenant, "delete", dest_id))
    click.echo(f"deleted {dest_id}")


@main.command("export")
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

    count, size = _run(data_dir, server, key, run)
    if show or not to_stdout:
        where = "" if to_stdout else f" to {output}"
        click.echo(
            f"\rexported {count:,} events ({size / 1e6:,.1f} MB){where}" + " " * 20, err=True
        )


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


def _log_keys(values: tuple[str, ...]) -> list[Verifier]:
    try:
        return [parse_verifier(v.strip()) for v in values]
    except KeyFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-key") from None


_LOG_KEY_HELP = (
    "Pin the log's verifier key (as published by GET /v1/log/key or `auditkeep log key`); "
    "repeatable. Checkpoints must be signed by it. Default: the keys the log itself lists."
)


@main.command()
@click.argument("bundle", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", help="Only this tenant (data directory mode).")
@click.option("--log-key", "log_keys", multiple=True, help=_LOG_KEY_HELP)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    help="Worker processes for large logs and bundles [default: the number of CPUs, at most 8].",
)
@click.option(
    "--skip-content",
    is_flag=True,
    help="Check hashes, the Merkle tree and signatures only; do not parse each event "
    "(canonical form, tenant, and the indexed columns and rows searches read).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def verify(
    bundle: Path | None,
    tenant: str | None,
    log_keys: tuple[str, ...],
    jobs: int | None,
    skip_content: bool,
    as_json: bool,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Check a log, or an export BUNDLE offline. Exit 1 on any problem.

    Every stored leaf hash is recomputed from its event, seqs must be gap-free, and the Merkle
    tree is recomputed from the events and compared with the stored tree and with every signed
    checkpoint (whose signatures are checked). With BUNDLE, no server or data directory is
    used: see docs/verification.md.
    """
    pinned = _log_keys(log_keys)
    workers = jobs or default_jobs()
    if bundle is not None:
        _verify_bundle(bundle, pinned, workers, not skip_content, as_json)
        return
    reports: list[VerifyReport] = _run(
        data_dir, server, key, lambda b: b.verify(tenant, pinned, workers, not skip_content)
    )
    failed = any(not r.ok for r in reports)
    if as_json:
        _print_json(
            [
                {
                    "tenant": r.tenant,
                    "checked": r.checked,
                    "ok": r.ok,
                    "problems": r.problems,
                    "root": r.root.hex() if r.root is not None else None,
                    "checkpoints_checked": r.checkpoints_checked,
                    "latest_checkpoint": r.latest_checkpoint,
                    "notes": r.notes,
                }
                for r in reports
            ]
        )
    else:
        for r in reports:
            if r.problems:
                click.echo(
                    f"tenant {r.tenant}: {r.checked} events checked, {len(r.problems)} problem(s):"
                )
                _print_problems(r.problems)
            else:
                click.echo(f"tenant {r.tenant}: {r.checked} events OK")
            for note in r.notes:
                click.echo(f"  {note}")
    sys.exit(1 if failed else 0)


def _print_problems(problems: list[str]) -> None:
    for problem in problems[:100]:
        click.echo(f"  - {problem}")
    if len(problems) > 100:
        click.echo(f"  … and {len(problems) - 100} more")


def _verify_bundle(
    path: Path, pinned: list[Verifier], jobs: int, content: bool, as_json: bool
) -> None:
    if not path.is_file():
        raise click.ClickException(f"{path}: no such file")
    report = verify_bundle(path, pinned, jobs=jobs, content=content)
    if as_json:
        _print_json(
            {
                "bundle": report.path,
                "tenant": report.tenant,
                "from_seq": report.from_seq,
                "to_seq": report.to_seq,
                "checked": report.checked,
                "ok": report.ok,
                "problems": report.problems,
                "checkpoint": report.checkpoint,
                "notes": report.notes,
            }
        )
    else:
        what = f"bundle {path}: tenant {report.tenant}, seqs {report.from_seq}..{report.to_seq}"
        if report.problems:
            click.echo(
                f"{what}: {report.checked} events checked, {len(report.problems)} problem(s):"
            )
            _print_problems(report.problems)
        else:
            click.echo(f"{what}: {report.checked} events OK")
        for note in report.notes:
            click.echo(f"  {note}")
    sys.exit(0 if report.ok else 1)


@main.command("export-bundle")
@click.option("--tenant", help="Tenant (needed with --data-dir; a key implies its own).")
@click.option("--from-seq", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--to-seq", type=click.IntRange(1), help="Last seq [default: the latest checkpoint's size]."
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (NDJSON).",
)
@target_options
def export_bundle_cmd(
    tenant: str | None,
    from_seq: int,
    to_seq: int | None,
    output: Path,
    data_dir: Path,
    server: str | None,
    key: str | None,
) -> None:
    """Write a range of events with a signed checkpoint and proofs to a file that
    `auditkeep verify FILE` checks offline."""

    def run(b: Backend) -> dict[str, Any]:
        source, origin, slug = b.bundle_source(tenant)
        partial = output.with_name(output.name + ".partial")
        try:
            with open(partial, "wb") as out:
                header = export_bundle(source, origin, slug, out, from_seq, to_seq)
            partial.replace(output)
        except BundleError as exc:
            partial.unlink(missing_ok=True)
            raise click.ClickException(str(exc)) from None
        return header

    header = _run(data_dir, server, key, run)
    count = header["to_seq"] - header["from_seq"] + 1
    size = header["checkpoint"].split("\n")[1]
    click.echo(
        f"wrote {output}: {count} events of {header['origin']} (seqs {header['from_seq']}.."
        f"{header['to_seq']}), checkpoint at size {size}"
    )


@main.group("log")
def log_group() -> None:
    """The verifiable log: signing keys and checkpoints."""


@log_group.command("key")
@click.option("--json", "as_json", is_flag=True, help="Print every key with its state (JSON).")
@target_options
def log_key(as_json: bool, data_dir: Path, server: str | None, key: str | None) -> None:
    """Print the checkpoint verifier key(s) to publish (makes the first key if needed).

    With --server no API key is needed: the key is public (GET /v1/log/key).
    """
    if server and not key:
        try:
            response = httpx.get(server.rstrip("/") + "/v1/log/key?format=json", timeout=30.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot get the key from {server}: {exc}") from None
        keys = response.json()
    else:
        keys = _run(data_dir, server, key, lambda b: b.public_keys())
    if as_json:
        _print_json(keys)
        return
    for k in keys["keys"]:
        if k["state"] != "retired":
            click.echo(k["vkey"])


@log_group.command("rotate-key")
@click.option(
    "--data-dir",
    envvar="AUDITKEEP_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@database_url_option
def log_rotate_key(data_dir: Path) -> None:
    """Make a new checkpoint signing key. The previous key keeps co-signing checkpoints until
    `auditkeep log retire-key`, so verifiers and witnesses pinned to it learn the new one."""

    def run(b: Backend) -> str:
        assert isinstance(b, Local)
        b.core.keys.ensure_key()
        record = b.core.keys.rotate()
        b.sign_checkpoints(None)  # every log gets a checkpoint signed by both keys now
        return record.vkey

    vkey = _run(data_dir, None, None, run)
    click.echo(f"new signing key: {vkey}")
    click.echo(
        "Checkpoints are now signed by the new and the previous key. Publish the new key; "
        "once witnesses have seen a checkpoint signed by both, run `auditkeep log retire-key`."
    )


@log_group.command("retire-key")
@click.option(
    "--data-dir",
    envvar="AUDITKEEP_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@database_url_option
def log_retire_key(data_dir: Path) -> None:
    """Stop co-signing with the previous key(s) and delete their private key files."""

    def run(b: Backend) -> list[str]:
        assert isinstance(b, Local)
        return [r.vkey for r in b.core.keys.retire()]

    retired = _run(data_dir, None, None, run)
    if not retired:
        click.echo("no key is being retired (run `auditkeep log rotate-key` first)")
    for vkey in retired:
        click.echo(f"retired {vkey}")


@log_group.command("checkpoint")
@click.option("--tenant", help="Only this tenant (data directory mode; default: every tenant).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@target_options
def log_checkpoint(
    tenant: str | None, as_json: bool, data_dir: Path, server: str | None, key: str | None
) -> None:
    """Sign a checkpoint now (if the log grew since the last one) and print it."""
    made = _run(data_dir, server, key, lambda b: b.sign_checkpoints(tenant))
    if as_json:
        _print_json(made)
        return
    for cp in made:
        state = "signed" if cp["signed_now"] else "already covered by"
        click.echo(f"{cp['origin']}: {state} checkpoint at size {cp['size']}")
        click.echo(cp["note"])


@main.command()
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
@click.option("--log-key", "log_keys", multiple=True, help=_LOG_KEY_HELP)
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
        log_keys=_log_keys(log_keys),
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


if __name__ == "__main__":  # pragma: no cover
    main()

"""Where a command acts: a data directory (through the core) or a running server (over
HTTP), and the options that choose between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import click
import httpx

from auditkeep.auth import parse_scopes
from auditkeep.core import Core, parse_expiry
from auditkeep.integrity.checkpoint import Verifier, parse_verifier
from auditkeep.model import canonical_json, format_timestamp
from auditkeep.settings import Config
from auditkeep.store.base import ApiKey, Tenant
from auditkeep.translog import (
    VerifyReport,
    checkpoint_json,
    stored_log_input,
    verify_feed,
    verify_store_log,
)

DEFAULT_DATA_DIR = "./auditkeep-data"

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
DATABASE_URL_HELP = (
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
        help=DATABASE_URL_HELP,
    )(fn)


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir / --database-url, for commands that act on the store directly (never over
    HTTP)."""
    fn = database_url_option(fn)
    return click.option(
        "--data-dir",
        envvar="AUDITKEEP_DATA_DIR",
        default=DEFAULT_DATA_DIR,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Act directly on this data directory (env AUDITKEEP_DATA_DIR).",
    )(fn)


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir / --database-url / --server / --key, shared by every command that reads or
    manages data."""
    fn = click.option(
        "--key", envvar="AUDITKEEP_KEY", help="API key for --server (env AUDITKEEP_KEY)."
    )(fn)
    fn = click.option(
        "--server",
        envvar="AUDITKEEP_URL",
        help="Act on a running server at this URL instead of a data directory (env AUDITKEEP_URL).",
    )(fn)
    return store_options(fn)


def open_backend(data_dir: Path, server: str | None, key: str | None) -> Backend:
    if server:
        return Remote(server, key)
    ctx = click.get_current_context(silent=True)
    return Local(data_dir, ctx.meta.get(_DATABASE_URL_META) if ctx is not None else None)


def on_backend(
    data_dir: Path, server: str | None, key: str | None, fn: Callable[[Backend], Any]
) -> Any:
    """Run ``fn`` on the backend the options chose, and close it. Errors are left to the
    top-level group (``auditkeep.cli.main``), which turns each into one line."""
    backend = open_backend(data_dir, server, key)
    try:
        return fn(backend)
    finally:
        backend.close()

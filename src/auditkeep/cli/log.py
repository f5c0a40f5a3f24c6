"""``auditkeep verify``, ``auditkeep export-bundle`` and ``auditkeep log``: checking the
verifiable log, bundles for offline checks, signing keys and checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import httpx

from auditkeep.cli.backends import (
    Backend,
    Local,
    on_backend,
    store_options,
    target_options,
)
from auditkeep.cli.output import print_json
from auditkeep.integrity.checkpoint import KeyFormatError, Verifier, parse_verifier
from auditkeep.translog import (
    BundleError,
    VerifyReport,
    default_jobs,
    export_bundle,
    verify_bundle,
)


def pinned_keys(values: tuple[str, ...]) -> list[Verifier]:
    try:
        return [parse_verifier(v.strip()) for v in values]
    except KeyFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-key") from None


LOG_KEY_HELP = (
    "Pin the log's verifier key (as published by GET /v1/log/key or `auditkeep log key`); "
    "repeatable. Checkpoints must be signed by it. Default: the keys the log itself lists."
)


@click.command()
@click.argument("bundle", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", help="Only this tenant (data directory mode).")
@click.option("--log-key", "log_keys", multiple=True, help=LOG_KEY_HELP)
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
    pinned = pinned_keys(log_keys)
    workers = jobs or default_jobs()
    if bundle is not None:
        _verify_bundle(bundle, pinned, workers, not skip_content, as_json)
        return
    reports: list[VerifyReport] = on_backend(
        data_dir, server, key, lambda b: b.verify(tenant, pinned, workers, not skip_content)
    )
    failed = any(not r.ok for r in reports)
    if as_json:
        print_json(
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
        print_json(
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


@click.command("export-bundle")
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

    header = on_backend(data_dir, server, key, run)
    count = header["to_seq"] - header["from_seq"] + 1
    size = header["checkpoint"].split("\n")[1]
    click.echo(
        f"wrote {output}: {count} events of {header['origin']} (seqs {header['from_seq']}.."
        f"{header['to_seq']}), checkpoint at size {size}"
    )


@click.group("log")
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
        keys = on_backend(data_dir, server, key, lambda b: b.public_keys())
    if as_json:
        print_json(keys)
        return
    for k in keys["keys"]:
        if k["state"] != "retired":
            click.echo(k["vkey"])


@log_group.command("rotate-key")
@store_options
def log_rotate_key(data_dir: Path) -> None:
    """Make a new checkpoint signing key. The previous key keeps co-signing checkpoints until
    `auditkeep log retire-key`, so verifiers and witnesses pinned to it learn the new one."""

    def run(b: Backend) -> str:
        assert isinstance(b, Local)
        b.core.keys.ensure_key()
        record = b.core.keys.rotate()
        b.sign_checkpoints(None)  # every log gets a checkpoint signed by both keys now
        return record.vkey

    vkey = on_backend(data_dir, None, None, run)
    click.echo(f"new signing key: {vkey}")
    click.echo(
        "Checkpoints are now signed by the new and the previous key. Publish the new key; "
        "once witnesses have seen a checkpoint signed by both, run `auditkeep log retire-key`."
    )


@log_group.command("retire-key")
@store_options
def log_retire_key(data_dir: Path) -> None:
    """Stop co-signing with the previous key(s) and delete their private key files."""

    def run(b: Backend) -> list[str]:
        assert isinstance(b, Local)
        return [r.vkey for r in b.core.keys.retire()]

    retired = on_backend(data_dir, None, None, run)
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
    made = on_backend(data_dir, server, key, lambda b: b.sign_checkpoints(tenant))
    if as_json:
        print_json(made)
        return
    for cp in made:
        state = "signed" if cp["signed_now"] else "already covered by"
        click.echo(f"{cp['origin']}: {state} checkpoint at size {cp['size']}")
        click.echo(cp["note"])

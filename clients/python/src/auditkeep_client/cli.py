"""``auditkeep-client``: inspect and repair an outbox file.

    auditkeep-client outbox status     --outbox PATH [--json]
    auditkeep-client outbox retry      --outbox PATH [--id ID ...]
    auditkeep-client outbox purge-dead --outbox PATH [--id ID ...] [--yes]
    auditkeep-client outbox export     --outbox PATH [--pending] [--output FILE]
    auditkeep-client outbox drain      --outbox PATH [--endpoint URL ...] [--timeout S]

``retry`` moves dead letters back to the pending queue (a running client sends them; fix the
cause first, e.g. the event's id conflicting with another event). ``export`` writes NDJSON:
one dead letter per line (``{"id", "event", "error", "http_status", "attempts",
"created_at", "dead_at"}``), or with ``--pending`` the pending events. ``drain`` sends every
pending event and exits (a cron job or deploy hook for an outbox whose application stopped):
the API key comes from AUDITKEEP_API_KEY (never a flag, so it stays out of ``ps``), the
endpoints from ``--endpoint`` or AUDITKEEP_ENDPOINTS / AUDITKEEP_URL; exit 0 when nothing is
pending any more, 1 on timeout or when the server refuses the key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .outbox import Outbox
from .schema import format_timestamp

__all__ = ["main"]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _open(path: str) -> Outbox:
    if not Path(path).exists():
        raise SystemExit(f"auditkeep-client: no outbox at {path}")
    return Outbox(path)


def _status(args: argparse.Namespace, out: TextIO) -> int:
    ob = _open(args.outbox)
    try:
        stats = ob.stats()
    finally:
        ob.close()
    if args.json:
        out.write(json.dumps({"outbox": args.outbox, **stats.as_dict()}) + "\n")
        return 0
    rows = [
        ("outbox", args.outbox),
        ("pending", f"{stats.pending} ({stats.pending_bytes} bytes, {stats.leased} leased)"),
        ("oldest pending", _age(stats.oldest_pending_age_s)),
        ("dead letters", str(stats.dead)),
        ("oldest dead letter", _age(stats.oldest_dead_age_s)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key:<{width}}  {value}\n")
    return 0


def _retry(args: argparse.Namespace, out: TextIO) -> int:
    ob = _open(args.outbox)
    try:
        n = ob.retry_dead(args.id)
    finally:
        ob.close()
    out.write(f"re-queued {n} dead letter(s)\n")
    return 0


def _purge(args: argparse.Namespace, out: TextIO) -> int:
    ob = _open(args.outbox)
    try:
        if not args.yes and args.id is None:
            count = ob.stats().dead
            if count and sys.stdin.isatty():
                answer = input(f"delete all {count} dead letter(s) for good? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    out.write("nothing deleted\n")
                    return 1
            elif count:
                out.write("refusing to purge all dead letters without --yes\n")
                return 2
        n = ob.purge_dead(args.id)
    finally:
        ob.close()
    out.write(f"purged {n} dead letter(s)\n")
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    ob = _open(args.outbox)
    target: TextIO = out
    opened = None
    if args.output and args.output != "-":
        opened = target = open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    n = 0
    try:
        if args.pending:
            for seq, event_id, body in ob.pending_events():
                record: dict[str, Any] = {"seq": seq, "id": event_id, "event": json.loads(body)}
                target.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
        else:
            for d in ob.dead_letters(args.id):
                record = {
                    "id": d.id,
                    "event": d.event(),
                    "error": d.error,
                    "http_status": d.http_status,
                    "attempts": d.attempts,
                    "created_at": format_timestamp(d.created_us),
                    "dead_at": format_timestamp(d.dead_us),
                }
                target.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    finally:
        ob.close()
        if opened is not None:
            opened.close()
    if opened is not None:
        out.write(f"exported {n} record(s) to {args.output}\n")
    return 0


def _drain(args: argparse.Namespace, out: TextIO) -> int:
    from .client import AuditKeep  # the client (httpx) only for the command that sends

    _open(args.outbox).close()  # the same "no outbox" message as the other commands
    api_key = os.environ.get("AUDITKEEP_API_KEY")
    if not api_key:
        out.write("auditkeep-client: set AUDITKEEP_API_KEY to a key with events:write\n")
        return 2
    endpoints = args.endpoint or (
        os.environ.get("AUDITKEEP_ENDPOINTS") or os.environ.get("AUDITKEEP_URL") or ""
    ).split(",")
    endpoints = [e.strip() for e in endpoints if e.strip()]
    if not endpoints:
        out.write(
            "auditkeep-client: give the server with --endpoint URL (or AUDITKEEP_ENDPOINTS)\n"
        )
        return 2
    try:
        client = AuditKeep(api_key, endpoints=endpoints, outbox=args.outbox, flush_on_exit=0)
    except ValueError as exc:
        out.write(f"auditkeep-client: {exc}\n")
        return 2
    before = client.outbox_stats()
    deadline = time.monotonic() + args.timeout
    refused = None
    try:
        done = False
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done = client.flush(min(remaining, 0.5))
            refused = client.config_error
            if refused and not done:
                break
        after = client.outbox_stats()
    finally:
        client.close(timeout=1.0)
    sent = max(0, before.pending - after.pending - (after.dead - before.dead))
    dead = after.dead - before.dead
    out.write(
        f"sent {sent} event(s), {dead} rejected into dead letters; {after.pending} pending, "
        f"{after.dead} dead letter(s) in {args.outbox}\n"
    )
    if after.pending:
        why = f"the server refuses the key: {refused}" if refused else f"{args.timeout:g}s passed"
        out.write(f"auditkeep-client: not drained ({why}); the events stay in the outbox\n")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditkeep-client", description="Inspect and repair an auditkeep SDK outbox."
    )
    top = parser.add_subparsers(dest="group", required=True)
    outbox = top.add_parser("outbox", help="outbox commands")
    sub = outbox.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--outbox", required=True, help="path of the outbox SQLite file")

    p = sub.add_parser("status", help="pending and dead-letter counts and ages")
    common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_status)

    p = sub.add_parser("retry", help="move dead letters back to the pending queue")
    common(p)
    p.add_argument("--id", action="append", help="only this event id (repeatable)")
    p.set_defaults(func=_retry)

    p = sub.add_parser("purge-dead", help="delete dead letters for good")
    common(p)
    p.add_argument("--id", action="append", help="only this event id (repeatable)")
    p.add_argument("--yes", action="store_true", help="do not ask (needed to purge all)")
    p.set_defaults(func=_purge)

    p = sub.add_parser("export", help="write dead letters (or pending events) as NDJSON")
    common(p)
    p.add_argument("--pending", action="store_true", help="export pending events instead")
    p.add_argument("--id", action="append", help="only this event id (repeatable)")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "drain",
        help="send every pending event now and exit (key from AUDITKEEP_API_KEY)",
    )
    common(p)
    p.add_argument(
        "--endpoint",
        action="append",
        help="server URL (repeatable; default: AUDITKEEP_ENDPOINTS or AUDITKEEP_URL)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds (60)"
    )
    p.set_defaults(func=_drain)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args, out or sys.stdout)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

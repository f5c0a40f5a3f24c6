"""syslog and S3 destinations end to end: created like a user would, fed by ingest, delivered
by the dispatcher to real receivers (rsyslogd, moto's S3 server) — across restarts of the
deliverer (the server's core is closed and opened again on the same data directory)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

from auditkeep.core import Core
from tests.conftest import event, make_core
from tests.delivery.conftest import FAST_DELIVERY
from tests.delivery.receivers import wait_for
from tests.delivery.rsyslog import Rsyslog, requires_rsyslog
from tests.delivery.s3server import MotoServer, moto_server, requires_moto

__all__ = ["moto_server"]  # the module-scoped fixture, used here

_RFC5424 = re.compile(
    rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) "
    rb"(\[auditkeep@32473 [^\]]*\]) \xef\xbb\xbf(\{.*\})$"
)


def _open(data_dir: Path) -> Core:
    core = make_core(data_dir, **FAST_DELIVERY, delivery_batch_size=25)
    core.start()
    return core


def _ingest(core: Core, start: int, count: int) -> None:
    tenant = core.tenant("acme")
    prepared = core.prepare([event(n) for n in range(start, start + count)], "acme")[1]
    core.writer.append_sync(tenant.tenant_id, [p for _, p in prepared])


@requires_rsyslog
def test_syslog_destination_delivers_valid_rfc5424(tmp_path: Path) -> None:
    receiver = Rsyslog(tmp_path / "rsyslog")
    receiver.start()
    data = tmp_path / "data"
    core = _open(data)
    try:
        tenant = core.create_tenant("acme")
        _ingest(core, 0, 40)
        created = core.destinations.create(
            tenant,
            {
                "name": "rsyslog",
                "kind": "syslog",
                "config": {"host": "127.0.0.1", "port": receiver.port, "hostname": "auditkeep"},
            },
        )
        wait_for(lambda: core.destinations.get(tenant, created["id"])["cursor"] == 40)
        core.close()
        core = _open(data)  # the deliverer restarts; more events follow
        _ingest(core, 40, 20)
        wait_for(lambda: core.destinations.get(tenant, created["id"])["cursor"] == 60)
        raw, _fields = receiver.wait_for(60)
    finally:
        core.close()
        receiver.stop()
    seqs = []
    for line in raw:
        m = _RFC5424.match(line)
        assert m, line[:200]
        pri, timestamp, host, app, procid, msgid, sd, msg = m.groups()
        assert int(pri) == 13 * 8 + 6  # log audit, informational
        assert host == b"auditkeep" and app == b"auditkeep" and procid == b"-"
        body = json.loads(msg)
        assert msgid == body["action"].encode() and timestamp.startswith(b"2026-11-23T10:00:00")
        assert f'seq="{body["seq"]}"'.encode() in sd and b'tenant="acme"' in sd
        seqs.append(body["seq"])
    assert seqs == list(range(1, 61))


@requires_moto
def test_s3_objects_hold_every_event_once_across_restarts(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.create_bucket("audit-archive")
    data = tmp_path / "data"
    core = _open(data)
    config: dict[str, Any] = {
        "endpoint": moto_server.url,
        "bucket": "audit-archive",
        "access_key_id": moto_server.access_key_id,
        "prefix": "e2e/",
    }
    try:
        tenant = core.create_tenant("acme")
        created = core.destinations.create(
            tenant,
            {
                "name": "archive",
                "kind": "s3",
                "config": config,
                "secret": moto_server.secret_access_key,
            },
        )
        assert moto_server.secret_access_key not in json.dumps(created)
        _ingest(core, 0, 60)
        wait_for(lambda: core.destinations.get(tenant, created["id"])["cursor"] == 60)
        # a crash between a PUT and the cursor update leaves the cursor before the batch and
        # the batch fixed (batch_end, written before the first attempt): put the store in that
        # state for the last batch (51-60), then restart the deliverer
        core.store.destinations(tenant.tenant_id).update(created["id"], cursor=50, batch_end=60)
        core.close()
        core = _open(data)
        _ingest(core, 60, 40)
        wait_for(lambda: core.destinations.get(tenant, created["id"])["cursor"] == 100)
    finally:
        core.close()
    s3 = moto_server.client()
    listed = s3.list_objects_v2(Bucket="audit-archive", Prefix="e2e/acme/")
    keys = sorted(o["Key"] for o in listed["Contents"])
    seen: list[int] = []
    for key in keys:
        assert re.fullmatch(r"e2e/acme/\d{4}/\d{2}/\d{2}/\d{20}-\d{20}\.ndjson\.gz", key), key
        body = s3.get_object(Bucket="audit-archive", Key=key)["Body"].read()
        lines = gzip.decompress(body).decode().splitlines()
        events = [json.loads(line) for line in lines]
        first, last = (int(x) for x in key.rsplit("/", 1)[1].split(".")[0].split("-"))
        assert [e["seq"] for e in events] == list(range(first, last + 1))
        seen += [e["seq"] for e in events]
    assert sorted(seen) == list(range(1, 101)) and len(seen) == 100  # each exactly once

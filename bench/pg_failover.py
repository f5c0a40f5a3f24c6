"""PostgreSQL failover timing: how soon writes are acknowledged again after a promotion.

    .venv/bin/python bench/pg_failover.py [--outage 40] [--modes kill,stop]

On a real synchronously replicated pair (tests/pg.py) with one `auditkeep serve` node on a plain
multi-host URL and 2 client threads that resend every unacknowledged batch (same ids): the
primary is SIGKILLed (`kill`: a crash) or SIGSTOPped (`stop`: a hung machine that still accepts
TCP) under load, left so for --outage seconds, then the standby is promoted. Printed per mode:
seconds from the start of the promotion (`pg_ctl promote`) to the first acknowledged write, the
number of 503s the clients saw, and the latency of one POST while no primary exists. Every
acknowledged event is then checked to be stored exactly once.

The short-outage cases (promotion right after the crash or hang) are printed by
`pytest tests/server/test_postgres_failover.py -s -m slow`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import pg  # noqa: E402  (the real PostgreSQL harness)
from tests.conftest import event  # noqa: E402
from tests.server.test_postgres_failover import (  # noqa: E402
    Senders,
    check_log,
    start_nodes,
    stop_nodes,
    timed_post,
    wait_until,
)


def run(mode: str, outage: float) -> str:
    base = Path(tempfile.mkdtemp(prefix="auditkeep-bench-failover-"))
    try:
        with pg.pair_in_tmp() as (primary, standby):
            primary.create_database("auditkeep")
            url = pg.multi_host_url(primary, standby, db="auditkeep")
            os.environ["AUDITKEEP_DATABASE_URL"] = url
            (node,) = start_nodes(base, url, count=1)
            try:
                with Senders([node], workers=2, retry_for=outage + 120) as senders:
                    wait_until(lambda: len(senders.acked) > 50, 30, "acks before the outage")
                    (primary.kill if mode == "kill" else primary.pause)()
                    time.sleep(min(outage, 8.0))
                    answer, no_primary = timed_post(node, event("probe-no-primary"))
                    time.sleep(max(0.0, outage - 8.0))
                    acked = len(senders.acked)
                    promoting = time.monotonic()
                    pg.promote(standby)  # pg_ctl promote, then synchronous_standby_names = ''
                    wait_until(lambda: len(senders.acked) > acked, 120, "an ack")
                    resumed = time.monotonic() - promoting
                    wait_until(lambda: len(senders.acked) > acked + 100, 60, "more acks")
                assert not senders.failures, senders.failures
                expected: dict[str, int | None] = dict(senders.acked)
                if answer["status"] in (200, 201):
                    expected["evt-probe-no-primary"] = None
                check_log([node], expected)
            finally:
                if mode == "stop":
                    primary.kill()
                stop_nodes([node])
        return (
            f"{mode:>4}  outage {outage:5.1f} s  "
            f"first ack {resumed:5.2f} s after `pg_ctl promote`  "
            f"POST without primary: {answer['status']} in {no_primary:.2f} s  "
            f"503s seen by clients: {senders.transient.get('503', 0)}"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=40.0, help="seconds without a primary")
    parser.add_argument("--modes", default="kill,stop", help="kill (crash), stop (hung)")
    args = parser.parse_args()
    if pg.postgres_missing():
        raise SystemExit(f"cannot run: {pg.postgres_missing()}")
    for mode in args.modes.split(","):
        print(run(mode, args.outage), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (lint, types, tests).
# Extra arguments go to pytest (e.g. -k crash, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# Debian packages the tests start for real: rsyslog (+ its TLS driver) as a syslog receiver,
# PostgreSQL for the PostgreSQL store, Chromium for the embeddable timeline.
need=()
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || need+=(rsyslog-gnutls)
# PostgreSQL server binaries for tests/pg.py (it runs throwaway clusters as the postgres user;
# Debian's default cluster on port 5432 is not needed, so none is created).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# Debian's Chromium for the real-browser tests (tests/web, driven by Playwright); never
# `playwright install`, which downloads a browser.
[ -x /usr/bin/chromium ] || need+=(chromium)
if [[ " ${need[*]} " == *" postgresql "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/auditkeep-tests.conf
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "the tests need ${need[*]}: run as root, or apt-get install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    }
fi
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
export REQUIRE_POSTGRES=1  # the PostgreSQL tests fail, not skip, if the server is missing
.venv/bin/pytest "$@"

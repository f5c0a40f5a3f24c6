#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (lint, types, tests).
# Extra arguments go to pytest (e.g. -k crash, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# Debian packages the tests start for real: rsyslog (+ its TLS driver) as a syslog receiver.
need=()
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || need+=(rsyslog-gnutls)
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
.venv/bin/pytest "$@"

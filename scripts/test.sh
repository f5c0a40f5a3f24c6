#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (lint, types, tests).
# Extra arguments go to pytest (e.g. -k crash, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"

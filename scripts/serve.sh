#!/usr/bin/env bash
# Set up (first run only) and run auditkeep on its embedded SQLite store in ./auditkeep-data.
# Extra arguments go to `auditkeep serve` (e.g. --port 9000); see `auditkeep serve --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/auditkeep serve "$@"

#!/usr/bin/env bash
# Set up (when needed) and run auditkeep on its embedded SQLite store in ./auditkeep-data.
# Extra arguments go to `auditkeep serve` (e.g. --port 9000); see `auditkeep serve --help`.
# The install is editable, so code changes need no reinstall: scripts/setup.sh runs only when
# .venv is missing or a pyproject.toml changed since the last install (its stamp file).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.install-stamp
want=$(cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/auditkeep ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    bash scripts/setup.sh
fi
exec .venv/bin/auditkeep serve "$@"

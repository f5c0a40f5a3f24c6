#!/usr/bin/env bash
# Create .venv (if needed) and install auditkeep, its SDK and, with --dev, the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "auditkeep needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        echo "python3 -m venv failed; installing Debian's python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ./clients/python -e ".${extras}"
.venv/bin/python -c "import auditkeep.cli, auditkeep_client.schema"
# scripts/serve.sh reinstalls only when these files change (the install is editable).
cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1 > .venv/.install-stamp

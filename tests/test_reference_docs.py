"""Generated reference docs must match the code; every setting is documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from auditkeep.settings import SETTINGS

REPO = Path(__file__).resolve().parent.parent


def test_generated_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_reference.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_is_documented() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    for s in SETTINGS:
        assert f"AUDITKEEP_{s.name.upper()}" in text

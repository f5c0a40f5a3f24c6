"""The worked example in docs/canonical-encoding.md is what the code produces."""

from __future__ import annotations

from pathlib import Path

from auditkeep.model import parse_timestamp, prepare_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "canonical-encoding.md"


def test_worked_example_matches_the_code() -> None:
    prepared = prepare_event(
        {
            "id": "evt-1",
            "action": "user.login",
            "occurred_at": "2026-11-23T19:20:19.5+01:00",
            "actor": {"id": "u1"},
            "metadata": {"b": 1, "a": "café"},
        },
        "acme",
        parse_timestamp("2026-11-23T18:20:20.000123Z"),
    )
    text = DOC.read_text()
    assert prepared.leaf_data.decode() in text
    assert prepared.leaf_hash.hex() in text

"""The server's compiled validator (auditkeep.fastschema) is an implementation of the schema
defined by auditkeep_client.schema (the SDK's pure-Python validator, the twin): on the shared
vectors and on generated events, valid and invalid, it never accepts what the twin rejects, and
what it accepts it turns into the same normal form, the same canonical bytes and (through
model.prepare_event) the same leaf data and leaf hash."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep import fastschema
from auditkeep.model import format_timestamp, leaf_data_of, prepare_event, prepare_event_by_twin
from auditkeep_client.schema import (
    EventValidationError,
    _jcs_number,
    canonical_json,
    canonical_json_pure,
    check_event,
    check_event_size,
)

VECTORS = Path(__file__).with_name("event_vectors.json")
GENERATED_ID = "generated-id"


def _make_id() -> str:
    return GENERATED_ID


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$repeat"}:
            return "".join(s * n for s, n in value["$repeat"])
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]
    for v in vectors:
        v["event"] = _expand(v["event"])
    return vectors


ALL = _vectors()


def twin(raw: Any) -> tuple[dict[str, Any], int, bytes] | EventValidationError:
    """What the twin makes of ``raw`` (as model.prepare_event_by_twin uses it)."""
    try:
        event, occurred, exact = check_event(raw, make_id=_make_id)
        content = canonical_json(event, orjson_exact=exact)
        check_event_size(event, content)
    except EventValidationError as exc:
        return exc
    return event, occurred, content


def assert_agree(raw: Any) -> fastschema.Checked | None:
    """The fast path accepts only what the twin accepts, and then makes the same things."""
    expected = twin(raw)
    fast = fastschema.check(raw, make_id=_make_id)
    if isinstance(expected, EventValidationError):
        assert fast is None, f"the fast path accepted what the twin rejects: {expected}"
        return None
    if fast is not None:
        event, occurred, content = expected
        assert msgspec.to_builtins(fast.event) == event
        assert fast.occurred_at == occurred
        assert fast.content == content
        assert fast.content == canonical_json_pure(event)  # and it is RFC 8785
    return fast


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_vector(vector: dict[str, Any]) -> None:
    raw = vector["event"]
    expected = twin(raw)
    fast = assert_agree(raw)
    if not vector["valid"]:
        assert isinstance(expected, EventValidationError)
        assert [e.as_dict() for e in expected.errors][:3] == vector["errors"]
        return
    assert not isinstance(expected, EventValidationError), expected
    _, occurred, content = expected
    assert occurred == vector["occurred_at_micros"]
    if "content" in vector:
        assert content == vector["content"].encode()
    else:
        assert hashlib.sha256(content).hexdigest() == vector["content_sha256"]
    assert (fast is not None) == vector["fast_path"]


def test_the_vectors_cover_both_answers_and_both_paths() -> None:
    valid = [v for v in ALL if v["valid"]]
    assert len(valid) >= 40 and len(ALL) - len(valid) >= 80
    assert {v["fast_path"] for v in valid} == {True, False}


@pytest.mark.parametrize("vector", [v for v in ALL if v["valid"]], ids=lambda v: v["name"])
def test_prepare_event_equals_the_twin_path(vector: dict[str, Any]) -> None:
    raw = dict(vector["event"], id="vector-1")
    for tenant in ("acme", "ünïcode-tenant", "t\U0001f600"):
        assert prepare_event(raw, tenant, 1_795_428_000_123_456) == prepare_event_by_twin(
            raw, tenant, 1_795_428_000_123_456
        )


def test_invalid_vectors_raise_the_twins_errors_from_prepare_event() -> None:
    for vector in ALL:
        if vector["valid"]:
            continue
        with pytest.raises(EventValidationError) as caught:
            prepare_event(vector["event"], "acme", 1)
        assert [e.as_dict() for e in caught.value.errors][:3] == vector["errors"]


def test_realistic_events_take_the_fast_path() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from _workload import Workload

    w = Workload(3)
    for i in range(500):
        raw = w.event(1_795_428_000_000_000 + i)
        assert assert_agree(raw) is not None


def test_non_json_containers_go_to_the_twin() -> None:
    """msgspec would take tuples and other mappings where the twin requires list and dict."""
    base = {"action": "a.b", "occurred_at": "2026-11-23T18:20:19Z", "actor": {"id": "u"}}
    from types import MappingProxyType

    for raw in (
        MappingProxyType(base),
        dict(base, actor=MappingProxyType({"id": "u"})),
        dict(base, targets=({"id": "t", "type": "x"},)),
        dict(base, metadata={"a": (1, 2)}),
        dict(base, metadata=MappingProxyType({"a": 1})),
        dict(base, context=MappingProxyType({})),
        dict(base, metadata={"a": {1, 2}}),
        dict(base, metadata={"n": float("nan")}),
        dict(base, metadata={"n": float("inf")}),
        dict(base, metadata={"n": True, 3: "int key"}),
    ):
        assert fastschema.check(raw) is None
        assert_agree(raw)


# -- floats: where msgspec's output is RFC 8785's -------------------------------------------


def _plain(x: float) -> bool:
    return 1e-5 <= abs(x) < 2**53 - 1 and not x.is_integer()


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=2000)
def test_msgspec_writes_the_floats_the_fast_path_takes_as_ecmascript_does(x: float) -> None:
    if _plain(x):
        assert msgspec.json.encode(x).decode() == _jcs_number(x)


def test_float_condition_on_random_bit_patterns_and_edges() -> None:
    rng = random.Random(12)
    samples = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)
    ]
    samples += [rng.uniform(-1, 1) * 10.0 ** rng.randint(-6, 16) for _ in range(20000)]
    samples += [math.nextafter(1e-5, 0), 1e-5, math.nextafter(1e-5, 1), 0.1, 2**52 + 0.5]
    for x in samples:
        if math.isfinite(x) and _plain(x):
            assert msgspec.json.encode(x).decode() == _jcs_number(x), x
    # and why the condition excludes the others: msgspec writes them differently
    for x in (100.0, -0.0, 9.99e-6, 1.5e-6, 1e21):
        assert msgspec.json.encode(x).decode() != _jcs_number(x)


# -- generated events, valid and invalid ----------------------------------------------------

SAFE = 2**53 - 1
LONE = st.sampled_from(["\ud800", "\udfff", "\ud83d", "a\udc00b"])
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\x1f\x7f",
        "\u2028",
        "é",
        "\U0001f600",
        "\ufb33",
        "\uffff",
        "\ue000",
        'q"\\',
        "a\n",
        "a" * 64,
        "a" * 65,
        "a" * 128,
        "a" * 129,
        "a" * 256,
        "a" * 257,
    ]
)
TEXT = st.text(st.characters(exclude_categories=()), max_size=12) | NASTY | LONE
KEYS = st.text(st.characters(exclude_categories=()), max_size=6) | NASTY | LONE
NUMBERS = (
    st.integers(-(2**60), 2**60)
    | st.sampled_from([SAFE, -SAFE, SAFE + 1, -SAFE - 1, 2**64, 0, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([-0.0, 0.0, 1e21, 1e-5, 9.99e-6, 1e-7, 100.0, 0.5, 2.0**53, float(SAFE)])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)


def _deep(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Values nested 3 to 7 levels, around the metadata depth limit."""
    return st.integers(3, 7).flatmap(lambda n: inner.map(lambda v: _nest(v, n)))


def _nest(value: Any, n: int) -> Any:
    for i in range(n):
        value = {"k": value} if i % 2 else [value]
    return value


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 5).flatmap(lambda n: bad if n == 0 else good)


TIMESTAMPS = st.builds(
    lambda d, frac, zone, t, z: (
        d.strftime(f"%Y-%m-%d{t}%H:%M:%S") + frac + (z if zone is None else zone)
    ),
    st.datetimes(
        min_value=datetime(1969, 12, 31),
        max_value=datetime(9999, 12, 31),
    ),
    st.sampled_from(["", ".5", ".123", ".123456", ".1234567", ".123456789"]),
    st.none() | st.sampled_from(["+01:00", "-00:30", "+23:59", "+24:00", "-12:00"]),
    st.sampled_from(["T", "T", "T", "t", " "]),
    st.sampled_from(["Z", "Z", "Z", "z", ""]),
) | st.sampled_from(["2016-12-31T23:59:60Z", "2026-02-29T00:00:00Z", "2026-W47-1T18:20:19Z"])
IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True)
ACTIONS = st.from_regex(r"[a-z0-9_\-]{1,5}(\.[a-z0-9_\-]{1,5}){1,2}", fullmatch=True)
TYPES = st.from_regex(r"[a-z0-9_\-.]{1,8}", fullmatch=True)


def _party(type_required: bool) -> st.SearchStrategy[Any]:
    good = st.fixed_dictionaries(
        {"id": _mostly(TEXT.filter(bool), TEXT | JSON)}
        | ({"type": _mostly(TYPES, TEXT | JSON)} if type_required else {}),
        optional={
            "name": _mostly(TEXT, JSON),
            **({} if type_required else {"type": _mostly(TYPES, TEXT | JSON)}),
        },
    )
    return _mostly(good, JSON | good.map(lambda p: {**p, "extra": 1}))


IPS = st.sampled_from(
    ["10.0.0.1", "2001:db8::1", "fe80::1%eth0", "1.2.3.256", "01.2.3.4", "::ffff:1.2.3.4", "x"]
) | st.ip_addresses().map(str)
CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "ip": _mostly(IPS, TEXT | JSON),
        "user_agent": _mostly(TEXT, JSON),
        "request_id": _mostly(TEXT, JSON),
        "session_id": TEXT,
        "location": TEXT,
    },
)
METADATA = st.dictionaries(KEYS, JSON | _deep(SCALARS), max_size=5)
EVENTS = st.fixed_dictionaries(
    {
        "action": _mostly(ACTIONS, TEXT | JSON),
        "occurred_at": _mostly(TIMESTAMPS, TEXT | JSON),
        "actor": _party(type_required=False),
    },
    optional={
        "id": _mostly(IDS, TEXT | JSON),
        "targets": _mostly(st.lists(_party(type_required=True), max_size=3), JSON)
        | st.integers(19, 21).map(lambda n: [{"id": f"t{i}", "type": "doc"} for i in range(n)]),
        "outcome": _mostly(st.sampled_from(["success", "failure"]), TEXT | JSON),
        "reason": _mostly(TEXT, JSON),
        "category": _mostly(st.sampled_from(["audit", "access", "security"]), TEXT | JSON),
        "context": _mostly(CONTEXT, JSON | CONTEXT.map(lambda c: {**c, "ua": "x"})),
        "metadata": _mostly(METADATA, JSON),
        "unknown": JSON,
    },
)


@given(EVENTS)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_agrees_with_the_twin_on_generated_events(raw: dict[str, Any]) -> None:
    assert_agree(raw)
    if isinstance(raw.get("id"), str):  # and so does the whole preparation, leaf hash included
        try:
            expected = prepare_event_by_twin(raw, "acme", 1_795_428_000_000_001)
        except EventValidationError:
            with pytest.raises(EventValidationError):
                prepare_event(raw, "acme", 1)
            return
        assert prepare_event(raw, "acme", 1_795_428_000_000_001) == expected


@given(EVENTS.filter(lambda e: not isinstance(twin(e), EventValidationError)))
@settings(
    max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
def test_generated_valid_events_agree(raw: dict[str, Any]) -> None:
    """The same on events the twin accepts only, so that acceptances are not left to chance."""
    assert_agree(raw)


@given(st.binary(max_size=40), st.text(max_size=8), st.integers(0, 2**62))
def test_leaf_data_of_inserts_the_server_fields_where_jcs_puts_them(
    blob: bytes, tenant: str, received: int
) -> None:
    event = {
        "action": "a.b",
        "actor": {"id": blob.hex() or "x", "type": "user"},
        "metadata": {"targets": [{"t": 1}], "s": ',"targets":[' + blob.decode("latin-1")},
        "targets": [{"id": ',"targets":[', "type": "x"}],
    }
    try:
        tenant_json = canonical_json(tenant)
    except UnicodeEncodeError:
        return
    assert tenant_json
    with_fields = dict(event, tenant=tenant, received_at=format_timestamp(received))
    assert leaf_data_of(canonical_json(event), tenant, received) == canonical_json_pure(with_fields)

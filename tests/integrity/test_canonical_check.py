"""The verifier's fast canonical-form check agrees with the exact RFC 8785 encoder."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import canonical_json
from auditkeep.translog import is_canonical
from auditkeep.translog.verify import canonical_object

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_agrees_with_the_exact_encoder(value: Any) -> None:
    exact = canonical_json(value)
    assert is_canonical(orjson.loads(exact), exact)
    try:
        other = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return
    assert is_canonical(orjson.loads(other), other) == (
        other == canonical_json(orjson.loads(other))
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1.0}',  # orjson keeps 1.0; RFC 8785 writes 1
        b'{"a":9007199254740993}',  # beyond 2^53
        b'{"\xef\xbf\xbd":2,"\xf0\x9f\x98\x80":1}',  # code point order, not UTF-16
        b'{"b":1,"a":2}',
        b'{"a": 1}',
        b'{"a":1E21}',  # RFC 8785 writes 1e+21
        b'{"a":1e21}',
    ],
)
def test_not_canonical(raw: bytes) -> None:
    assert not is_canonical(orjson.loads(raw), raw)


def test_canonical() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FFFD
    for raw in (b'{"a":1.5,"b":[1,"x"]}', b'{"\xf0\x9f\x98\x80":1,"\xef\xbf\xbd":2}', b"[]"):
        assert is_canonical(orjson.loads(raw), raw), raw


def test_number_range_is_rfc_8785_not_the_ingest_limit() -> None:
    """docs/verification.md: content checks accept any number whose text is the JCS form of
    its double, beyond the ingest limit of 2^53-1 too."""
    for raw in (b'{"a":9007199254740992}', b'{"a":1e+21}', b'{"a":-9007199254740991}'):
        assert is_canonical(orjson.loads(raw), raw), raw


# -- the fast path of the content checks --------------------------------------------------------


def _exact_verdict(raw: bytes) -> bool:
    """What the exact path says: a JSON object (orjson parses it) in RFC 8785 form."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and is_canonical(value, raw)


def _spellings(value: Any) -> list[bytes]:
    """The canonical bytes of ``value`` and other spellings of it a tamperer might store."""
    exact = canonical_json(value)
    out = [exact, exact + b" ", b" " + exact, exact.replace(b":", b": ", 1)]
    try:
        out.append(orjson.dumps(value))  # insertion order, orjson's numbers
        out.append(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))  # code point order
    except orjson.JSONEncodeError:
        pass
    out.append(exact.replace(b"1", b"1.0", 1))
    out.append(exact.replace(b'"a"', b'"\\u0061"', 1))
    return out


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_fast_path_never_accepts_what_the_exact_path_rejects(value: dict[str, Any]) -> None:
    for raw in _spellings(value):
        fast = canonical_object(raw)
        assert fast is None or _exact_verdict(raw), raw
        if fast is not None:
            assert fast == orjson.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1.0}',
        b'{"a":1.5}',  # canonical, but floats go to the exact path
        b'{"a":9007199254740993}',
        b'{"a":9007199254740991}',  # in range, but 16 digits: the exact path decides
        b'{"\xf0\x9f\x98\x80":1,"\xef\xbf\xbd":2}',
        b'{"a":1,"a":1}',
        b'{"b":1,"a":2}',
        b'{"a":"\\ud800"}',
        b"[" * 1100 + b"]" * 1100,
        b'{"a":' + b"[" * 1030 + b"]" * 1030 + b"}",  # deeper than orjson parses
        b"[]",
        b'"x"',
    ],
)
def test_fast_path_leaves_the_hard_cases_to_the_exact_path(raw: bytes) -> None:
    assert canonical_object(raw) is None


def test_fast_path_accepts_a_real_event() -> None:
    raw = canonical_json(
        {"action": "user.login", "actor": {"id": "u\u00e9", "type": "user"}, "n": 12, "ok": True}
    )
    assert canonical_object(raw) == orjson.loads(raw)

"""The verifier's fast canonical-form check agrees with the exact RFC 8785 encoder."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import canonical_json
from auditkeep.translog import is_canonical

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

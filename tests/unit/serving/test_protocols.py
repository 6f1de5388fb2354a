"""Reading JSON bodies, as both protocols do: defects found by fuzzing the server, kept fixed."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidInput
from loopml.serving.protocols import parse_json


def test_large_finite_numbers_nan_and_explicit_infinity_still_parse() -> None:
    parsed = parse_json(b'[1e308, -1.7976931348623157e308, 1e-400, 1e100, NaN, Infinity, "e999"]')
    assert parsed[:4] == [1e308, -1.7976931348623157e308, 0.0, 1e100]
    assert math.isnan(parsed[4]) and parsed[5] == math.inf and parsed[6] == "e999"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":' * 50_000, "nested too deeply"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" + b"7" * 5000 + b"]", "number too long to read"),
        (b"", "not valid JSON"),
    ],
)
def test_unreadable_json_is_invalid_input(body: bytes, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        parse_json(body)


finite = st.floats(allow_nan=False, allow_infinity=False)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_json_of_finite_values_reads_back_unchanged(value: Any) -> None:
    assert parse_json(json.dumps(value).encode()) == value


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=60) | values.map(lambda v: json.dumps(v).encode() + b"e999"))
def test_any_bytes_parse_or_raise_invalid_input(body: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_json(body)

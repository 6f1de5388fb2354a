"""Request decoding defects found by fuzzing the live server, kept fixed."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidInput
from loopml.registry.signature import ColumnSpec, Signature
from loopml.serving.codecs import decode_invocations, parse_json

POINTS = Signature("dataframe", (ColumnSpec("x", "float64"), ColumnSpec("y", "float64")))


def split(data: list[Any], index: list[Any] | None) -> bytes:
    body: dict[str, Any] = {"columns": ["x", "y"], "data": data}
    if index is not None:
        body["index"] = index
    return json.dumps({"dataframe_split": body}).encode()


def test_a_split_index_longer_than_its_data_is_refused_not_repeated() -> None:
    # pandas would repeat the one row to fill the index: two predictions for one row sent.
    with pytest.raises(InvalidInput, match="index has 2 labels but data has 1 rows"):
        decode_invocations(split([[1.0, 2.0]], ["a", "b"]), None, POINTS)
    frame = decode_invocations(split([[1.0, 2.0], [3.0, 4.0]], ["a", "b"]), None, POINTS)
    assert frame.index.tolist() == ["a", "b"] and frame["y"].tolist() == [2.0, 4.0]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), max_size=4),
    index=st.none() | st.lists(st.integers(0, 9) | st.text(max_size=2), max_size=5),
)
def test_a_decoded_split_has_exactly_the_rows_sent(
    rows: list[tuple[float, float]], index: list[Any] | None
) -> None:
    with contextlib.suppress(InvalidInput):
        frame = decode_invocations(split([list(r) for r in rows], index), None, POINTS)
        assert len(frame) == len(rows)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5E+309", "9" * 400 + ".5"])
def test_numbers_beyond_float64_are_refused_not_read_as_infinity(number: str) -> None:
    body = f'{{"dataframe_records": [{{"x": {number}, "y": 1}}]}}'.encode()
    with pytest.raises(InvalidInput, match="beyond the range of float64"):
        decode_invocations(body, None, POINTS)


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

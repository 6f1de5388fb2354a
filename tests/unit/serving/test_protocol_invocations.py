"""MLflow /invocations bodies: decoding JSON, CSV and Parquet requests, encoding answers."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidInput
from loopml.registry.signature import ColumnSpec, Signature
from loopml.serving.protocols import UnsupportedMediaType
from loopml.serving.protocols.invocations import decode, encode

CUSTOMERS = Signature(
    "dataframe",
    (ColumnSpec("age", "int64"), ColumnSpec("spend", "float64"), ColumnSpec("city", "str")),
)
FEATURES = Signature("ndarray", (ColumnSpec(None, "float32", shape=(None, 4)),))
POINTS = Signature("dataframe", (ColumnSpec("x", "float64"), ColumnSpec("y", "float64")))


# decode


def invoke(body: Any, content_type: str | None = "application/json", signature: Any = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode(raw, content_type, signature)


def invoke_error(body: Any, content_type: str | None = "application/json") -> str:
    with pytest.raises(InvalidInput) as info:
        invoke(body, content_type)
    return str(info.value)


def test_dataframe_split_and_records_make_a_dataframe() -> None:
    split = invoke({"dataframe_split": {"columns": ["x", "y"], "data": [[1, "a"], [2, "b"]]}})
    records = invoke({"dataframe_records": [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]})

    pd.testing.assert_frame_equal(split, records)
    assert split.to_dict(orient="list") == {"x": [1, 2], "y": ["a", "b"]}


def test_split_without_columns_takes_the_signatures_names() -> None:
    frame = invoke({"dataframe_split": {"data": [[1, 2.5, "Oslo"]]}}, signature=CUSTOMERS)

    assert list(frame.columns) == ["age", "spend", "city"]


def test_instances_and_inputs_make_arrays_or_frames() -> None:
    array = invoke({"instances": [[1, 2], [3, 4]]})
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [[1, 2], [3, 4]]

    frame = invoke({"instances": [{"x": 1}, {"x": 2}]})
    assert frame.to_dict(orient="list") == {"x": [1, 2]}

    assert invoke({"inputs": [[0.5, 1.5]], "params": {"k": 1}}).shape == (1, 2)
    assert invoke({"inputs": {"x": [1, 2]}}).to_dict(orient="list") == {"x": [1, 2]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "exactly one of the input fields dataframe_split, dataframe_records, instances"),
        ({"instances": [1], "inputs": [1]}, "exactly one of the input fields"),
        ({"rows": [1]}, "got fields ['rows']"),
        ({"params": {}}, "got fields []"),
        (
            [{"x": 1}],
            "exactly one of the input fields dataframe_split, dataframe_records, "
            "instances, inputs (and optionally params); got a list",
        ),
        (b"{not json", "the body is not valid JSON: Expecting property name"),
        (b'{"inputs": [1]}\xff', "the body is not UTF-8"),
        (b"[" * 100_000, "the body's JSON is nested too deeply"),
        ({"inputs": [1], "params": [1]}, '"params" is a list; send a JSON object'),
        ({"dataframe_split": [[1]]}, 'dataframe_split is a list without a "data" list'),
        ({"dataframe_split": {"columns": ["x"], "data": [[1, 2]]}}, "each row is 1 value,"),
        ({"dataframe_split": {"columns": None, "data": [[], None]}}, "dataframe_split.data[1]"),
        ({"dataframe_split": {"data": [[1.0], [1.0, 2.0]]}}, "each row is 1 value,"),
        ({"dataframe_records": [[1]]}, "dataframe_records must be a list of objects"),
        ({"instances": 5}, "instances is a number; send a list of rows"),
        ({"instances": [[1, 2], [3]]}, "instances cannot be read as a table or array"),
        ({"instances": [{"x": 1}, 2]}, "instances mixes rows of different kinds"),
        ({"inputs": {"x": 1}}, "inputs cannot be read as a table or array"),
        ({"dataframe_split": {"columns": [{"x": 1}], "data": [[1]]}}, "columns is [{'x': 1}]"),
        ({"dataframe_split": {"index": "ab", "data": [[1]]}}, "dataframe_split.index is 'ab'"),
    ],
)
def test_malformed_invocations_say_what_is_expected(body: Any, expected: str) -> None:
    assert expected in invoke_error(body)


def test_csv_bodies_make_a_dataframe_and_keep_text_columns_as_text() -> None:
    body = b"age,spend,city\n34,1.5,007\n51,,Lima\n"
    frame = invoke(body, "text/csv", CUSTOMERS)

    assert frame["city"].tolist() == ["007", "Lima"]
    assert frame["age"].tolist() == [34, 51]
    assert math.isnan(frame["spend"][1])
    assert invoke(body, "text/csv")["city"].tolist()[1] == "Lima"
    assert "not a readable CSV table" in invoke_error(b"", "text/csv")
    assert "not a readable CSV table" in invoke_error(b"a,b\n1,2\n1,2,3,4\n", "text/csv")


def test_parquet_bodies_make_a_dataframe() -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "city": ["a", "b"]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)

    read = invoke(buffer.getvalue(), "application/vnd.apache.parquet")
    assert read.to_dict(orient="list") == frame.to_dict(orient="list")
    assert "not a readable Parquet table" in invoke_error(
        b"not parquet", "application/vnd.apache.parquet"
    )


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON;charset=UTF8", None]
)
def test_json_content_types_with_utf8_or_no_header_are_read(content_type: str | None) -> None:
    assert invoke({"inputs": [1, 2]}, content_type).tolist() == [1, 2]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json; charset=latin-1", "charset 'latin-1' is not supported; send"),
        ("text/plain", "content type 'text/plain' is not supported; send application/json"),
        ("application/json; format=pandas-split", "parameter 'format=pandas-split' is not"),
    ],
)
def test_other_content_types_and_charsets_are_unsupported_media(
    content_type: str, expected: str
) -> None:
    with pytest.raises(UnsupportedMediaType, match=expected):
        invoke({"inputs": [1]}, content_type)
    assert issubclass(UnsupportedMediaType, InvalidInput)


# encode


def test_predictions_become_json_values() -> None:
    assert encode(np.array([[1.0, np.nan]])) == {"predictions": [[1.0, None]]}
    assert encode(np.array([3, 7])) == {"predictions": [3, 7]}
    assert encode(pd.Series([0.5, None])) == {"predictions": [0.5, None]}
    assert encode(np.float32(0.5)) == {"predictions": 0.5}
    assert encode(np.array(["2024-01-02", "NaT"], dtype="datetime64[D]")) == {
        "predictions": ["2024-01-02T00:00:00", None]
    }
    frame = pd.DataFrame(
        {"y": [3, 7], "z": [np.nan, 1.0], "at": pd.to_datetime(["2024-01-02"] * 2)}
    )
    assert encode(frame) == {
        "predictions": [
            {"y": 3, "z": None, "at": "2024-01-02T00:00:00"},
            {"y": 7, "z": 1.0, "at": "2024-01-02T00:00:00"},
        ]
    }
    nested = encode({"a": [np.int64(1), np.inf], "b": (pd.NA, b"x")})
    assert (
        json.dumps(nested, allow_nan=False) == '{"predictions": {"a": [1, null], "b": [null, "x"]}}'
    )


# Defects found by fuzzing the live server, kept fixed


def split(data: list[Any], index: list[Any] | None) -> bytes:
    body: dict[str, Any] = {"columns": ["x", "y"], "data": data}
    if index is not None:
        body["index"] = index
    return json.dumps({"dataframe_split": body}).encode()


def test_a_split_index_longer_than_its_data_is_refused_not_repeated() -> None:
    # pandas would repeat the one row to fill the index: two predictions for one row sent.
    with pytest.raises(InvalidInput, match="index has 2 labels but data has 1 rows"):
        decode(split([[1.0, 2.0]], ["a", "b"]), None, POINTS)
    frame = decode(split([[1.0, 2.0], [3.0, 4.0]], ["a", "b"]), None, POINTS)
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
        frame = decode(split([list(r) for r in rows], index), None, POINTS)
        assert len(frame) == len(rows)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5E+309", "9" * 400 + ".5"])
def test_numbers_beyond_float64_are_refused_not_read_as_infinity(number: str) -> None:
    body = f'{{"dataframe_records": [{{"x": {number}, "y": 1}}]}}'.encode()
    with pytest.raises(InvalidInput, match="beyond the range of float64"):
        decode(body, None, POINTS)


# Fuzz: any JSON gets either a decoded input or InvalidInput, never another error

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
invocations = st.dictionaries(
    st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params"]),
    json_values
    | st.fixed_dictionaries({"columns": json_values, "data": json_values})
    | st.lists(st.dictionaries(st.sampled_from(["x", "y"]), scalars), max_size=3),
    max_size=2,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=invocations.map(lambda b: json.dumps(b).encode())
    | json_values.map(lambda b: json.dumps(b).encode())
    | st.binary(max_size=40),
    content_type=st.sampled_from(
        ["application/json", "text/csv", None, "text/csv; x=1", "application/vnd.apache.parquet"]
    ),
    signature=st.sampled_from([None, CUSTOMERS, FEATURES]),
)
def test_decode_invocations_raises_only_invalid_input(
    body: bytes, content_type: str | None, signature: Signature | None
) -> None:
    with contextlib.suppress(InvalidInput):
        decode(body, content_type, signature)

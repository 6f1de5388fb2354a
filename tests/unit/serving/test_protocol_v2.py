"""Open Inference Protocol v2 bodies: decoding requests, encoding responses, model metadata."""

from __future__ import annotations

import contextlib
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
from loopml.serving.protocols.v2 import MAX_ELEMENTS, decode, encode, model_metadata

CUSTOMERS = Signature(
    "dataframe",
    (ColumnSpec("age", "int64"), ColumnSpec("spend", "float64"), ColumnSpec("city", "str")),
)
FEATURES = Signature("ndarray", (ColumnSpec(None, "float32", shape=(None, 4)),))


def tensor(name: str, shape: Any, datatype: Any, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def v2(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": list(inputs), **extra}


def error(body: object, signature: Signature | None = None, **options: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        decode(body, signature, **options)
    return str(info.value)


# decode: tensors


def test_flat_and_nested_data_decode_to_the_same_array() -> None:
    flat = decode(v2(tensor("x", [2, 3], "FP32", [1, 2, 3, 4, 5, 6])), None).data
    nested = decode(v2(tensor("x", [2, 3], "FP32", [[1, 2, 3], [4, 5, 6]])), None).data

    assert flat.dtype == np.float32
    assert flat.shape == (2, 3)
    np.testing.assert_array_equal(flat, nested)
    np.testing.assert_array_equal(flat[1], [4, 5, 6])


def test_the_request_id_parameters_and_requested_outputs_are_kept() -> None:
    body = v2(
        tensor("x", [1], "INT64", [7]),
        id="42",
        parameters={"k": "v"},
        outputs=[{"name": "predict"}],
    )
    request = decode(body, None)

    assert (request.id, request.parameters, request.outputs) == ("42", {"k": "v"}, ["predict"])
    plain = decode(v2(tensor("x", [1], "INT64", [7])), None)
    assert (plain.id, plain.parameters, plain.outputs) == (None, {}, None)


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT32", [1, -2], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [0.5, -2], np.float16),
        ("FP64", [0.1, 3], np.float64),
    ],
)
def test_values_come_back_with_their_datatype(datatype: str, data: list[Any], dtype: Any) -> None:
    array = decode(v2(tensor("x", [2], datatype, data)), None).data

    assert array.dtype == dtype
    assert array.tolist() == data


def test_bytes_are_text() -> None:
    array = decode(v2(tensor("x", [3], "BYTES", ["a", "", None])), None).data

    assert array.dtype == object
    assert array.tolist() == ["a", "", None]
    message = error(v2(tensor("x", [2], "BYTES", ["a", 5])))
    assert "inputs[0].data element 1 is 5, not BYTES; send text" in message


def test_bool_takes_true_false_or_zero_one_and_nothing_else() -> None:
    array = decode(v2(tensor("x", [3], "BOOL", [1, 0, True])), None).data
    assert array.tolist() == [True, False, True]

    assert "element 1 is 2, not BOOL; send true/false (or 0/1)" in error(
        v2(tensor("x", [2], "BOOL", [1, 2]))
    )
    assert "element 0 is 'yes', not BOOL" in error(v2(tensor("x", [1], "BOOL", ["yes"])))


def test_integers_refuse_fractions_text_and_values_out_of_range() -> None:
    array = decode(v2(tensor("x", [2], "INT32", [1.0, 2])), None).data
    assert array.tolist() == [1, 2]

    assert "inputs[0].data element 1 is 1.5, not INT64; send whole numbers" in error(
        v2(tensor("x", [2], "INT64", [1, 1.5]))
    )
    assert "element 0 is 256, not UINT8; send whole numbers from 0 to 255" in error(
        v2(tensor("x", [1], "UINT8", [256]))
    )
    assert "element 1 is -1, not UINT32" in error(v2(tensor("x", [2], "UINT32", [1, -1])))
    assert "element 0 is 18446744073709551616, not INT64" in error(
        v2(tensor("x", [1], "INT64", [2**64]))
    )
    assert "element 0 is '3', not INT64" in error(v2(tensor("x", [1], "INT64", ["3"])))
    assert "element 0 is None, not INT64" in error(v2(tensor("x", [2], "INT64", [None, 1])))


def test_floats_read_null_as_missing_and_refuse_values_out_of_range() -> None:
    array = decode(v2(tensor("x", [2], "FP64", [None, 1.5])), None).data
    assert math.isnan(array[0])
    assert array[1] == 1.5

    assert "element 1 is 70000, not FP16" in error(v2(tensor("x", [2], "FP16", [1, 70000])))
    assert "element 0 is 'one', not FP32" in error(v2(tensor("x", [1], "FP32", ["one"])))
    assert "element 0 is {}, not FP64" in error(v2(tensor("x", [1], "FP64", [{}])))


def test_data_must_hold_as_many_values_as_the_shape() -> None:
    message = error(v2(tensor("x", [2, 2], "FP32", [1, 2, 3])))
    assert "inputs[0].data has 3 elements but inputs[0].shape [2, 2] needs 4" in message

    nested = error(v2(tensor("x", [2], "FP32", [[1, 2], [3]])))
    assert "inputs[0].data has more than the 2 elements inputs[0].shape needs" in nested


def test_zero_sized_tensors_decode() -> None:
    array = decode(v2(tensor("x", [0, 4], "FP32", [])), None).data

    assert array.shape == (0, 4)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([1, 2], 'the request body is a list; send a JSON object with "inputs"'),
        ({}, '"inputs" must be a non-empty list'),
        ({"inputs": []}, '"inputs" must be a non-empty list'),
        ({"inputs": {"x": 1}}, '"inputs" must be a non-empty list'),
        ({"inputs": [5]}, "inputs[0] is a number; send an object"),
        (v2({"shape": [1], "datatype": "FP32", "data": [1]}), "inputs[0].name is null"),
        (v2(tensor("x", [-1], "FP32", [1])), "inputs[0].shape is [-1]; send a list of sizes >= 0"),
        (v2(tensor("x", [True], "FP32", [1])), "inputs[0].shape is [True]"),
        (v2(tensor("x", "2", "FP32", [1])), "inputs[0].shape is '2'"),
        (v2(tensor("x", [1], "FLOAT", [1])), "inputs[0].datatype is 'FLOAT'; use one of BOOL"),
        (v2(tensor("x", [1], ["FP32"], [1])), "inputs[0].datatype is ['FP32']"),
        (v2(tensor("x", [1], "FP32", 1)), "inputs[0].data is a number; send a (flat or nested)"),
        (v2(tensor("x", [1], "FP32", [1]), id=5), '"id" is a number; send text'),
        (v2(tensor("x", [1], "FP32", [1]), parameters=[]), '"parameters" is a list'),
        (v2(tensor("x", [1], "FP32", [1]), outputs="predict"), '"outputs" is text'),
        (v2(tensor("x", [1], "FP32", [1]), outputs=[{}]), 'outputs[0] needs a "name"'),
    ],
)
def test_malformed_requests_name_the_field(body: object, expected: str) -> None:
    assert expected in error(body)


def test_the_element_limit_is_checked_before_reading_the_data() -> None:
    message = error(v2(tensor("x", [10**8], "FP32", [])))
    assert f"limit of {MAX_ELEMENTS:,}" in message
    assert "split the batch into smaller requests" in message

    two = v2(tensor("a", [6], "FP32", [0] * 6), tensor("b", [6], "FP32", [0] * 6))
    assert "inputs[1].shape [6] holds 6 elements, more than the 4 left" in error(
        two, max_elements=10
    )
    decode(two, None, max_elements=12)


# decode: model inputs


def test_a_dataframe_model_takes_one_input_per_column() -> None:
    body = v2(
        tensor("city", [2], "BYTES", ["Oslo", "Lima"]),
        tensor("age", [2, 1], "INT64", [[34], [51]]),
        tensor("spend", [2], "FP64", [1.5, None]),
    )
    frame = decode(body, CUSTOMERS).data

    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["city", "age", "spend"]
    assert frame["age"].tolist() == [34, 51]
    assert frame["city"].tolist() == ["Oslo", "Lima"]


def test_a_dataframe_model_takes_one_input_holding_every_column() -> None:
    body = v2(tensor("rows", [2, 3], "FP64", [[1, 2, 3], [4, 5, 6]]))
    frame = decode(body, CUSTOMERS).data

    assert list(frame.columns) == ["age", "spend", "city"]
    assert frame["spend"].tolist() == [2, 5]


def test_missing_columns_are_left_for_the_signature_to_report() -> None:
    frame = decode(v2(tensor("age", [1], "INT64", [3])), CUSTOMERS).data

    assert list(frame.columns) == ["age"]


def test_dataframe_inputs_must_be_known_equal_length_columns() -> None:
    unknown = error(v2(tensor("agee", [1], "INT64", [3])), CUSTOMERS)
    assert "inputs[0].name 'agee' is not a column of the model" in unknown
    assert "it expects columns age, spend, city" in unknown

    uneven = v2(tensor("age", [2], "INT64", [1, 2]), tensor("spend", [3], "FP64", [1, 2, 3]))
    assert "inputs[1].shape says 3 rows but inputs[0] has 2" in error(uneven, CUSTOMERS)

    wide = v2(tensor("age", [1, 2], "INT64", [1, 2]))
    assert "inputs[0].shape is [1, 2]; a column is sent as [N] or [N, 1]" in error(wide, CUSTOMERS)

    twice = v2(tensor("age", [1], "INT64", [1]), tensor("age", [1], "INT64", [2]))
    assert "inputs[1].name 'age' is sent twice" in error(twice, CUSTOMERS)


def test_without_a_signature_several_inputs_or_pd_content_make_a_dataframe() -> None:
    body = v2(tensor("a", [2], "INT64", [1, 2]), tensor("b", [2], "BYTES", ["x", "y"]))
    frame = decode(body, None).data
    assert frame.to_dict(orient="list") == {"a": [1, 2], "b": ["x", "y"]}

    single = v2(tensor("a", [2], "INT64", [1, 2]), parameters={"content_type": "pd"})
    assert decode(single, None).data.to_dict(orient="list") == {"a": [1, 2]}


def test_an_array_model_takes_exactly_one_input() -> None:
    array = decode(v2(tensor("input-0", [1, 4], "FP32", [1, 2, 3, 4])), FEATURES).data
    assert array.shape == (1, 4)

    two = v2(tensor("a", [4], "FP32", [1, 2, 3, 4]), tensor("b", [4], "FP32", [1, 2, 3, 4]))
    assert "the request has 2 inputs; the model takes one array" in error(two, FEATURES)


# encode


def test_an_array_prediction_is_one_output_named_predict() -> None:
    body = encode(
        np.array([[0.5, np.nan], [np.inf, 1.0]]),
        model_name="churn",
        model_version="3",
        request_id="42",
    )

    assert body == {
        "model_name": "churn",
        "model_version": "3",
        "id": "42",
        "parameters": {},
        "outputs": [
            {"name": "predict", "shape": [2, 2], "datatype": "FP64", "data": [0.5, None, None, 1.0]}
        ],
    }
    json.dumps(body, allow_nan=False)


def test_the_id_is_echoed_only_when_the_request_had_one() -> None:
    body = encode(np.array([1]), model_name="m", model_version="1", request_id=None)

    assert "id" not in body
    assert body["outputs"][0]["datatype"] == "INT64"


@pytest.mark.parametrize(
    ("values", "datatype", "data"),
    [
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array([1, 2], dtype=np.uint8), "UINT8", [1, 2]),
        (np.array([1.5], dtype=np.float32), "FP32", [1.5]),
        (np.array(["a", "b"]), "BYTES", ["a", "b"]),
        (np.array(["a", None, 3], dtype=object), "BYTES", ["a", None, "3"]),
        ([1, 2], "INT64", [1, 2]),
    ],
)
def test_prediction_dtypes_map_to_datatypes(values: Any, datatype: str, data: list[Any]) -> None:
    output = encode(values, model_name="m", model_version="1", request_id=None)["outputs"][0]

    assert (output["datatype"], output["data"]) == (datatype, data)


def test_a_dataframe_prediction_is_one_output_per_column() -> None:
    frame = pd.DataFrame(
        {
            "label": pd.array([1, None], dtype="Int64"),
            "score": [0.25, np.nan],
            "plan": pd.Categorical(["pro", "basic"]),
            "at": pd.to_datetime(["2024-01-02", None]),
            "name": ["a", "b"],
        }
    )
    body = encode(frame, model_name="m", model_version="1", request_id=None)
    outputs = {o["name"]: (o["shape"], o["datatype"], o["data"]) for o in body["outputs"]}

    assert outputs == {
        "label": ([2], "INT64", [1, None]),
        "score": ([2], "FP64", [0.25, None]),
        "plan": ([2], "BYTES", ["pro", "basic"]),
        "at": ([2], "BYTES", ["2024-01-02T00:00:00", None]),
        "name": ([2], "BYTES", ["a", "b"]),
    }
    json.dumps(body, allow_nan=False)


def test_dict_and_series_predictions() -> None:
    body = encode(
        {"label": np.array([1, 0]), "proba": np.array([[0.1, 0.9], [0.8, 0.2]])},
        model_name="m",
        model_version=None,
        request_id=None,
    )
    assert "model_version" not in body
    assert [(o["name"], o["shape"]) for o in body["outputs"]] == [
        ("label", [2]),
        ("proba", [2, 2]),
    ]
    series = encode(pd.Series([1.5], name="y"), model_name="m", model_version="1", request_id=None)
    assert series["outputs"] == [
        {"name": "predict", "shape": [1], "datatype": "FP64", "data": [1.5]}
    ]


def test_requested_outputs_select_and_unknown_ones_are_refused() -> None:
    frame = pd.DataFrame({"label": [1], "score": [0.5]})
    body = encode(frame, model_name="m", model_version="1", request_id=None, outputs=["score"])
    assert [o["name"] for o in body["outputs"]] == ["score"]

    with pytest.raises(InvalidInput, match=r"requested outputs 'proba' .* it has 'label', 'score'"):
        encode(frame, model_name="m", model_version="1", request_id=None, outputs=["proba"])


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP32", [[1.5, 2.0], [3.0, 4.0]]),
        ("INT16", [[1, -2], [3, 4]]),
        ("BOOL", [[True, False], [False, True]]),
        ("BYTES", [["a", "b"], ["c", "d"]]),
    ],
)
def test_v2_round_trip_keeps_shape_datatype_and_values(
    datatype: str, data: list[list[Any]]
) -> None:
    request = decode(v2(tensor("x", [2, 2], datatype, data)), None)
    output = encode(request.data, model_name="m", model_version="1", request_id=None)

    flat = [v for row in data for v in row]
    assert output["outputs"][0] == {
        "name": "predict",
        "shape": [2, 2],
        "datatype": datatype,
        "data": flat,
    }


# model_metadata


def test_metadata_describes_dataframe_columns() -> None:
    signature = Signature(
        "dataframe",
        (
            ColumnSpec("x", "float64"),
            ColumnSpec("n", "int64"),
            ColumnSpec("ok", "bool"),
            ColumnSpec("city", "str"),
            ColumnSpec("plan", "category"),
            ColumnSpec("at", "datetime64[ns]"),
            ColumnSpec("k", "Int64"),
        ),
        (ColumnSpec(None, "float32", shape=(None,)),),
    )
    metadata = model_metadata("churn", "3", signature, "sklearn")

    assert metadata["name"] == "churn"
    assert metadata["versions"] == ["3"]
    assert metadata["platform"] == "loopml_sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("x", "FP64", [-1]),
        ("n", "INT64", [-1]),
        ("ok", "BOOL", [-1]),
        ("city", "BYTES", [-1]),
        ("plan", "BYTES", [-1]),
        ("at", "BYTES", [-1]),
        ("k", "INT64", [-1]),
    ]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP32", "shape": [-1]}]


def test_metadata_gives_an_array_model_its_shape() -> None:
    metadata = model_metadata("digits", "1", FEATURES, "onnx")

    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert model_metadata("m", "1", None, "pyfunc")["inputs"] == []


# Fuzz: any JSON gets either a decoded input or InvalidInput, never another error

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
datatypes = st.sampled_from(["BOOL", "UINT8", "INT32", "INT64", "UINT64", "FP16", "FP64", "BYTES"])
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["age", "spend", "city", "x"]) | json_values,
        "shape": st.lists(st.integers(-1, 3), max_size=3) | json_values,
        "datatype": datatypes | json_values,
        "data": st.lists(scalars, max_size=9) | st.lists(st.lists(scalars, max_size=3)),
    }
)
requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={"id": json_values, "parameters": json_values, "outputs": json_values},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=requests | json_values, signature=st.sampled_from([None, CUSTOMERS, FEATURES]))
def test_decode_v2_raises_only_invalid_input(body: Any, signature: Signature | None) -> None:
    with contextlib.suppress(InvalidInput):
        decode(body, signature)

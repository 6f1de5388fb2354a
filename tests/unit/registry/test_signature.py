"""Signatures: inferred from examples, and enforced on what a model is asked to predict."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.errors import InvalidInput
from loopml.registry.signature import ColumnSpec, Signature, enforce, infer_signature


def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [34, 51, 27],
            "spend": [120.5, np.nan, 80.0],
            "vip": [True, False, False],
            "city": ["Oslo", "Lima", "Pune"],
            "plan": pd.Categorical(["pro", "basic", "pro"], categories=["basic", "pro", "max"]),
            "joined": pd.to_datetime(["2021-03-01", "2022-07-15", "2023-01-09"]),
        }
    )


def spec(signature: Signature, name: str) -> ColumnSpec:
    return next(s for s in signature.inputs if s.name == name)


# Inference


def test_a_dataframe_gives_its_columns_in_order_with_types_and_missing_values() -> None:
    sig = infer_signature(customers())

    assert sig.kind == "dataframe"
    assert sig.names == ["age", "spend", "vip", "city", "plan", "joined"]
    assert spec(sig, "age").dtype == "int64"
    assert spec(sig, "spend").dtype == "float64"
    assert spec(sig, "vip").dtype == "bool"
    assert spec(sig, "city").dtype == "str"
    assert spec(sig, "plan").dtype == "category"
    assert spec(sig, "plan").categories == ("basic", "pro", "max")  # all of them, in code order
    assert spec(sig, "joined").dtype.startswith("datetime64[")
    assert spec(sig, "spend").nullable is True  # the example had a missing value there
    assert spec(sig, "age").nullable is False
    assert all(s.shape is None for s in sig.inputs)


def test_text_in_an_object_column_is_text_and_mixed_objects_are_unchecked() -> None:
    frame = pd.DataFrame(
        {"word": pd.Series(["a", None], dtype=object), "blob": pd.Series([{"k": 1}, [2]])}
    )

    sig = infer_signature(frame)

    assert spec(sig, "word") == ColumnSpec("word", "str", nullable=True)
    assert spec(sig, "blob").dtype == "object"


def test_an_array_gives_its_dtype_and_shape_with_any_number_of_rows() -> None:
    sig = infer_signature(np.zeros((5, 4), dtype="float32"))
    images = infer_signature(np.zeros((2, 28, 28), dtype="uint8"))

    assert sig.kind == "ndarray"
    # NaN is an ordinary float value: float inputs accept it though the example had none.
    assert sig.inputs == (ColumnSpec(None, "float32", (None, 4), nullable=True),)
    assert images.inputs[0].shape == (None, 28, 28)
    assert images.inputs[0].dtype == "uint8"


def test_rows_of_dicts_and_a_dict_of_columns_are_read_as_a_dataframe() -> None:
    rows = [{"age": 34, "city": "Oslo"}, {"age": 51, "city": "Lima"}]

    from_rows = infer_signature(rows)
    from_columns = infer_signature({"age": [34, 51], "city": ["Oslo", "Lima"]})
    from_one_row = infer_signature({"age": 34, "city": "Oslo"})

    assert from_rows.kind == "dataframe"
    assert from_rows.inputs == (
        ColumnSpec("age", "int64", nullable=False),
        ColumnSpec("city", "str", nullable=False),
    )
    assert from_columns == from_rows == from_one_row


def test_a_list_of_lists_is_read_as_an_array() -> None:
    sig = infer_signature([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    assert sig.kind == "ndarray"
    assert sig.inputs[0].shape == (None, 3)


def test_outputs_are_inferred_from_predictions_probabilities_or_a_frame() -> None:
    x = np.zeros((3, 2))

    labels = infer_signature(x, np.array([0, 1, 1]))
    probabilities = infer_signature(x, np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]))
    frame = infer_signature(x, pd.DataFrame({"label": ["a", "b", "a"], "score": [0.1, 0.2, 0.3]}))
    series = infer_signature(x, pd.Series([1.5, 2.5, 3.5], name="price"))

    assert labels.outputs == (ColumnSpec(None, "int64", (None,), nullable=False),)
    assert probabilities.outputs == (ColumnSpec(None, "float64", (None, 2), nullable=True),)
    assert [(s.name, s.dtype) for s in frame.outputs] == [("label", "str"), ("score", "float64")]
    assert series.outputs == (ColumnSpec("price", "float64", nullable=True),)
    assert infer_signature(x).outputs == ()


@pytest.mark.parametrize(
    ("example", "words"),
    [
        ("text", "str"),
        ([], "empty"),
        (np.float64(1.0), "single value"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "'a' twice"),
    ],
)
def test_examples_that_are_no_batch_of_rows_are_refused(example: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        infer_signature(example if not isinstance(example, np.float64) else np.array(example))


# Round trip


def test_a_signature_survives_json_and_back() -> None:
    sig = infer_signature(customers(), np.array([[0.1, 0.9]] * 3))
    arrays = infer_signature(np.zeros((2, 8, 8)), np.array([1, 0]))

    for original in (sig, arrays):
        text = json.dumps(original.to_dict(), allow_nan=False)
        assert Signature.from_dict(json.loads(text)) == original


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"kind": "tensor", "inputs": []}, "kind 'tensor' is unknown"),
        ({"kind": "dataframe", "inputs": [{"name": "a", "dtype": "floaty"}]}, "'floaty'"),
        ({"kind": "dataframe", "inputs": [{"name": "a"}]}, '"dtype"'),
        ({"kind": "ndarray", "inputs": [{"name": None, "dtype": "float64"}]}, "with a shape"),
        ({"format": 9, "kind": "dataframe", "inputs": []}, "upgrade LoopML"),
        (
            {"kind": "dataframe", "inputs": [{"name": "a", "dtype": "int64"}] * 2},
            "'a' twice",
        ),
    ],
)
def test_a_broken_signature_is_refused_naming_what_is_wrong(
    data: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        Signature.from_dict(data)


# Enforcing a dataframe signature


def test_matching_data_comes_back_as_it_is() -> None:
    frame = customers()

    assert enforce(infer_signature(frame), frame) is frame


def test_the_numeric_fast_path_still_casts_orders_and_refuses() -> None:
    numbers = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "ok": [True, False]})
    signature = infer_signature(numbers)
    assert enforce(signature, numbers) is numbers  # nothing to do
    assert enforce(signature, numbers) is numbers  # again, from the plan worked out once
    reordered = enforce(signature, numbers[["ok", "b", "a"]])
    assert list(reordered.columns) == ["a", "b", "ok"]
    narrow = enforce(signature, numbers.astype({"a": "float32", "b": "int32"}))
    assert [str(t) for t in narrow.dtypes] == ["float64", "int64", "bool"]
    strict = Signature("dataframe", (ColumnSpec("a", "float64", nullable=False),))
    with pytest.raises(InvalidInput, match="missing values"):
        enforce(strict, pd.DataFrame({"a": [1.0, np.nan]}))
    with pytest.raises(InvalidInput, match="columns the model does not take"):
        enforce(signature, numbers.assign(extra=1))


def test_columns_are_put_in_the_models_order_and_the_callers_frame_is_left_alone() -> None:
    frame = customers()
    shuffled = frame[["joined", "city", "age", "plan", "vip", "spend"]]
    before = shuffled.copy()

    out = enforce(infer_signature(frame), shuffled)

    assert list(out.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(out, frame)
    pd.testing.assert_frame_equal(shuffled, before)


@pytest.mark.parametrize(
    ("expected", "given"),
    [
        (np.array([1.0, 2.0]), np.array([1, 2])),  # int -> float
        (np.array([1.0, 2.0]), np.array([1.0, 2.0], dtype="float32")),  # float32 -> float64
        (np.array([1, 2]), np.array([1, 2], dtype="int32")),  # int32 -> int64
        (np.array([1, 2]), pd.Series([1, 2], dtype=object)),  # Python ints in an object column
        (np.array([1, 2], dtype="int32"), np.array([1, 2])),  # int64 -> int32, values fit
        (np.array([1.0, 0.0]), np.array([True, False])),  # bool -> float
    ],
)
def test_safe_casts_give_the_model_its_own_dtype(expected: np.ndarray, given: Any) -> None:
    sig = infer_signature(pd.DataFrame({"x": expected}))

    out = enforce(sig, pd.DataFrame({"x": given}))

    assert out["x"].dtype == expected.dtype
    assert out["x"].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("expected", "given", "words"),
    [
        ([1, 2], [1.5, 2.0], "column 'x' is float64 (e.g. 1.5), but the model expects int64"),
        ([1.0, 2.0], ["1.5", "x"], "column 'x' is str (e.g. '1.5'), but the model expects float64"),
        ([True, False], [1, 0], "column 'x' is int64 (e.g. 1), but the model expects bool"),
        (["a", "b"], [1, 2], "column 'x' is int64 (e.g. 1), but the model expects str"),
    ],
)
def test_unsafe_casts_are_refused_naming_column_and_both_types(
    expected: list[Any], given: list[Any], words: str
) -> None:
    sig = infer_signature(pd.DataFrame({"x": expected}))

    with pytest.raises(InvalidInput) as caught:
        enforce(sig, pd.DataFrame({"x": given}))
    assert words in str(caught.value)


def test_an_integer_too_big_for_the_models_dtype_is_refused() -> None:
    sig = infer_signature(pd.DataFrame({"n": np.array([1, 2], dtype="int32")}))

    with pytest.raises(InvalidInput, match="column 'n' holds values from 1 to 4294967296"):
        enforce(sig, pd.DataFrame({"n": [1, 2**32]}))


def test_a_missing_column_is_named_with_every_column_the_model_expects() -> None:
    sig = infer_signature(customers())

    with pytest.raises(InvalidInput) as caught:
        enforce(sig, customers().drop(columns=["vip", "city"]))
    assert str(caught.value) == (
        "columns 'vip', 'city' missing from the input; "
        "the model expects columns: age, spend, vip, city, plan, joined"
    )


def test_extra_columns_are_refused_unless_asked_to_drop_them() -> None:
    sig = infer_signature(customers())
    wider = customers().assign(note="hi", score=1.0)

    with pytest.raises(
        InvalidInput, match=r"does not take: 'note', 'score'.*extra_columns=\"drop\""
    ):
        enforce(sig, wider)
    out = enforce(sig, wider, extra_columns="drop")
    assert list(out.columns) == sig.names
    with pytest.raises(InvalidInput, match="extra_columns='keep' is unknown"):
        enforce(sig, wider, extra_columns="keep")


def test_missing_values_pass_only_where_the_example_had_them() -> None:
    sig = infer_signature(customers())

    out = enforce(sig, customers().assign(spend=np.nan))
    assert out["spend"].isna().all()
    with pytest.raises(InvalidInput, match=r"column 'age' has missing values \(1 of 3\)"):
        enforce(sig, customers().assign(age=[34, None, 27]))


def test_text_is_coded_with_the_models_categories_and_unknown_ones_are_refused() -> None:
    sig = infer_signature(customers())

    out = enforce(sig, customers().assign(plan=["max", "basic", "pro"]))
    assert out["plan"].cat.categories.tolist() == ["basic", "pro", "max"]
    assert out["plan"].cat.codes.tolist() == [2, 0, 1]  # the codes the model was trained on
    with pytest.raises(InvalidInput, match="never saw: 'gold'; its categories are 'basic'"):
        enforce(sig, customers().assign(plan=["gold", "basic", "pro"]))


def test_iso_8601_text_is_read_as_datetimes_and_other_text_refused() -> None:
    sig = infer_signature(customers())

    out = enforce(sig, customers().assign(joined=["2024-01-02", "2024-01-03T10:00", "2024-02-01"]))
    assert out["joined"].dtype == customers()["joined"].dtype
    assert out["joined"].iloc[1] == pd.Timestamp("2024-01-03 10:00")
    with pytest.raises(InvalidInput, match=r"column 'joined' is str \(e.g. 'last week'\)"):
        enforce(sig, customers().assign(joined=["last week", "2024-01-03", "2024-02-01"]))


def test_rows_of_dicts_and_arrays_are_converted_to_the_models_table() -> None:
    sig = infer_signature(customers())
    rows = customers().to_dict("records")

    from_rows = enforce(sig, rows)
    from_array = enforce(sig, customers().to_numpy())

    pd.testing.assert_frame_equal(from_rows, customers())
    assert list(from_array.columns) == sig.names
    assert from_array["age"].dtype == np.int64
    with pytest.raises(InvalidInput, match=r"shape \(3, 2\); the model takes a table with 6"):
        enforce(sig, np.zeros((3, 2)))


def test_the_checked_frame_predicts_as_the_training_frame_did() -> None:
    train = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(train, [0, 0, 1, 1])
    sig = infer_signature(train)
    request = pd.DataFrame({"b": [1, 0, 1, 0], "a": [0, 1, 2, 3]})  # ints, other order

    predicted = model.predict(enforce(sig, request))  # warnings are errors: no name mismatch

    assert predicted.tolist() == model.predict(train).tolist()


# Enforcing an ndarray signature


def test_an_array_of_the_wrong_width_is_refused_naming_the_expected_shape() -> None:
    sig = infer_signature(np.zeros((3, 4)))

    with pytest.raises(InvalidInput) as caught:
        enforce(sig, np.zeros((2, 5)))
    assert str(caught.value) == (
        "the input array has shape (2, 5); the model expects shape (None, 4): "
        "4 features per row (None is any size)"
    )


def test_arrays_are_cast_safely_and_refused_otherwise() -> None:
    floats = infer_signature(np.zeros((3, 2)))
    ints = infer_signature(np.zeros((3, 2), dtype="int64"))

    out = enforce(floats, [[1, 2], [3, 4]])
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    same = np.ones((2, 2))
    assert enforce(floats, same) is same
    with pytest.raises(InvalidInput, match=r"array is float64 .* expects int64"):
        enforce(ints, np.full((2, 2), 0.5))
    with pytest.raises(InvalidInput, match=r"array is str .* expects float64"):
        enforce(floats, np.array([["a", "b"]]))
    with_nan = np.array([[1.0, np.nan], [1.0, 2.0]])
    assert np.isnan(enforce(floats, with_nan)[0, 1])  # a float model takes NaN
    strict = Signature(
        "ndarray", (ColumnSpec(None, "float64", (None, 2), nullable=False),)
    )  # unless its signature says otherwise
    with pytest.raises(InvalidInput, match=r"missing values \(1 of 4\)"):
        enforce(strict, with_nan)


def test_a_dataframe_of_the_right_width_is_converted_for_an_array_model() -> None:
    sig = infer_signature(np.zeros((3, 2)))

    out = enforce(sig, pd.DataFrame({"p": [1, 2], "q": [0.5, 1.5]}))

    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 0.5], [2.0, 1.5]]
    with pytest.raises(InvalidInput, match=r"DataFrame with 3 columns; .* shape \(None, 2\)"):
        enforce(sig, pd.DataFrame({"p": [1], "q": [2], "r": [3]}))
    with pytest.raises(InvalidInput, match="column 'q' is str"):
        enforce(sig, pd.DataFrame({"p": [1], "q": ["x"]}))

"""Materializers: each step output comes back from its bytes exactly as the step returned it."""

from __future__ import annotations

import decimal
import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.errors import InvalidInput, NotFound
from loopml.pipelines import materializers


def round_trip(value: Any, custom: tuple[Any, ...] = ()) -> tuple[str, Any]:
    name, data = materializers.dump(value, custom)
    return name, materializers.by_name(name, custom).load(data)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -(2**80),
        1.5,
        -0.0,
        1e-310,
        "text ✓",
        "",
        True,
        [],
        [1, [2.5, None, "x"], False],
        {"b": 1, "a": {"nested": [1, 2]}},
        {},
    ],
)
def test_plain_data_is_stored_as_json_and_comes_back_equal(value: Any):
    name, back = round_trip(value)
    assert name == "json"
    assert back == value
    assert repr(back) == repr(value)  # same types all the way down, and same key order


def test_json_keeps_the_order_of_dict_keys():
    name, back = round_trip({"zeta": 1, "alpha": 2, "mid": 3})
    assert name == "json"
    assert list(back) == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),  # JSON would return a list
        {"a": (1,)},
        float("nan"),
        [float("inf")],
        {1: "one"},  # JSON would return the key "1"
        {True: "yes"},
        {None: 1},
        np.float64(1.0),
        decimal.Decimal("1.10"),
        {1, 2},
        b"bytes",
    ],
    ids=repr,
)
def test_values_json_would_change_are_pickled(value: Any):
    name, back = round_trip(value)
    assert name == "pickle"
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value
        assert type(back) is type(value)


def test_deeply_nested_lists_are_pickled_not_json():
    value: list[Any] = []
    for _ in range(40):
        value = [value]
    name, back = round_trip(value)
    assert (name, back) == ("pickle", value)


def test_none_is_stored_as_nothing():
    assert materializers.dump(None) == ("none", b"")
    assert materializers.by_name("none").load(b"") is None


def test_data_frames_are_stored_as_parquet_with_their_index_and_types():
    frame = pd.DataFrame(
        {
            "age": [31, 45],
            "income": [1.5, None],
            "city": ["Oslo", "Lima"],
            "joined": pd.to_datetime(["2020-01-01", "2021-06-30"]).tz_localize("UTC"),
            "plan": pd.Categorical(["free", "pro"]),
            "churned": [False, True],
        },
        index=pd.Index(["c1", "c2"], name="customer"),
    )
    name, back = round_trip(frame)
    assert name == "parquet"
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({0: [1, 2], 1: [3, 4]}),  # column names that are not strings
        pd.DataFrame({"mixed": [1, "x"]}),  # Parquet cannot store it
        pd.DataFrame({"lists": [[1, 2], [3]]}),  # Parquet would give numpy arrays back
        pd.DataFrame({"dicts": [{"x": 1}, {"y": 2}]}),  # ... dicts with every key
        pd.DataFrame({"ints": pd.Series([1, None], dtype=object)}),  # ... floats
    ],
    ids=["int-columns", "mixed", "lists", "dicts", "ints-and-none"],
)
def test_data_frames_parquet_would_change_are_pickled(frame: pd.DataFrame):
    name, back = round_trip(frame)
    assert name == "pickle"
    pd.testing.assert_frame_equal(back, frame)
    assert [type(v) for v in back.iloc[:, 0]] == [type(v) for v in frame.iloc[:, 0]]


def test_numpy_arrays_are_stored_as_npy_unless_they_hold_objects():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    name, back = round_trip(array)
    assert name == "npy"
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)

    objects = np.array([1, "a", None], dtype=object)
    name, back = round_trip(objects)
    assert name == "pickle"
    assert back.tolist() == [1, "a", None]


def test_models_are_pickled():
    model = LogisticRegression(C=0.5).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    name, back = round_trip(model)
    assert name == "pickle"
    assert back.get_params() == model.get_params()
    assert back.predict([[0.1], [2.9]]).tolist() == [0, 1]


class Upper:
    """A custom materializer for strings: stores them upper-cased."""

    name = "upper"

    def handles(self, value: object) -> bool:
        return isinstance(value, str)

    def dump(self, value: Any) -> bytes:
        return value.upper().encode()

    def load(self, data: bytes) -> Any:
        return data.decode()


class Broken(Upper):
    name = "broken"

    def dump(self, value: Any) -> bytes:
        raise RuntimeError("disk on fire")


def test_a_steps_own_materializers_come_before_the_built_ins():
    assert round_trip("shout", (Upper(),)) == ("upper", "SHOUT")
    assert round_trip(3, (Upper(),)) == ("json", 3)  # one it does not handle


def test_a_failing_custom_materializer_is_named():
    with pytest.raises(InvalidInput, match="materializer 'broken' could not store a str: disk on"):
        materializers.dump("x", (Broken(),))


@pytest.mark.parametrize(
    "value",
    [lambda: 1, threading.Lock(), (i for i in range(3))],
    ids=["lambda", "lock", "generator"],
)
def test_a_value_that_cannot_be_stored_says_how_to_fix_it(value: Any):
    with pytest.raises(InvalidInput) as caught:
        materializers.dump(value)
    message = str(caught.value)
    assert f"a {type(value).__name__} cannot be stored" in message
    assert "return a value that pickles, or give the step a materializer" in message


def test_an_unknown_materializer_name_says_to_pass_the_steps_own_again():
    with pytest.raises(
        NotFound, match=r"no materializer named 'upper'; .*materializers="
    ) as caught:
        materializers.by_name("upper")
    assert materializers.by_name("upper", (Upper(),)).name == "upper"
    assert "the step that stored it had its own" in str(caught.value)

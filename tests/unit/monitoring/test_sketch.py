"""Column sketches: exact counts on the reference's grid, chunk by chunk, and JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitoring.sketch import (
    CATEGORICAL,
    GRID,
    MAX_CATEGORIES,
    NUMERIC,
    OTHER,
    CategoricalSketch,
    NumericSketch,
    column_kind,
    numbers,
)


def as_json(data: dict) -> dict:
    """Round-trip through strict JSON, as sketches are stored."""
    return json.loads(json.dumps(data, allow_nan=False))


def test_reference_sketch_is_exact_at_every_grid_point() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, 20_000)
    sketch = NumericSketch.of_reference(values)

    assert sketch.edges.size == GRID + 1
    assert sketch.edges[0] == values.min() and sketch.edges[-1] == values.max()
    assert sketch.n == 20_000 and sketch.counts[-1] == 0  # nothing lies above the maximum
    expected = (np.sort(values)[:, None] <= sketch.edges[None, :]).mean(axis=0)
    np.testing.assert_allclose(sketch.cdf(), expected, rtol=0, atol=1e-12)
    assert sketch.mean() == pytest.approx(values.mean())
    assert sketch.std() == pytest.approx(values.std())
    assert (sketch.low, sketch.high) == (values.min(), values.max())
    assert sketch.distinct == 20_000


def test_nulls_and_infinities_are_counted_apart_from_the_values() -> None:
    values = np.array([1.0, np.nan, 2.0, np.inf, 3.0, -np.inf, np.nan, 4.0])
    sketch = NumericSketch.of_reference(values)

    assert (sketch.n, sketch.nulls, sketch.infinite) == (4, 2, 2)
    assert sketch.mean() == 2.5 and sketch.distinct == 4
    current = sketch.empty_like()
    current.update(values[::-1].copy())
    assert (current.n, current.nulls, current.infinite) == (4, 2, 2)
    assert current.mean() == 2.5


def test_values_beyond_the_grid_keep_their_distance_to_its_ends() -> None:
    reference = NumericSketch.of_reference(np.linspace(0.0, 10.0, 1_001))
    current = reference.empty_like()
    current.update(np.array([-3.0, -1.0, 0.0, 5.0, 10.0, 12.5]))

    assert current.counts[0] == 3 and current.counts[-1] == 1  # at or below 0; above 10
    assert current.below == pytest.approx(4.0)
    assert current.above == pytest.approx(2.5)
    assert (current.low, current.high) == (-3.0, 12.5)


def test_a_sketch_built_in_chunks_equals_one_built_at_once() -> None:
    rng = np.random.default_rng(2)
    reference = NumericSketch.of_reference(rng.normal(0.0, 1.0, 5_000))
    current = rng.normal(0.5, 2.0, 30_000)  # reaches beyond the grid on both sides
    current[::97] = np.nan
    current[::101] = np.inf

    whole = reference.empty_like()
    whole.update(current)
    chunked = reference.empty_like()
    for chunk in np.array_split(current, 7):
        chunked.update(chunk)

    np.testing.assert_array_equal(chunked.counts, whole.counts)
    assert (chunked.nulls, chunked.infinite) == (whole.nulls, whole.infinite)
    assert whole.below > 0 and whole.above > 0
    assert chunked.below == pytest.approx(whole.below, rel=1e-9)
    assert chunked.above == pytest.approx(whole.above, rel=1e-9)
    finite = current[np.isfinite(current)]
    assert chunked.mean() == pytest.approx(whole.mean()) == pytest.approx(finite.mean())
    assert chunked.std() == pytest.approx(whole.std()) == pytest.approx(finite.std())
    assert (chunked.low, chunked.high) == (finite.min(), finite.max())


def test_std_is_right_for_values_far_from_zero() -> None:
    # Epoch milliseconds spread over about a minute: the spread is tiny next to the magnitude.
    values = 1.7e12 + np.random.default_rng(3).normal(0.0, 20_000.0, 5_000)
    sketch = NumericSketch.of_reference(values)

    assert sketch.std() == pytest.approx(values.std(), rel=1e-3)
    current = sketch.empty_like()
    for chunk in np.array_split(values, 5):
        current.update(chunk)
    assert current.std() == pytest.approx(values.std(), rel=1e-3)


def test_numeric_sketch_round_trips_through_strict_json() -> None:
    rng = np.random.default_rng(4)
    reference = NumericSketch.of_reference(rng.lognormal(0.0, 1.0, 3_000))
    current = reference.empty_like()
    current.update(np.concatenate([rng.lognormal(0.5, 1.5, 2_000), [np.nan, np.inf, -1.0]]))

    for sketch in (reference, current, reference.empty_like()):
        back = NumericSketch.from_dict(as_json(sketch.to_dict()))
        np.testing.assert_array_equal(back.edges, sketch.edges)
        np.testing.assert_array_equal(back.counts, sketch.counts)
        assert (back.below, back.above, back.nulls, back.infinite) == (
            sketch.below,
            sketch.above,
            sketch.nulls,
            sketch.infinite,
        )
        assert (back.low, back.high) == (sketch.low, sketch.high)
        assert back.mean() == sketch.mean() and back.std() == sketch.std()


def test_a_sketch_of_no_values_is_valid_json_and_empty() -> None:
    sketch = NumericSketch.of_reference(np.array([np.nan, np.nan]))

    assert (sketch.n, sketch.nulls, sketch.distinct) == (0, 2, 0)
    assert sketch.mean() is None and sketch.std() is None
    data = as_json(sketch.to_dict())
    assert data["low"] is None and data["high"] is None
    assert NumericSketch.from_dict(data).n == 0


def test_categories_read_the_same_whatever_the_dtype() -> None:
    sketch = CategoricalSketch()
    sketch.update(pd.Series([1, 2, 2]))
    sketch.update(pd.Series([1.0, 2.0, np.nan]))
    sketch.update(pd.Series(["1", "2.5", None], dtype=object))
    sketch.update(pd.Series([True, False, True]))
    sketch.update(pd.Series([True, None], dtype=object))

    # True is 1 and False is 0, as in Python: a bool label and a 0/1 prediction agree.
    assert sketch.counts == {"1": 6, "2": 3, "2.5": 1, "0": 1}
    assert sketch.nulls == 3
    assert sketch.n == 11


def test_categories_past_the_limit_share_one_count() -> None:
    sketch = CategoricalSketch()
    sketch.update(pd.Series([f"id{i}" for i in range(MAX_CATEGORIES + 250)]))
    sketch.update(pd.Series(["id0", "id0"]))

    assert len(sketch.counts) == MAX_CATEGORIES + 1
    assert sketch.counts[OTHER] == 250
    assert sketch.counts["id0"] == 3
    assert sketch.n == MAX_CATEGORIES + 252


def test_categorical_sketch_round_trips_through_strict_json() -> None:
    sketch = CategoricalSketch()
    sketch.update(pd.Series(["a", "b", "a", None, "c"]))

    back = CategoricalSketch.from_dict(as_json(sketch.to_dict()))
    assert back == sketch


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pd.Series([1, 2, 3]), NUMERIC),
        (pd.Series([1.5, np.nan, 3.0]), NUMERIC),
        (pd.Series([1, None, 3], dtype="Int64"), NUMERIC),
        (pd.Series([1, 2.5, None], dtype=object), NUMERIC),
        (pd.Series([True, False]), CATEGORICAL),
        (pd.Series([True, None], dtype=object), CATEGORICAL),
        (pd.Series(["a", "b"]), CATEGORICAL),
        (pd.Series(["a", 1], dtype=object), CATEGORICAL),
        (pd.Series(["a", "b"], dtype="category"), CATEGORICAL),
        (pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"])), None),
        (pd.Series(pd.to_timedelta([1, 2], unit="s")), None),
    ],
)
def test_column_kind_says_what_a_detector_compares(column: pd.Series, kind: str | None) -> None:
    assert column_kind(column) == kind


def test_text_in_a_numeric_column_is_refused_by_name() -> None:
    assert numbers(pd.Series(["1", "2.5"], name="price")).tolist() == [1.0, 2.5]
    with pytest.raises(InvalidInput, match="'price'"):
        numbers(pd.Series([1.0, "cheap"], name="price", dtype=object))

"""Column profiles: what they hold, that they are JSON, and how two of them differ."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.data.profile import diff_profiles, profile_table
from loopml.errors import InvalidInput


def as_json(profile: dict) -> dict:
    """Round-trip through strict JSON, as profiles are stored."""
    return json.loads(json.dumps(profile, allow_nan=False))


def test_numeric_column_holds_range_moments_quantiles_and_histogram() -> None:
    values = np.random.default_rng(1).normal(10.0, 2.0, 5_000)
    col = profile_table(pd.DataFrame({"x": values}))["columns"]["x"]

    assert col["type"] == "float"
    assert col["count"] == 5_000 and col["null_share"] == 0.0
    assert col["min"] == values.min() and col["max"] == values.max()
    assert col["mean"] == pytest.approx(values.mean())
    assert col["std"] == pytest.approx(values.std())
    assert len(col["quantiles"]) == 101
    assert col["quantiles"][50] == pytest.approx(np.median(values))
    assert col["quantiles"][0] == values.min() and col["quantiles"][100] == values.max()
    assert len(col["histogram"]["edges"]) == 21
    assert sum(col["histogram"]["counts"]) == 5_000
    assert "categories" not in col and "top" not in col


def test_small_domains_keep_every_category_and_large_ones_only_the_top() -> None:
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro", "team"], 1_000, p=[0.6, 0.3, 0.1]),
            "user": [f"u{i}" for i in range(1_000)],
            "stars": rng.integers(1, 6, 1_000),
        }
    )
    cols = profile_table(df)["columns"]

    plan = cols["plan"]
    assert plan["type"] == "string" and plan["distinct"] == 3
    assert sum(plan["categories"].values()) == 1_000
    assert next(iter(plan["categories"])) == "basic"  # most common first
    assert plan["top"][0][0] == "basic"
    user = cols["user"]
    assert user["distinct"] == 1_000 and "categories" not in user
    assert len(user["top"]) == 20
    stars = cols["stars"]
    assert stars["type"] == "integer" and set(stars["categories"]) == {"1", "2", "3", "4", "5"}
    assert isinstance(stars["min"], int) and stars["min"] == 1


def test_awkward_columns_profile_without_errors() -> None:
    df = pd.DataFrame(
        {
            "all_null": [None] * 4,
            "all_nan": [np.nan] * 4,
            "constant": [7.5] * 4,
            "mixed": [1, "a", 2.5, None],
            "flag": [True, False, True, None],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-02"]),
            "big": pd.Series([2**64 - 1, 2**63, 0, 1], dtype="uint64"),
            "huge": pd.Series([2**70, 1, 2, None], dtype=object),
            "inf": [np.inf, -np.inf, 1.0, 2.0],
            "nullable_int": pd.Series([1, None, 3, 4], dtype="Int64"),
        }
    )
    cols = as_json(profile_table(df))["columns"]

    assert cols["all_null"]["count"] == 0 and cols["all_null"]["null_share"] == 1.0
    assert cols["all_nan"]["mean"] is None and cols["all_nan"]["quantiles"] is None
    assert cols["constant"]["std"] == 0.0 and cols["constant"]["distinct"] == 1
    assert cols["constant"]["histogram"] == {"edges": [7.5, 7.5], "counts": [4]}
    assert cols["mixed"]["type"] == "string" and cols["mixed"]["distinct"] == 3
    assert cols["flag"]["type"] == "boolean"
    assert cols["flag"]["categories"] == {"true": 2, "false": 1}
    assert cols["when"]["type"] == "datetime" and cols["when"]["max"] == "2024-01-02T00:00:00"
    assert cols["big"]["max"] == 2**64 - 1  # exact, not rounded through float
    assert cols["huge"]["type"] == "integer" and cols["huge"]["null_share"] == 0.25
    assert cols["inf"]["neg_inf"] == 1 and cols["inf"]["pos_inf"] == 1
    assert cols["inf"]["max"] == 2.0 and cols["inf"]["distinct"] == 4
    assert cols["nullable_int"]["type"] == "integer" and cols["nullable_int"]["count"] == 3


def test_empty_frames_profile_as_zero_rows() -> None:
    assert profile_table(pd.DataFrame()) == {"format": 1, "rows": 0, "columns": {}}
    empty = profile_table(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    assert as_json(empty)["columns"]["x"]["null_share"] == 0.0


def test_duplicate_column_names_are_refused() -> None:
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidInput, match=r"'a'.*more than once"):
        profile_table(df)


def test_diff_reports_rows_schema_and_changed_stats() -> None:
    old = profile_table(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [1.0, 2, 3]}))
    new = profile_table(pd.DataFrame({"a": [1, 2, 9, 9], "b": [1, 2, 3, 4], "d": [True] * 4}))

    diff = as_json(diff_profiles(old, new))

    assert diff["rows"] == {"old": 3, "new": 4}
    assert diff["added"] == ["d"] and diff["removed"] == ["c"]
    assert diff["type_changes"] == {"b": {"old": "string", "new": "integer"}}
    assert diff["changed"]["a"]["max"] == {"old": 3, "new": 9}
    assert "distinct" not in diff["changed"]["a"]  # 3 distinct values both times


def test_diff_refuses_something_that_is_not_a_profile() -> None:
    with pytest.raises(InvalidInput, match="old profile"):
        diff_profiles({"rows": 1}, profile_table(pd.DataFrame({"a": [1]})))


cells = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cells, cells, st.floats(width=32)), max_size=30))
def test_any_small_frame_profiles_to_strict_json_with_sorted_quantiles(rows: list) -> None:
    df = pd.DataFrame(rows, columns=["a", "b", "f"]) if rows else pd.DataFrame(columns=["a"])

    profile = as_json(profile_table(df))

    for col in profile["columns"].values():
        assert 0.0 <= col["null_share"] <= 1.0
        quantiles = col.get("quantiles")
        if quantiles:
            assert all(math.isfinite(q) for q in quantiles)
            assert quantiles == sorted(quantiles)
            assert quantiles[0] == col["min"] and quantiles[-1] == col["max"]

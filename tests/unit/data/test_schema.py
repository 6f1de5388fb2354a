"""Schemas: inferred drafts, and user-edited files checked with errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.data.profile import profile_table
from loopml.data.schema import check_schema, infer_schema, load_schema
from loopml.errors import InvalidInput, NotFound


def churn() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, 500),
            "spend": np.where(rng.random(500) < 0.1, np.nan, rng.gamma(2.0, 30.0, 500)),
            "plan": rng.choice(["basic", "pro"], 500),
            "user": [f"u{i}" for i in range(500)],
            "empty": [None] * 500,
        }
    )


def test_inferred_schema_holds_types_nulls_ranges_and_small_domains() -> None:
    schema = infer_schema(profile_table(churn()))
    cols = schema["columns"]

    assert schema["format"] == 1 and schema["min_rows"] == 1
    assert cols["age"]["type"] == "integer" and cols["age"]["nullable"] is False
    assert 18 <= cols["age"]["min"] <= cols["age"]["max"] <= 89
    assert cols["spend"]["nullable"] is True and 0.05 < cols["spend"]["max_null_share"] < 0.15
    assert cols["plan"]["categories"] == ["basic", "pro"]
    assert "categories" not in cols["user"]  # 500 values: no domain
    assert cols["empty"]["type"] is None  # no values, so no evidence of a type


def test_inferred_schema_round_trips_through_a_file(tmp_path: Path) -> None:
    schema = infer_schema(profile_table(churn()))
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema, allow_nan=False, indent=2))

    assert load_schema(path) == schema


def test_defaults_are_filled_and_written_categories_normalised() -> None:
    checked = check_schema(
        {"columns": {"a": {}, "b": {"max_null_share": 0}, "c": {"categories": [1, True, "x"]}}}
    )

    assert checked["min_rows"] == 1
    assert checked["columns"]["a"] == {"type": None, "nullable": True, "max_null_share": 1.0}
    assert checked["columns"]["b"]["nullable"] is False
    assert checked["columns"]["c"]["categories"] == ["1", "true", "x"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], r'"columns" object'),
        ({"cols": {}}, r'"columns" object'),
        ({"columns": {}, "extra": 1}, r"unknown key\(s\) 'extra'"),
        ({"format": 2, "columns": {}}, r'"format" is 2'),
        ({"columns": {"a": {"type": "text"}}}, r"column 'a': \"type\" 'text' is unknown"),
        ({"columns": {"a": {"nulable": False}}}, r"column 'a' has unknown key\(s\) 'nulable'"),
        ({"columns": {"a": {"min": 5, "max": 1}}}, r'"min" 5 is above "max" 1'),
        ({"columns": {"a": {"type": "string", "min": 0}}}, r'"min" applies to integer'),
        ({"columns": {"a": {"max_null_share": 1.5}}}, r'"max_null_share" must be'),
        ({"columns": {"a": {"nullable": False, "max_null_share": 0.2}}}, r'"nullable" is false'),
        ({"columns": {"a": {"categories": []}}}, r'"categories" must be a non-empty list'),
        ({"columns": {"a": {"categories": [1.5]}}}, r'"categories" holds 1.5'),
        ({"columns": {"a": {"type": "float", "categories": ["x"]}}}, r"not float"),
        ({"min_rows": -1, "columns": {}}, r'"min_rows" must be'),
    ],
)
def test_bad_schemas_name_the_field_and_the_fix(schema: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_schema(schema)


def test_load_schema_reports_json_errors_with_their_position(tmp_path: Path) -> None:
    broken = tmp_path / "schema.json"
    broken.write_text('{"columns": {"a": {"type": "float",}}}')
    nan = tmp_path / "nan.json"
    nan.write_text('{"columns": {"a": {"min": NaN}}}')

    with pytest.raises(InvalidInput, match=r"schema\.json is not valid JSON.*line 1 column"):
        load_schema(broken)
    with pytest.raises(InvalidInput, match=r"NaN is not allowed"):
        load_schema(nan)
    with pytest.raises(NotFound, match=r"missing\.json does not exist"):
        load_schema(tmp_path / "missing.json")

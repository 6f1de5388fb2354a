"""Validating a version against a reference or a schema, and the HTML report of it."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from loopml.data.profile import profile_table
from loopml.data.schema import infer_schema
from loopml.data.skew import jensen_shannon, wasserstein
from loopml.data.validation import ValidationReport, validate
from loopml.data.validation_report import render_html
from loopml.errors import InvalidInput

ROWS = 5_000


def churn(seed: int, *, shift: float = 0.0, plans: tuple[str, ...] = ("basic", "pro")) -> dict:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "score": rng.normal(shift, 1.0, ROWS),
            "age": rng.integers(18, 90, ROWS),
            "plan": rng.choice(plans, ROWS),
            "active": rng.random(ROWS) < 0.7,
        }
    )
    return profile_table(df)


def checks(report: ValidationReport, column: str) -> dict[str, str]:
    return {i.check: i.severity for i in report.issues if i.column == column}


def test_a_resample_of_the_same_data_passes_with_a_row_per_column() -> None:
    report = validate(churn(1), reference=churn(2), label="churn@v3")

    assert report.ok and not report.issues
    assert [r["column"] for r in report.columns] == ["score", "age", "plan", "active"]
    by_column = {r["column"]: r for r in report.columns}
    assert by_column["score"]["method"] == "wasserstein" and by_column["score"]["score"] < 0.1
    assert by_column["plan"]["method"] == "jensen_shannon" and by_column["plan"]["score"] < 0.1
    assert all(r["status"] == "ok" for r in report.columns)
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_shifted_numeric_distribution_is_flagged_as_skew() -> None:
    report = validate(churn(1, shift=1.0), reference=churn(2))

    skew = [i for i in report.issues if i.check == "distribution_skew"]
    assert [i.column for i in skew] == ["score"]
    assert skew[0].severity == "warning" and report.ok  # skew warns, it does not fail CI
    assert skew[0].observed["score"] == pytest.approx(1.0, abs=0.1)
    assert skew[0].expected == {"threshold": 0.1}
    assert "'score'" in skew[0].message and "wasserstein" in skew[0].message


def test_a_dropped_column_is_an_error_and_a_new_one_a_warning() -> None:
    reference = churn(2)
    current = churn(1)
    current["columns"]["tenure"] = current["columns"].pop("age")

    report = validate(current, reference=reference)

    assert not report.ok
    assert checks(report, "age") == {"missing_column": "error"}
    assert checks(report, "tenure") == {"new_column": "warning"}
    assert report.issues[0].check == "missing_column"  # errors come first
    assert {r["column"]: r["status"] for r in report.columns}["age"] == "error"


def test_a_new_category_is_reported_with_its_share() -> None:
    report = validate(churn(1, plans=("basic", "pro", "enterprise")), reference=churn(2))

    issue = next(i for i in report.issues if i.check == "unseen_categories")
    assert issue.column == "plan" and issue.severity == "warning"
    assert issue.observed["values"]["enterprise"] == pytest.approx(1 / 3, abs=0.03)
    assert "'enterprise' (3" in issue.message
    assert checks(report, "plan")["distribution_skew"] == "warning"


def test_a_null_surge_is_an_error() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=ROWS)
    before = values.copy()
    before[rng.random(ROWS) < 0.02] = np.nan
    after = values.copy()
    after[rng.random(ROWS) < 0.30] = np.nan

    report = validate(
        profile_table(pd.DataFrame({"x": after})),
        reference=profile_table(pd.DataFrame({"x": before})),
    )

    issue = next(i for i in report.issues if i.check == "nulls")
    assert issue.severity == "error" and not report.ok
    assert issue.observed == pytest.approx(0.30, abs=0.02)
    assert issue.expected == pytest.approx(0.07, abs=0.01)  # 2% + the 5% tolerance


def test_nulls_in_a_column_that_had_none_are_an_error() -> None:
    reference = profile_table(pd.DataFrame({"id": [1, 2, 3, 4]}))
    current = profile_table(pd.DataFrame({"id": [1, None, 3, 4]}))

    report = validate(current, reference=reference)

    assert checks(report, "id")["nulls"] == "error"
    assert checks(report, "id")["type_change"] == "warning"  # pandas made it float64
    assert "1 nulls" in report.errors[0].message


def test_type_changes_are_errors_except_integer_to_float() -> None:
    reference = profile_table(pd.DataFrame({"n": [1, 2], "s": ["a", "b"]}))
    current = profile_table(pd.DataFrame({"n": [1.5, 2.0], "s": [1, 2]}))

    report = validate(current, reference=reference)

    assert checks(report, "n")["type_change"] == "warning"
    assert checks(report, "s") == {"type_change": "error"}  # no distance across types


def test_schema_bounds_are_errors_and_reference_bounds_warnings() -> None:
    reference = profile_table(pd.DataFrame({"age": np.arange(20, 121)}))
    slightly_wider = profile_table(pd.DataFrame({"age": np.arange(15, 126)}))
    much_wider = profile_table(pd.DataFrame({"age": np.arange(0, 141)}))
    schema = infer_schema(reference)

    # Against a reference, its range gets a 10% margin: 10..130 here.
    assert "out_of_range" not in checks(validate(slightly_wider, reference=reference), "age")
    issue = validate(much_wider, reference=reference).issues[0]
    assert (issue.check, issue.severity) == ("out_of_range", "warning")
    assert issue.expected == {"min": 10, "max": 130}
    assert issue.observed["share"] == pytest.approx(20 / 141, abs=0.02)
    # A schema's bounds are a contract, taken exactly.
    report = validate(slightly_wider, schema=schema)
    assert checks(report, "age") == {"out_of_range": "error"}
    assert report.errors[0].expected == {"min": 20, "max": 120}
    assert report.errors[0].observed["share"] == pytest.approx(10 / 111, abs=0.02)


def test_all_null_constant_and_empty_columns_validate_without_crashing() -> None:
    frame = pd.DataFrame({"nothing": [None] * 3, "same": [1.0] * 3, "flag": [True] * 3})
    empty = profile_table(frame.iloc[:0])

    assert validate(profile_table(frame), reference=profile_table(frame)).ok
    report = validate(empty, reference=profile_table(frame))
    assert [i.check for i in report.errors] == ["empty_table"]
    json.dumps(report.to_dict(), allow_nan=False)


def test_validate_needs_exactly_one_of_schema_and_reference() -> None:
    profile = churn(1)
    with pytest.raises(InvalidInput, match="exactly one"):
        validate(profile)
    with pytest.raises(InvalidInput, match="exactly one"):
        validate(profile, schema=infer_schema(profile), reference=profile)


def test_html_report_embeds_plotly_and_escapes_hostile_names() -> None:
    hostile = "<script>alert(1)</script>"
    rng = np.random.default_rng(5)
    reference = profile_table(pd.DataFrame({hostile: rng.normal(size=500), "c": ["<b>x"] * 500}))
    current = profile_table(pd.DataFrame({hostile: rng.normal(1, 1, 500), "c": ["<i>y"] * 500}))
    report = validate(current, reference=reference, label="churn@<v3>")

    page = render_html(report, current, reference, title="data <check>")

    assert hostile not in page and "<b>x" not in page and "<i>y" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>data &lt;check&gt;</title>" in page and "churn@&lt;v3&gt;" in page
    assert not re.search(r"<script[^>]+src=", page)  # offline: Plotly is embedded
    assert "Plotly.newPlot" in page and page.count('class="chart"') == 2
    assert "FAILED" in page or "PASSED" in page


def test_distances_have_their_textbook_values() -> None:
    same = {"a": 10, "b": 30}
    assert jensen_shannon(same, {"a": 1, "b": 3}) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon({"a": 5}, {"b": 5}) == pytest.approx(1.0)  # disjoint, base 2
    assert jensen_shannon({"a": 5}, {}) is None
    ramp = np.linspace(0.0, 1.0, 101).tolist()
    shifted = [q + 0.5 for q in ramp]
    assert wasserstein(ramp, shifted, ref_std=0.25) == pytest.approx(2.0)
    assert wasserstein(ramp, ramp, ref_std=0.0) == 0.0

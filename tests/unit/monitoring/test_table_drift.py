"""Drift of a table: default methods per column, dataset verdicts and bad input per column."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import loopml.monitoring
from loopml.errors import InvalidInput, InvalidState
from loopml.monitoring.table_drift import DriftReport, Reference, drift

TABLE_COLUMNS = [
    "column",
    "kind",
    "method",
    "statistic",
    "p_value",
    "effect",
    "threshold",
    "drift",
    "note",
    "reference_rows",
    "current_rows",
    "reference_null_share",
    "current_null_share",
]
NUMERIC_SHAPES = ["normal", "lognormal", "uniform", "exponential", "integers"]
PLANS = ["basic", "pro", "team", "enterprise"]


def as_json(data: dict) -> dict:
    """Round-trip through strict JSON, as reports are stored."""
    return json.loads(json.dumps(data, allow_nan=False))


def rows(report: DriftReport) -> dict[str, dict]:
    """Return each column's row of the report's table by column name."""
    return {row["column"]: row for row in report.to_dict()["columns"]}


def features(n: int, seed: int) -> pd.DataFrame:
    """Return 20 numeric columns of five shapes and 5 categorical ones."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(20):
        shape = NUMERIC_SHAPES[i % 5]
        if shape == "normal":
            data[f"num{i}"] = rng.normal(i, 1.0 + i / 10, n)
        elif shape == "lognormal":
            data[f"num{i}"] = rng.lognormal(0.0, 0.5, n)
        elif shape == "uniform":
            data[f"num{i}"] = rng.uniform(-i, i + 1, n)
        elif shape == "exponential":
            data[f"num{i}"] = rng.exponential(2.0, n)
        else:
            data[f"num{i}"] = rng.integers(0, 100, n)
    data["plan"] = rng.choice(PLANS, n, p=[0.5, 0.3, 0.15, 0.05])
    data["country"] = rng.choice(["de", "fr", "us", "uk", "jp", "br"], n)
    data["active"] = rng.random(n) < 0.3
    data["stars"] = rng.integers(1, 6, n)  # five distinct numbers: compared as categories
    data["channel"] = rng.choice(["web", "app"], n, p=[0.7, 0.3])
    return pd.DataFrame(data)


# --- the method each column gets ---------------------------------------------------------


def _typed(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "amount": rng.normal(100.0, 15.0, n),
            "six": rng.integers(0, 6, n),
            "five": rng.integers(0, 5, n),
            "rate": rng.choice([0.5, 1.0, 1.5], n),
            "city": rng.choice(["berlin", "paris", "rome"], n),
            "vip": rng.random(n) < 0.2,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 99, n), "D"),
            "session": pd.to_timedelta(rng.integers(0, 600, n), "s"),
        }
    )


@pytest.mark.parametrize(
    ("n", "numeric", "categorical"),
    [(200, "ks", "chisquare"), (1_000, "ks", "chisquare"), (1_001, "wasserstein", "jensenshannon")],
)
def test_each_column_gets_the_default_method_of_its_type_and_size(n, numeric, categorical):
    frame = _typed(n)
    table = drift(frame, frame).table.set_index("column")

    assert table.loc["amount", ["kind", "method"]].tolist() == ["numeric", numeric]
    assert table.loc["six", ["kind", "method"]].tolist() == ["numeric", numeric]
    for name in ("five", "rate", "city", "vip"):
        assert table.loc[name, ["kind", "method"]].tolist() == ["categorical", categorical], name
    for name in ("signup", "session"):
        assert table.loc[name, "method"] == "none"
        assert "not compared" in table.loc[name, "note"]
        assert table.loc[name, "drift"] is None
    assert not table["drift"].eq(True).any()


def test_few_distinct_numbers_compare_as_categories_whatever_their_dtype() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"level": rng.integers(1, 4, 500)})
    as_floats = reference.astype(float)
    with_nulls = as_floats.copy()
    with_nulls.loc[::10, "level"] = np.nan

    for current in (as_floats, with_nulls):
        row = rows(drift(reference, current))["level"]
        assert row["method"] == "chisquare"
        assert row["drift"] is False and row["statistic"] == pytest.approx(0.0, abs=0.5)
    moved = reference.replace({1: 3})
    assert rows(drift(reference, moved))["level"]["drift"] is True


def test_methods_can_be_chosen_per_type_and_per_column() -> None:
    frame = _typed(300)
    report = drift(
        frame,
        frame,
        num_method="psi",
        cat_method="jensenshannon",
        methods={"five": "chisquare", "six": "wasserstein"},
    )
    methods = report.table.set_index("column")["method"].to_dict()

    assert methods["amount"] == "psi" and methods["six"] == "wasserstein"
    assert methods["five"] == "chisquare"
    assert methods["rate"] == "psi"  # a chosen num_method applies to few distinct numbers too
    assert methods["city"] == methods["vip"] == "jensenshannon"


def test_columns_limits_what_is_compared() -> None:
    frame = _typed(300)
    report = drift(frame, frame.drop(columns=["city"]), columns=["amount", "vip"])

    assert report.table["column"].tolist() == ["amount", "vip"]


def test_threshold_applies_to_every_column() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, 5_000)})
    current = pd.DataFrame({"x": rng.normal(0.07, 1.0, 5_000)})

    assert drift(reference, current).drifted == []
    assert drift(reference, current, threshold=0.05).drifted == ["x"]
    assert rows(drift(reference, current, threshold=0.05))["x"]["threshold"] == 0.05


# --- the dataset verdict ------------------------------------------------------------------


def test_share_counts_drifted_columns_over_judged_ones() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({name: rng.normal(0.0, 1.0, 2_000) for name in "abcd"})
    current = pd.DataFrame({name: rng.normal(0.0, 1.0, 2_000) for name in "abcd"})
    current["a"] += 1.0
    current["b"] *= 3.0

    report = drift(reference, current)
    assert report.drifted == ["a", "b"]
    assert report.share == 0.5 and report.dataset_drift is True
    assert drift(reference, current, drift_share=0.75).dataset_drift is False
    assert drift(reference, current, drift_share=1).dataset_drift is False

    # A column with no verdict is left out of the share, not counted as steady.
    partial = drift(reference, current.drop(columns=["c", "d"]))
    assert partial.share == 1.0 and partial.dataset_drift is True
    assert len(partial.judged) == 2 and len(partial.columns) == 4


def test_no_column_judged_gives_no_dataset_verdict() -> None:
    report = drift(_typed(100), _typed(100).iloc[:5])

    assert report.share is None and report.dataset_drift is None
    assert report.drifted == [] and report.rows == 5 and report.reference_rows == 100


def test_the_public_drift_function_stays_callable() -> None:
    frame = _typed(100)

    first = loopml.monitoring.drift(frame, frame)
    second = loopml.monitoring.drift(frame, frame)
    assert first.to_dict() == second.to_dict()
    assert callable(loopml.monitoring.drift)


def test_a_fresh_sample_of_the_same_distribution_flags_nothing() -> None:
    report = drift(features(100_000, seed=4), features(100_000, seed=5))

    assert report.drifted == []
    assert report.share == 0.0 and report.dataset_drift is False
    assert len(report.judged) == 25
    methods = report.table.set_index("column")["method"]
    assert methods["num0"] == "wasserstein" and methods["plan"] == "jensenshannon"
    assert methods["stars"] == "jensenshannon"


def test_injected_drifts_are_all_flagged_and_nothing_else() -> None:
    reference, current = features(100_000, seed=6), features(100_000, seed=7)
    current["num0"] += 0.5 * reference["num0"].std()  # shifted
    current["num1"] *= 1.6  # lognormal scaled
    current["num2"] = current["num2"] * 1.5  # uniform widened
    current["num4"] = np.random.default_rng(8).integers(20, 120, 100_000)  # range moved
    current["num8"] = np.where(current.index % 4 == 0, np.nan, current["num8"] + 400.0)
    current["plan"] = np.random.default_rng(9).choice(PLANS, 100_000, p=[0.2, 0.3, 0.3, 0.2])
    current["active"] = np.random.default_rng(10).random(100_000) < 0.6
    current["stars"] = np.random.default_rng(11).integers(3, 8, 100_000)

    report = drift(reference, current)
    injected = ["num0", "num1", "num2", "num4", "num8", "plan", "active", "stars"]
    assert report.drifted == injected
    assert report.share == pytest.approx(8 / 25) and report.dataset_drift is False
    assert drift(reference, current, drift_share=0.3).dataset_drift is True
    assert rows(report)["num8"]["current_null_share"] == pytest.approx(0.25)


def test_a_high_cardinality_column_of_the_same_distribution_does_not_drift() -> None:
    # Product ids, postcodes: more labels than a sketch keeps by name.
    rng = np.random.default_rng(12)
    labels = np.array([f"sku{i:05d}" for i in range(1_200)])
    reference = pd.DataFrame({"sku": rng.choice(labels, 100_000)})
    current = pd.DataFrame({"sku": rng.choice(labels, 100_000)})

    row = rows(drift(reference, current))["sku"]
    assert row["method"] == "jensenshannon"
    assert row["statistic"] < 0.1
    assert row["drift"] is False


def test_a_timestamp_like_column_far_from_zero_is_scaled_by_its_own_spread() -> None:
    # Epoch milliseconds spread over about a minute: tiny next to their magnitude.
    rng = np.random.default_rng(3)
    spread = 20_000.0
    reference = pd.DataFrame({"sent_ms": 1.7e12 + rng.normal(0.0, spread, 5_000)})
    current = pd.DataFrame({"sent_ms": 1.7e12 + rng.normal(0.0, spread, 5_000)})

    row = rows(drift(reference, current))["sent_ms"]
    assert row["method"] == "wasserstein"
    assert row["statistic"] < 0.1 and row["drift"] is False
    shifted = rows(drift(reference, current + spread))["sent_ms"]
    assert shifted["statistic"] == pytest.approx(1.0, rel=0.05)


# --- chunks and stored references ---------------------------------------------------------


def test_a_sample_counted_in_chunks_scores_like_the_whole_table() -> None:
    reference = features(5_000, seed=14)
    current = features(6_000, seed=15)
    current["num0"] += 1.0
    fitted = Reference().fit(reference)

    sample = fitted.sample()
    for start in range(0, 6_000, 1_000):
        sample.update(current.iloc[start : start + 1_000])
    chunked, whole = fitted.score(sample), fitted.score(current)

    assert chunked.rows == whole.rows == 6_000
    assert chunked.drifted == whole.drifted == ["num0"]
    for a, b in zip(chunked.to_dict()["columns"], whole.to_dict()["columns"], strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=1e-9), (a["column"], key)
            else:
                assert value == b[key], (a["column"], key)


def test_a_reference_round_trips_through_json_and_scores_identically() -> None:
    reference = pd.concat([features(3_000, seed=16), _typed(3_000)], axis=1)
    current = pd.concat([features(2_000, seed=17), _typed(2_000)], axis=1)
    current["num3"] *= 2.0
    current.loc[:1_500, "city"] = "rome"
    fitted = Reference(methods={"num5": "psi"}, threshold=0.08, drift_share=0.3).fit(reference)

    stored = as_json(fitted.to_dict())
    again = Reference.from_dict(stored)

    assert again.get_params() == fitted.get_params()
    assert again.score(current).to_dict() == fitted.score(current).to_dict()
    assert again.score(current).drifted == ["num3", "city"]
    assert as_json(again.to_dict()) == stored


# --- bad input: reported per column, never raised ------------------------------------------


def test_a_column_missing_from_the_current_data_is_reported() -> None:
    frame = _typed(300)
    report = drift(frame, frame.drop(columns=["amount"]))
    row = rows(report)["amount"]

    assert row["drift"] is None and row["note"] == "missing from the current data"
    assert row["current_rows"] == 0
    assert report.share == 0.0 and len(report.judged) == 5


@pytest.mark.parametrize("n", [300, 3_000])
def test_an_all_null_current_column_is_reported(n: int) -> None:
    reference = _typed(n)
    current = reference.copy()
    current["amount"] = np.nan
    current["city"] = None

    found = rows(drift(reference, current))
    for name in ("amount", "city"):
        assert found[name]["drift"] is None, name
        assert found[name]["note"] == "no values in the current data (all null)"
        assert found[name]["current_null_share"] == 1.0


@pytest.mark.parametrize("n", [300, 3_000])
def test_a_constant_reference_column_flags_a_change_only(n: int) -> None:
    reference = pd.DataFrame({"version": np.full(n, 3.0), "region": ["eu"] * n})

    same = drift(reference, reference.copy())
    assert same.drifted == [] and len(same.judged) == 2
    moved = reference.assign(version=4.0, region="us")
    assert drift(reference, moved).drifted == ["version", "region"]
    half = reference.assign(version=np.where(np.arange(n) % 2, 3.0, 4.0))
    assert drift(reference, half).drifted == ["version"]


@pytest.mark.parametrize("method", ["ks", "wasserstein", "psi"])
def test_a_constant_reference_column_under_a_numeric_method(method: str) -> None:
    reference = pd.DataFrame({"version": np.full(500, 3.0)})

    assert drift(reference, reference, num_method=method).drifted == []
    assert drift(reference, reference + 1.0, num_method=method).drifted == ["version"]


def test_an_empty_current_frame_is_reported_column_by_column() -> None:
    frame = _typed(300)
    for current in (frame.iloc[:0], pd.DataFrame()):
        report = drift(frame, current)
        assert len(report.columns) == len(frame.columns)
        assert report.rows == 0 and report.share is None and report.dataset_drift is None
        assert all(c.score.drift is None and c.score.note for c in report.columns)


def test_too_few_current_rows_give_no_verdict_and_the_note_says_so() -> None:
    frame = _typed(300)
    report = drift(frame, frame.iloc[:10])

    for name in ("amount", "city", "vip"):
        assert rows(report)[name]["drift"] is None
        assert rows(report)[name]["note"] == "too few values to judge (10 < 30)"
    judged = drift(frame, frame.iloc[:10], min_rows=5)
    assert rows(judged)["amount"]["drift"] is False


def test_text_in_a_numeric_column_is_drift_of_type() -> None:
    reference = _typed(300)
    current = reference.copy()
    current["amount"] = current["amount"].astype(object)
    current.loc[5, "amount"] = "n/a"

    report = drift(reference, current)
    row = rows(report)["amount"]
    assert row["method"] == "type" and row["drift"] is True
    assert "text" in row["note"]
    assert report.drifted == ["amount"]
    as_json(report.to_dict())


def test_text_in_a_later_chunk_is_drift_of_type() -> None:
    reference = _typed(300)
    fitted = Reference().fit(reference)
    sample = fitted.sample()
    sample.update(reference.iloc[:150])
    later = reference.iloc[150:].assign(amount="unknown")
    sample.update(later)
    sample.update(reference.iloc[:150])

    assert rows(fitted.score(sample))["amount"]["method"] == "type"


def test_a_column_twice_in_the_current_data_is_reported() -> None:
    reference = _typed(300)
    current = pd.concat([reference, reference[["amount"]]], axis=1)

    row = rows(drift(reference, current))["amount"]
    assert row["drift"] is None and "more than once" in row["note"]


def test_a_column_twice_in_the_reference_is_refused_by_name() -> None:
    reference = _typed(300)
    doubled = pd.concat([reference, reference[["city"]]], axis=1)

    with pytest.raises(InvalidInput, match="'city' appears more than once"):
        drift(doubled, reference)


def test_integer_column_labels_are_compared_and_reported_as_text() -> None:
    rng = np.random.default_rng(18)
    reference = pd.DataFrame({0: rng.normal(size=500), 1: rng.choice(["a", "b"], 500)})
    current = pd.DataFrame({0: rng.normal(2.0, 1.0, 500), 1: rng.choice(["a", "b"], 500)})

    report = drift(reference, current)
    assert report.table["column"].tolist() == ["0", "1"]
    assert report.drifted == ["0"]
    assert drift(reference, current.rename(columns=str)).drifted == ["0"]
    as_json(report.to_dict())


def test_nans_and_infinities_are_left_out_of_the_comparison() -> None:
    rng = np.random.default_rng(19)

    def noisy(loc: float) -> pd.DataFrame:
        x = rng.normal(loc, 1.0, 2_000)
        x[::10], x[::37], x[::41] = np.nan, np.inf, -np.inf
        labels = rng.choice(["a", "b", "c"], 2_000).astype(object)
        labels[::8], labels[::9] = None, np.nan
        return pd.DataFrame({"x": x, "label": labels})

    reference = noisy(0.0)
    report = drift(reference, noisy(0.0))
    found = rows(report)
    assert report.drifted == [] and len(report.judged) == 2
    assert found["x"]["reference_null_share"] == pytest.approx(0.1, abs=0.01)
    assert found["x"]["reference_rows"] == np.isfinite(reference["x"]).sum()
    assert found["label"]["current_null_share"] == pytest.approx(1 / 8 + 1 / 9 - 1 / 72, abs=1e-3)
    assert drift(reference, noisy(1.0)).drifted == ["x"]
    as_json(report.to_dict())


# --- bad settings: raised ---------------------------------------------------------------


def test_an_unknown_method_is_refused_with_the_methods_there_are() -> None:
    frame = _typed(100)
    for options in ({"num_method": "kss"}, {"cat_method": "kss"}, {"methods": {"amount": "kss"}}):
        with pytest.raises(InvalidInput, match="'kss'") as raised:
            drift(frame, frame, **options)
        assert "chisquare, jensenshannon, ks, psi, wasserstein" in str(raised.value)


def test_a_method_of_the_wrong_kind_is_refused() -> None:
    frame = _typed(100)
    with pytest.raises(InvalidInput, match=r"'city'.*chisquare or jensenshannon"):
        drift(frame, frame, methods={"city": "wasserstein"})
    with pytest.raises(InvalidInput, match="'ks' does not compare categorical"):
        drift(frame, frame, cat_method="ks")
    with pytest.raises(InvalidInput, match="'jensenshannon' does not compare numeric"):
        drift(frame, frame, num_method="jensenshannon")


def test_a_column_not_in_the_reference_is_refused_with_its_columns() -> None:
    frame = _typed(100)
    with pytest.raises(InvalidInput, match=r"'price'.*amount, six"):
        drift(frame, frame, columns=["amount", "price"])
    with pytest.raises(InvalidInput, match="'price'"):
        drift(frame, frame, methods={"price": "ks"})


@pytest.mark.parametrize("threshold", [0, -0.05, math.nan])
def test_a_threshold_at_or_below_zero_is_refused(threshold) -> None:
    with pytest.raises(InvalidInput, match="threshold must be a number above 0"):
        drift(_typed(100), _typed(100), threshold=threshold)


@pytest.mark.parametrize("share", [0, -0.5, 1.01, math.nan, "half"])
def test_drift_share_must_lie_in_zero_to_one(share) -> None:
    with pytest.raises(InvalidInput, match="drift_share"):
        drift(_typed(100), _typed(100), drift_share=share)


@pytest.mark.parametrize("columns", ["amount", ["amount", 3]])
def test_columns_must_be_a_list_of_names(columns) -> None:
    with pytest.raises(InvalidInput, match="columns must be a list"):
        Reference(columns=columns)


def test_a_reference_that_is_not_a_data_frame_is_refused() -> None:
    frame = _typed(100)
    for bad in (frame.to_numpy(), frame.to_dict(), frame["amount"], None):
        with pytest.raises(InvalidInput, match="pandas DataFrame") as raised:
            drift(bad, frame)
        assert type(bad).__name__ in str(raised.value)
    with pytest.raises(InvalidInput, match="pandas DataFrame or a Sample, not dict"):
        drift(frame, frame.to_dict())


def test_an_unfitted_reference_is_an_invalid_state() -> None:
    for use in (
        lambda r: r.score(_typed(100)),
        lambda r: r.sample(),
        lambda r: r.to_dict(),
    ):
        with pytest.raises(InvalidState, match="fit"):
            use(Reference())


# --- the report ---------------------------------------------------------------------------


def test_the_table_has_one_row_per_column_with_the_documented_columns() -> None:
    reference = _typed(500)
    current = _typed(400).drop(columns=["vip"])
    current["amount"] += 30.0

    table = drift(reference, current).table
    assert table.columns.tolist() == TABLE_COLUMNS
    assert table["column"].tolist() == reference.columns.tolist()  # "vip" too, reported missing
    amount = table.set_index("column").loc["amount"]
    assert amount["method"] == "ks" and bool(amount["drift"]) is True
    assert amount["p_value"] < 1e-10 and amount["statistic"] == amount["effect"] > 0.5
    assert amount["threshold"] == 0.05
    assert (amount["reference_rows"], amount["current_rows"]) == (500, 400)


def test_the_report_is_strict_json() -> None:
    reference = _typed(500)
    current = _typed(400)
    current["amount"] = np.nan
    current["six"] = current["six"].astype(str) + "x"
    current = current.drop(columns=["rate"])

    report = drift(reference, current)
    data = as_json(report.to_dict())
    assert data["rows"] == 400 and data["reference_rows"] == 500
    assert data["drift_share"] == 0.5 and data["drifted"] == ["six"]
    assert data["share"] == pytest.approx(1 / 4) and data["dataset_drift"] is False
    assert [c["column"] for c in data["columns"]] == report.table["column"].tolist()
    assert all(set(TABLE_COLUMNS) == set(c) for c in data["columns"])


def test_distributions_hold_both_samples_for_a_chart() -> None:
    reference = _typed(2_000)
    current = _typed(1_500)
    current["amount"] += 5.0

    found = as_json(drift(reference, current).distributions)
    assert set(found) == {"amount", "six", "five", "rate", "city", "vip"}
    amount = found["amount"]
    assert len(amount["edges"]) == len(amount["reference"]) + 1 == len(amount["current"]) + 1
    assert amount["current_low"] >= current["amount"].min()
    city = found["city"]
    assert sorted(city["labels"]) == ["berlin", "paris", "rome"]
    assert sum(city["reference"]) == pytest.approx(1.0) == sum(city["current"])


def test_many_tested_columns_are_held_to_benjamini_hochberg() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(rng.normal(size=(600, 20)), columns=[f"x{i}" for i in range(20)])
    # A column whose shift is significant alone (p just under 0.05) but not among 20 tests.
    current = pd.DataFrame(rng.normal(size=(150, 20)), columns=reference.columns)
    alone = None
    for shift in np.linspace(0.0, 0.5, 51):
        moved = current.assign(x0=current["x0"] + shift)
        score = drift(reference[["x0"]], moved[["x0"]]).columns[0].score
        if score.drift and score.p_value is not None and score.p_value > 0.01:
            alone = moved
            break
    assert alone is not None, "no shift gave a p-value between 0.01 and 0.05"
    together = drift(reference, alone)
    x0 = next(c for c in together.columns if c.column == "x0")
    assert x0.score.drift is False
    assert "Benjamini-Hochberg" in x0.score.note
    # A real shift is still drift among the twenty.
    shifted = drift(reference, current.assign(x1=current["x1"] + 1.0))
    assert "x1" in shifted.drifted

"""Metrics, fairness and importance: the numbers gates read, checked against their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.errors import InvalidInput
from loopml.evaluation import metrics
from loopml.evaluation.fairness import fairness
from loopml.evaluation.importance import permutation_importance

RNG = np.random.default_rng(7)


def _binary(n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    groups = pd.Series(RNG.choice(["f", "m", "x"], size=n, p=[0.45, 0.45, 0.1]), name="gender")
    y_true = RNG.integers(0, 2, size=n)
    # Group m is predicted positive more often: a parity gap the metrics must see.
    flip = RNG.random(n) < np.where(groups == "m", 0.4, 0.1)
    y_pred = np.where(flip, 1, y_true)
    proba = np.clip(y_pred * 0.7 + RNG.random(n) * 0.3, 0, 1)
    return y_true, y_pred, np.column_stack([1 - proba, proba]), groups


def test_fairness_matches_fairlearn():
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    y_true, y_pred, _, groups = _binary()
    found = fairness(y_true, y_pred, groups, positive=1)
    expected = {
        "demographic_parity_difference": demographic_parity_difference,
        "demographic_parity_ratio": demographic_parity_ratio,
        "equalized_odds_difference": equalized_odds_difference,
    }
    for name, fn in expected.items():
        assert found[name] == pytest.approx(fn(y_true, y_pred, sensitive_features=groups)), name
    assert found["demographic_parity_difference"] > 0.1
    assert [g["group"] for g in found["groups"]] == ["f", "m", "x"]
    assert sum(g["rows"] for g in found["groups"]) == len(y_true)


def test_fairness_counts_missing_values_as_a_group_and_needs_two_groups():
    y = np.array([1, 0, 1, 0])
    found = fairness(y, y, pd.Series(["a", None, "a", None], name="g"), positive=1)
    assert [g["group"] for g in found["groups"]] == ["(missing)", "a"]
    with pytest.raises(InvalidInput, match="'g' has 1 group"):
        fairness(y, y, pd.Series(["a"] * 4, name="g"), positive=1)


def test_classification_scores_the_last_class_as_positive():
    y_true, y_pred, proba, _ = _binary()
    labels = np.array(["no", "yes"])
    scores, plots = metrics.classification(labels[y_true], labels[y_pred], proba, ["no", "yes"])
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    assert scores["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y_true, proba[:, 1]))
    assert scores["log_loss"] == pytest.approx(log_loss(y_true, proba))
    assert plots["positive_class"] == "yes"
    assert np.array(plots["confusion_matrix"]).sum() == len(y_true)
    assert len(plots["calibration"]["predicted"]) == len(plots["calibration"]["observed"]) > 1


def test_multiclass_uses_macro_averages_and_one_vs_rest_auc():
    y_true = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    y_pred = np.array([0, 1, 2, 1, 1, 0, 2, 2])
    proba = np.eye(3)[y_pred] * 0.8 + 0.2 / 3
    scores, plots = metrics.classification(y_true, y_pred, proba, [0, 1, 2])
    from sklearn.metrics import f1_score

    assert scores["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert "roc_auc" in scores
    assert plots["positive_class"] is None
    assert "calibration" not in plots


def test_regression_scores_and_residual_sample():
    truth = RNG.normal(size=3000)
    pred = truth + RNG.normal(scale=0.1, size=3000)
    scores, plots = metrics.regression(truth, pred)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((truth - pred) ** 2)))
    assert scores["r2"] > 0.95
    assert len(plots["residuals"]["residual"]) == metrics.RESIDUAL_POINTS


def test_slices_bin_many_numeric_values_and_keep_missing_rows():
    column = pd.Series(list(range(100)) + [None] * 4, name="age", dtype="Float64")
    rows = metrics.slices(column, lambda mask: {"n": float(mask.sum())})
    assert len(rows) == metrics.SLICE_BINS + 1
    assert rows[-1] == {"slice": None, "rows": 4, "n": 4.0}
    assert sum(r["rows"] for r in rows) == 104


@pytest.mark.parametrize(
    ("metric", "lower"),
    [("rmse", True), ("log_loss", True), ("f1", False), ("demographic_parity_ratio", False)],
)
def test_direction_of_metrics(metric: str, lower: bool):
    assert metrics.lower_is_better(metric) is lower


def test_task_is_inferred_from_the_model_and_target():
    numbers = pd.Series([1.5, 2.0])
    assert metrics.task_of(LinearRegression(), numbers, None) == "regression"
    assert metrics.task_of(LinearRegression(), pd.Series(["a", "b"]), None) == "classification"
    assert metrics.task_of(object(), numbers, "classification") == "classification"
    with pytest.raises(InvalidInput, match="task must be"):
        metrics.task_of(object(), numbers, "ranking")


def test_permutation_importance_ranks_the_feature_the_model_reads_first():
    frame = pd.DataFrame({"signal": RNG.normal(size=600), "noise": RNG.normal(size=600)})
    y = frame["signal"].to_numpy() * 3
    model = LinearRegression().fit(frame, y)
    calls: list[int] = []

    def predict(rows: pd.DataFrame) -> np.ndarray:
        calls.append(len(rows))
        return model.predict(rows)

    from sklearn.metrics import r2_score

    found = permutation_importance(predict, frame, y, r2_score, repeats=3, sample_rows=200)
    assert [f["feature"] for f in found] == ["signal", "noise"]
    assert found[0]["importance"] > 1.0
    assert found[1]["importance"] == pytest.approx(0.0, abs=1e-9)
    # The baseline, then every shuffled copy in one call.
    assert calls == [200, 200 * 2 * 3]


def test_shap_explains_trees_and_linear_models_and_says_why_not_others():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor

    from loopml.evaluation.importance import shap_importance

    frame = pd.DataFrame({"signal": RNG.normal(size=300), "noise": RNG.normal(size=300)})
    y = frame["signal"].to_numpy() * 3
    for model in (RandomForestRegressor(20, random_state=0), LinearRegression()):
        found = shap_importance(model.fit(frame, y), frame, sample_rows=100)
        assert found is not None and found["rows"] == 100
        assert [f["feature"] for f in found["features"]] == ["signal", "noise"], model
    refused = shap_importance(KNeighborsRegressor().fit(frame, y), frame)
    assert refused is not None and refused["explainer"] is None and refused["reason"]


def test_slices_of_many_text_values_keep_the_most_common_and_times_are_binned():
    ids = pd.Series([f"user-{i % 500}" for i in range(3000)] + ["top"] * 100, name="uid")
    rows = metrics.slices(ids, lambda mask: {})
    assert len(rows) == metrics.MAX_SLICE_VALUES
    assert rows[0]["slice"] == "top" or "top" in [r["slice"] for r in rows]
    assert metrics.OTHER in [r["slice"] for r in rows]
    assert sum(r["rows"] for r in rows) == len(ids)
    times = pd.Series(pd.date_range("2026-01-01", periods=400, freq="h"), name="at")
    assert len(metrics.slices(times, lambda mask: {})) == metrics.SLICE_BINS


def test_fairness_refuses_a_feature_with_too_many_groups():
    y = np.zeros(100, dtype=int)
    with pytest.raises(InvalidInput, match=r"100 groups; .* bin it"):
        fairness(y, y, pd.Series(np.arange(100.0), name="income"), positive=1)

"""HTML reports of evaluations, comparisons and gate verdicts: sections, plot data, escaping."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.data.profile import profile_table
from loopml.data.validation import validate
from loopml.errors import InvalidInput
from loopml.evaluation.checks import CheckResult
from loopml.evaluation.gates import GateResult
from loopml.evaluation.records import Evaluation
from loopml.evaluation.report import render_comparison, render_evaluation, render_gate
from tests.charts import layout, traces

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def classification(**changes: Any) -> Evaluation:
    """Return a binary classifier's evaluation with every optional section."""
    details = {
        "plots": {
            "classes": ["stay", "churn"],
            "positive_class": "churn",
            "confusion_matrix": [[50, 4], [7, 39]],
            "roc_curve": {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.8, 1.0]},
            "calibration": {"predicted": [0.1, 0.5, 0.9], "observed": [0.12, 0.45, 0.93]},
        },
        "slices": {
            "plan": [
                {"slice": "basic", "rows": 60, "accuracy": 0.9, "roc_auc": 0.95},
                {"slice": "pro", "rows": 38, "accuracy": 0.8},  # one class only: no ROC AUC
                {"slice": None, "rows": 2, "accuracy": 0.5, "roc_auc": None},
            ]
        },
        "fairness": {
            "gender": {
                "demographic_parity_difference": 0.2,
                "demographic_parity_ratio": 0.6,
                "equalized_odds_difference": 0.15,
                "groups": [
                    {
                        "group": "f",
                        "rows": 48,
                        "selection_rate": 0.3,
                        "true_positive_rate": 0.85,
                        "false_positive_rate": None,
                    },
                    {
                        "group": "m",
                        "rows": 52,
                        "selection_rate": 0.5,
                        "true_positive_rate": 0.7,
                        "false_positive_rate": 0.1,
                    },
                ],
            }
        },
        "importance": {
            "metric": "accuracy",
            "features": [
                {"feature": f"f{i}", "importance": 0.3 - i / 100, "std": 0.01} for i in range(25)
            ],
        },
    }
    settings: dict[str, Any] = {
        "id": "a" * 32,
        "model": "models:/churn/3",
        "package_digest": "p1",
        "dataset": "churn@v2",
        "data_digest": "d1",
        "target": "churned",
        "task": "classification",
        "rows": 100,
        "metrics": {"accuracy": 0.89, "f1": 0.87, "roc_auc": 0.93, "log_loss": 0.31},
        "details": details,
        "user": "ana",
        "created_at": 1_700_000_000_000,
    }
    return Evaluation(**(settings | changes))


def regression(**changes: Any) -> Evaluation:
    settings: dict[str, Any] = {
        "id": "b" * 32,
        "model": "runs:/abc/model",
        "package_digest": "p2",
        "dataset": "prices.csv",
        "data_digest": "d2",
        "target": "price",
        "task": "regression",
        "rows": 3,
        "metrics": {"rmse": 1.5, "mae": 1.2, "r2": None, "max_error": 2.0},
        "details": {
            "plots": {"residuals": {"predicted": [10.0, 20.0, 30.0], "residual": [1.0, -2.0, 0.5]}}
        },
    }
    return Evaluation(**(settings | changes))


def row(page: str, first_cell: str) -> list[str]:
    """Return the cells of the table row that starts with `first_cell`."""
    found = re.search(r"<tr[^>]*><td>" + re.escape(first_cell) + r"</td>(.*?)</tr>", page)
    assert found, f"no row {first_cell!r} in the page"
    return [first_cell, *re.findall(r"<td>(.*?)</td>", found.group(1))]


def assert_offline(page: str) -> None:
    assert not re.search(r"<script[^>]+src=", page)  # Plotly's JavaScript is embedded
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_a_classification_report_has_every_section_with_its_plot_data() -> None:
    page = render_evaluation(classification())

    assert_offline(page)
    assert "<title>LoopML evaluation: models:/churn/3 on churn@v2</title>" in page
    for heading in ("Metrics", "Plots", "Slices", "Fairness", "Permutation importance"):
        assert f"<h2>{heading}</h2>" in page
    assert row(page, "models:/churn/3")[1:6] == [
        "churn@v2",
        "churned",
        "classification",
        "100",
        "2023-11-14 22:13 UTC",
    ]
    assert row(page, "log_loss") == ["log_loss", "0.31", "lower"]
    assert row(page, "f1") == ["f1", "0.87", "higher"]

    (matrix,) = traces(page, "confusion-matrix")
    assert matrix["z"] == [[50, 4], [7, 39]] and matrix["x"] == ["stay", "churn"]
    roc = traces(page, "roc-curve")
    assert roc[-1]["x"] == [0.0, 0.1, 1.0] and roc[-1]["y"] == [0.0, 0.8, 1.0]
    assert "ROC curve, positive class churn (AUC 0.93)" in page
    assert traces(page, "calibration-curve")[-1]["y"] == [0.12, 0.45, 0.93]

    by_metric = {t["name"]: t for t in traces(page, "slices-0")}
    assert by_metric["accuracy"]["x"] == ["basic", "pro", "(missing)"]
    assert by_metric["accuracy"]["y"] == [0.9, 0.8, 0.5]
    assert by_metric["roc_auc"]["y"] == [0.95, None, None]  # missing and NaN leave a gap
    assert row(page, "pro") == ["pro", "38", "0.8", "n/a"]

    rates = {t["name"]: t["y"] for t in traces(page, "fairness-0")}
    assert rates == {
        "selection rate": [0.3, 0.5],
        "true positive rate": [0.85, 0.7],
        "false positive rate": [None, 0.1],
    }
    assert "<th>demographic parity difference</th>" in page
    assert row(page, "0.2") == ["0.2", "0.6", "0.15"]

    (bars,) = traces(page, "importance")
    assert bars["y"] == [f"f{i}" for i in range(20)]  # the 20 largest, largest first
    assert bars["x"][0] == pytest.approx(0.3)


def test_a_regression_report_plots_residuals_and_shows_missing_metrics() -> None:
    page = render_evaluation(regression(), title="prices model")

    assert_offline(page)
    assert "<title>prices model</title>" in page
    (points,) = traces(page, "residuals")
    assert points["x"] == [10.0, 20.0, 30.0] and points["y"] == [1.0, -2.0, 0.5]
    assert row(page, "r2") == ["r2", "n/a", "higher"]
    assert row(page, "rmse") == ["rmse", "1.5", "lower"]
    assert "confusion-matrix" not in page and "<h2>Slices</h2>" not in page


def test_an_evaluation_without_details_has_its_metrics_and_no_charts() -> None:
    plain = classification(details={}, metrics={"accuracy": 0.5, "f1": float("nan")})
    page = render_evaluation(plain)

    assert row(page, "accuracy") == ["accuracy", "0.5", "higher"]
    assert row(page, "f1") == ["f1", "n/a", "higher"]  # NaN before it is stored
    assert "Plotly.newPlot" not in page
    for heading in ("Plots", "Slices", "Fairness", "Permutation importance"):
        assert f"<h2>{heading}</h2>" not in page


def test_names_from_the_data_are_escaped_in_tables_headings_and_charts() -> None:
    hostile = classification(
        dataset=HOSTILE,
        details={
            "plots": {"classes": [HOSTILE, "b"], "confusion_matrix": [[1, 0], [0, 1]]},
            "slices": {HOSTILE: [{"slice": HOSTILE, "rows": 1, "accuracy": 1.0}]},
            "fairness": {
                HOSTILE: {"groups": [{"group": HOSTILE, "rows": 1, "selection_rate": 1.0}]}
            },
            "importance": {"metric": "accuracy", "features": [{"feature": HOSTILE}]},
        },
    )
    pages = [
        render_evaluation(hostile, title=HOSTILE),
        render_comparison([hostile, classification()]),
        render_gate(gate_result(dataset=HOSTILE, message=HOSTILE), hostile),
    ]
    for page in pages:
        assert HOSTILE not in page
        assert ESCAPED in page
    assert "<h3>By &lt;script&gt;" in pages[0] and "<td>&lt;script&gt;" in pages[0]
    # Plotly draws labels as HTML-like text: they are escaped for it, then JSON-encoded.
    assert traces(pages[0], "confusion-matrix")[0]["x"][0] == ESCAPED
    assert traces(pages[0], "slices-0")[0]["x"] == [ESCAPED]
    assert layout(pages[0], "fairness-0")["xaxis"]["title"]["text"] == ESCAPED
    assert traces(pages[0], "importance")[0]["y"] == [ESCAPED]


def test_a_comparison_marks_the_best_value_of_each_metric_either_way() -> None:
    old = classification()
    new = classification(
        id="c" * 32,
        model="models:/churn/4",
        metrics={"accuracy": 0.91, "f1": 0.87, "roc_auc": None, "log_loss": 0.4, "extra": 1.0},
    )
    page = render_comparison([old, new])

    assert_offline(page)
    assert row(page, "accuracy") == ["accuracy", "higher", "0.89", "★ 0.91"]
    assert row(page, "log_loss") == ["log_loss", "lower", "★ 0.31", "0.4"]  # lower is better
    assert row(page, "f1") == ["f1", "higher", "0.87", "0.87"]  # a tie has no best
    assert row(page, "roc_auc") == ["roc_auc", "higher", "0.93", "n/a"]
    assert row(page, "extra") == ["extra", "higher", "n/a", "1"]
    assert row(page, "demographic_parity_difference (gender)")[2:] == ["0.2", "0.2"]
    bars = traces(page, "comparison")
    assert [t["name"] for t in bars] == [
        "models:/churn/3 on churn@v2",
        "models:/churn/4 on churn@v2",
    ]
    assert "roc_auc" not in bars[0]["x"] and "extra" not in bars[0]["x"]  # only shared metrics
    assert bars[1]["y"][bars[1]["x"].index("accuracy")] == 0.91


def test_a_comparison_tells_apart_evaluations_of_one_model_on_one_dataset() -> None:
    page = render_comparison([classification(), classification(id="d" * 32)])

    assert [t["name"] for t in traces(page, "comparison")] == [
        "models:/churn/3 on churn@v2 (aaaaaaaa)",
        "models:/churn/3 on churn@v2 (dddddddd)",
    ]
    with pytest.raises(InvalidInput, match="at least one evaluation"):
        render_comparison([])


def gate_result(
    *, passed: bool = False, dataset: str = "churn@v2", message: str = ""
) -> GateResult:
    checks = [
        CheckResult("threshold", "f1", 0.87, ">= 0.8", True, "f1 0.87 is within >= 0.8"),
        CheckResult(
            "threshold",
            "log_loss",
            None if passed else 0.31,
            "<= 0.2",
            passed,
            message or "log_loss 0.31 is outside <= 0.2",
            {"metric": "log_loss", "max": 0.2},
        ),
    ]
    gate = {"target": "churned", "checks": [{"threshold": {"metric": "f1", "min": 0.8}}]}
    return GateResult(passed, "models:/churn/3", dataset, "churned", "a" * 32, checks, gate, 0)


def test_a_failed_gate_report_shows_the_verdict_each_check_and_the_settings() -> None:
    page = render_gate(gate_result())

    assert_offline(page)
    assert '<p class="summary failed"><strong>FAILED</strong>' in page
    assert "2 check(s), 1 failed" in page
    assert '<tr class="error"><td>threshold</td><td>log_loss</td><td>0.31</td>' in page
    assert row(page, "threshold") == [
        "threshold",
        "f1",
        "0.87",
        "&gt;= 0.8",
        "yes",
        "f1 0.87 is within &gt;= 0.8",
    ]
    assert "log_loss 0.31 is outside &lt;= 0.2" in page
    settings = re.search(r"<pre>(.*?)</pre>", page, re.S)
    assert settings and json.loads(settings.group(1).replace("&quot;", '"'))["target"] == "churned"
    assert "<h2>Evaluation</h2>" not in page and "<h2>Data validation</h2>" not in page


def test_a_gate_report_adds_the_evaluation_and_the_data_validation() -> None:
    rng = np.random.default_rng(0)
    reference = profile_table(pd.DataFrame({"age": rng.normal(40, 5, 500), "plan": ["a"] * 500}))
    without_plan = profile_table(pd.DataFrame({"age": rng.normal(40, 5, 500)}))
    failed = validate(without_plan, reference=reference, label="churn@v3")

    passing = render_gate(gate_result(passed=True), classification())
    assert '<p class="summary passed"><strong>PASSED</strong>' in passing
    assert "<h2>Evaluation</h2>" in passing and traces(passing, "confusion-matrix")
    assert row(passing, "threshold")[1:3] == ["f1", "0.87"]

    page = render_gate(gate_result(passed=True), validation={"data/v3.csv": failed.to_dict()})
    # The gate passed but the data did not: the page says FAILED, as `loopml check` exits 1.
    assert '<p class="summary failed"><strong>FAILED</strong>' in page
    assert "data validation: 1 of 1 table(s) failed" in page
    assert "<h2>Data validation</h2>" in page and "churn@v3" in page
    assert '<tr class="error"><td>error</td><td>plan</td><td>missing' in page


def test_a_gate_report_refuses_validation_that_is_not_a_report() -> None:
    with pytest.raises(InvalidInput, match=r"validation of 'data.csv'.*to_dict\(\)"):
        render_gate(gate_result(), validation={"data.csv": {"ok": True}})


def test_a_real_evaluation_renders_with_every_section(sqlite_ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml.evaluation.scoring import evaluate

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "noise": rng.normal(size=300)})
    frame["y"] = (frame["x"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    frame["group"] = np.where(rng.random(300) < 0.5, "a", "b")
    model = LogisticRegression().fit(frame[["x", "noise"]][:200], frame["y"][:200])
    with loopml.start_run():
        logged = loopml.log_model(model, name="toy", input_example=frame[["x", "noise"]][:5])
    test = frame[200:]
    evaluation = evaluate(logged.uri, test, "y", sensitive_features=["group"], slices=["group"])

    page = render_evaluation(evaluation)

    assert_offline(page)
    (matrix,) = traces(page, "confusion-matrix")
    assert sum(map(sum, matrix["z"])) == len(test)
    assert len(traces(page, "roc-curve")[-1]["x"]) > 2
    assert {t["name"] for t in traces(page, "slices-0")} >= {"accuracy", "f1"}
    assert traces(page, "fairness-0")[0]["x"] == ["a", "b"]
    assert traces(page, "importance")[0]["y"][0] == "x"  # the feature the labels come from


def test_shap_values_get_a_chart_when_the_evaluation_has_them() -> None:
    base = classification()
    explained = {
        "explainer": "TreeExplainer",
        "rows": 100,
        "features": [
            {"feature": "tenure", "mean_abs_shap": 0.3},
            {"feature": "plan", "mean_abs_shap": 0.1},
        ],
    }
    page = render_evaluation(classification(details={**base.details, "shap": explained}))
    assert "SHAP (TreeExplainer)" in page
    (bars,) = traces(page, "shap")
    assert bars["y"] == ["tenure", "plan"] and bars["x"] == [0.3, 0.1]
    # A model SHAP could not explain records why, and the page has no chart for it.
    refused = {"explainer": None, "reason": "InvalidModelError: no"}
    assert "SHAP" not in render_evaluation(
        classification(details={**base.details, "shap": refused})
    )

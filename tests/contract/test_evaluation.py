"""Evaluation, gates and promotion on every store: records, champions, the audit trail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml
from loopml import BeatsChampion, Fairness, Gate, LatencyBudget, Threshold
from loopml.core.workspace import Workspace
from loopml.errors import GateFailed, InvalidInput, InvalidState, NotFound
from loopml.evaluation import records
from loopml.evaluation.checks import Check, CheckResult
from loopml.evaluation.gates import GateContext
from loopml.registry import models

FEATURES = ["a", "b", "c"]


@pytest.fixture
def churn(ws: Workspace, tmp_path: Path) -> pd.DataFrame:
    """Two versions of a table, registered as dataset churn: v1 for training, v2 to evaluate."""
    rng = np.random.default_rng(3)
    frames = []
    for version in (1, 2):
        frame = pd.DataFrame({c: rng.normal(size=300) for c in FEATURES})
        frame["region"] = rng.choice(["north", "south", "east"], size=300)
        frame["gender"] = rng.choice(["f", "m"], size=300)
        frame["churned"] = (frame["a"] + 0.5 * frame["b"] + rng.normal(0, 0.5, 300) > 0).astype(int)
        path = tmp_path / "churn.csv"
        frame.to_csv(path, index=False)
        assert loopml.data.add(path, "churn").version == version
        frames.append(frame)
    return frames[0]


def register(model: object, train: pd.DataFrame, name: str = "churn-model") -> str:
    model.fit(train[FEATURES], train["churned"])  # type: ignore[attr-defined]
    with loopml.start_run():
        logged = loopml.log_model(model, name=name, input_example=train[FEATURES].head(5))
    return logged.uri


def test_evaluate_scores_and_records_against_the_model_and_dataset_versions(
    ws: Workspace, churn: pd.DataFrame
):
    uri = register(LogisticRegression(), churn)
    found = loopml.evaluate(
        uri, data="churn@v2", target="churned", sensitive_features=["gender"], slices=["region"]
    )
    assert set(found.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert found.metrics["accuracy"] > 0.7
    assert (found.model_name, found.model_version, found.dataset) == ("churn-model", 1, "churn@v2")
    assert [s["slice"] for s in found.details["slices"]["region"]] == ["east", "north", "south"]
    assert set(found.details["fairness"]["gender"]) >= {"demographic_parity_difference"}
    top = found.details["importance"]["features"][0]["feature"]
    assert top == "a"  # the feature the target is made of
    stored = records.get(ws, found.id[:8])
    assert stored.metrics == pytest.approx(found.metrics)
    assert stored.dataset_version_id == loopml.data.get("churn@v2").id
    assert [e.id for e in records.of_model(ws, "churn-model", 1)] == [found.id]


def test_regression_models_get_regression_metrics(ws: Workspace, churn: pd.DataFrame):
    train = churn.assign(churned=churn["a"] * 2.0)
    uri = register(LinearRegression(), train, name="spend")
    frame = train.copy()
    found = loopml.evaluate(uri, data=frame, target="churned", importance=False)
    assert found.task == "regression"
    assert found.metrics["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert found.dataset == "DataFrame (300 rows)" and found.dataset_version_id is None


def test_bad_evaluation_inputs_name_the_problem(ws: Workspace, churn: pd.DataFrame):
    uri = register(LogisticRegression(), churn)
    with pytest.raises(InvalidInput, match=r"no target column 'label'.*churned"):
        loopml.evaluate(uri, data="churn@v2", target="label")
    with pytest.raises(InvalidInput, match="no sensitive feature column 'age'"):
        loopml.evaluate(uri, data="churn@v2", target="churned", sensitive_features=["age"])
    with pytest.raises(NotFound, match="has no version 7"):
        loopml.evaluate("models:/churn-model/7", data="churn@v2", target="churned")
    with pytest.raises(NotFound, match="no alias 'champion'"):
        loopml.evaluate("models:/churn-model@champion", data="churn@v2", target="churned")
    with pytest.raises(NotFound, match="nope"):
        loopml.evaluate(uri, data="nope@v1", target="churned")
    with pytest.raises(InvalidInput, match="missing value"):
        loopml.evaluate(uri, data=churn.assign(churned=np.nan), target="churned")
    with pytest.raises(InvalidInput, match="data must be"):
        loopml.evaluate(uri, data=42, target="churned")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="column 'c'"):
        loopml.evaluate(uri, data=churn.drop(columns=["c"]), target="churned")
    regression = register(LinearRegression(), churn.assign(churned=churn["a"]), name="spend")
    with pytest.raises(InvalidInput, match="binary classifier"):
        loopml.evaluate(regression, data="churn@v2", target="a", sensitive_features=["gender"])
    assert records.of_model(ws, "churn-model") == []  # nothing half-stored


def test_gate_passes_without_a_champion_and_says_so(ws: Workspace, churn: pd.DataFrame):
    uri = register(LogisticRegression(), churn)
    gate = Gate(
        [
            Threshold("f1", min=0.5),
            BeatsChampion("f1", min_delta=0.01),
            Fairness("demographic_parity_difference", max=0.5, sensitive="gender"),
            LatencyBudget(max_ms=1000, calls=20),
        ],
        target="churned",
    )
    result = gate.check(uri, data="churn@v2")
    assert result.passed, result.summary()
    by_check = {c.check: c for c in result.checks}
    assert "no champion yet" in by_check["beats_champion"].message
    assert by_check["latency"].metric == "p99_ms" and by_check["latency"].value > 0
    assert by_check["fairness"].metric == "demographic_parity_difference[gender]"
    assert result.gate == gate.get_params()
    # The gate's evaluation is stored and reused: a second check scores nothing anew.
    gate.check(uri, data="churn@v2")
    assert len(records.of_model(ws, "churn-model", 1)) == 1


def test_promote_moves_the_alias_only_past_the_gate_and_keeps_the_verdict(
    ws: Workspace, churn: pd.DataFrame
):
    good = register(LogisticRegression(), churn)
    worse = register(DummyClassifier(strategy="most_frequent"), churn)
    gate = Gate([BeatsChampion("accuracy", min_delta=0.0)], target="churned")
    first = loopml.promote("churn-model", 1, gate=gate, data="churn@v2")
    assert (first.from_version, first.to_version, first.reason) == (None, 1, "gate passed")

    with pytest.raises(GateFailed, match="churn-model@champion was not moved") as caught:
        loopml.promote("churn-model", 2, gate=gate, data="churn@v2")
    failed = caught.value.result
    assert failed is not None and not failed.passed
    assert failed.checks[0].value < 0  # accuracy fell
    assert models.resolve(ws, "models:/churn-model@champion").version == 1

    forced = loopml.promote(
        "churn-model", 2, gate=gate, data="churn@v2", force=True, reason="rollback drill"
    )
    history = models.alias_history(ws, "churn-model", "champion")
    assert [(e.from_version, e.to_version) for e in history] == [(None, 1), (1, 2)]
    assert history[-1].reason == "rollback drill"
    assert history[-1].gate_result is not None
    assert history[-1].gate_result["forced"] is True
    assert history[-1].gate_result["passed"] is False
    assert forced.to_version == 2 and good != worse


def test_beats_champion_knows_lower_is_better_and_relative_deltas(
    ws: Workspace, churn: pd.DataFrame
):
    target = churn["a"] * 2.0 + churn["b"]
    train = churn.assign(churned=target)
    register(LinearRegression(), train.assign(churned=train["a"] * 2.0), name="spend")
    register(LinearRegression(), train, name="spend")
    data = train.copy()
    loopml.set_alias("spend", "champion", 1)
    # v2 fits the target exactly; v1 misses the b term: RMSE drops, which is the gain.
    result = Gate([BeatsChampion("rmse", min_delta=0.5, relative=True)]).check(
        "models:/spend/2", data=data, target="churned"
    )
    check = result.checks[0]
    assert result.passed and check.value == pytest.approx(1.0)
    loopml.set_alias("spend", "champion", 2)
    back = Gate([BeatsChampion("rmse")]).check("models:/spend/1", data=data, target="churned")
    assert not back.passed and back.checks[0].value < 0
    assert "lower is better" in back.checks[0].message
    same = Gate([BeatsChampion("rmse", min_delta=1.0)]).check("models:/spend/2", data=data)
    assert same.passed and "is the champion already" in same.checks[0].message


def test_gate_errors_name_the_fix(ws: Workspace, churn: pd.DataFrame):
    uri = register(LogisticRegression(), churn)
    with pytest.raises(InvalidInput, match=r"metric 'rmse' was not computed.*computed: accuracy"):
        Gate([Threshold("rmse", max=1.0)]).check(uri, data="churn@v2", target="churned")
    with pytest.raises(InvalidInput, match="pass target="):
        Gate([Threshold("f1", min=0.1)]).check(uri, data="churn@v1")
    with loopml.start_run() as run:
        loopml.log_model(LogisticRegression().fit(churn[FEATURES], churn["churned"]))
    with pytest.raises(InvalidInput, match="not a registered version"):
        Gate([BeatsChampion("f1")]).check(f"runs:/{run.id}/model", "churn@v2", target="churned")
    with pytest.raises(InvalidInput, match="needs a gate"):
        loopml.promote("churn-model", 1)
    with pytest.raises(InvalidInput, match="force=True needs reason"):
        loopml.promote("churn-model", 1, force=True)
    with pytest.raises(InvalidInput, match="needs data="):
        loopml.promote("churn-model", 1, gate=Gate([Threshold("f1", min=0)]))
    with pytest.raises(NotFound, match="has no version 9"):
        loopml.promote("churn-model", 9, force=True, reason="x")
    with pytest.raises(NotFound, match=r"model 'other'"):
        loopml.promote("other", 1, force=True, reason="x")
    assert models.alias_history(ws, "churn-model") == []


def test_a_stored_evaluation_gives_the_gate_its_target(ws: Workspace, churn: pd.DataFrame):
    uri = register(LogisticRegression(), churn)
    loopml.evaluate(uri, data="churn@v2", target="churned", importance=False)
    result = Gate([Threshold("accuracy", min=0.5)]).check(uri, data="churn@v2")
    assert result.passed and result.target == "churned"


class MovesTheChampion(Check):
    """A check that, while the gate runs, has someone else move the champion."""

    def __init__(self, to: int = 3) -> None:
        self.to = to

    def check(self, context: GateContext) -> CheckResult:
        loopml.set_alias(context.model.name or "", "champion", self.to, reason="someone else")
        return self.result("moved", None, "", True, "moved it")


def test_promote_refuses_when_the_alias_moved_while_the_gate_ran(
    ws: Workspace, churn: pd.DataFrame
):
    for _ in range(3):
        register(LogisticRegression(), churn)
    loopml.set_alias("churn-model", "champion", 2)
    gate = Gate([MovesTheChampion(to=3)], target="churned")
    with pytest.raises(InvalidState, match=r"moved while this was decided \(it was v2, it is v3"):
        loopml.promote("churn-model", 1, gate=gate, data="churn@v2")
    assert models.resolve(ws, "models:/churn-model@champion").version == 3
    history = models.alias_history(ws, "churn-model", "champion")
    assert [(e.from_version, e.to_version) for e in history] == [(None, 2), (2, 3)]


def test_relative_gain_against_a_zero_champion_is_infinite_either_way(
    ws: Workspace, churn: pd.DataFrame
):
    flat = churn.assign(churned=5.0)
    register(DummyRegressor(constant=5.0, strategy="constant"), flat, name="zero")
    register(DummyRegressor(constant=9.0, strategy="constant"), flat, name="zero")
    loopml.set_alias("zero", "champion", 1)
    worse = Gate([BeatsChampion("rmse", relative=True)]).check(
        "models:/zero/2", flat, target="churned"
    )
    assert not worse.passed and worse.checks[0].value == float("-inf")


def test_a_champion_that_cannot_be_scored_is_named(ws: Workspace, churn: pd.DataFrame):
    register(LogisticRegression(), churn)
    narrower = LogisticRegression().fit(churn[["a", "b"]], churn["churned"])
    with loopml.start_run():
        loopml.log_model(narrower, name="churn-model", input_example=churn[["a", "b"]].head(3))
    loopml.set_alias("churn-model", "champion", 1)
    with pytest.raises(InvalidInput, match=r"the champion to beat, models:/churn-model/1.*'c'"):
        Gate([BeatsChampion("f1")]).check(
            "models:/churn-model/2", churn.drop(columns=["c"]), target="churned"
        )


def test_targets_a_model_cannot_be_scored_on_are_refused_by_name(
    ws: Workspace, churn: pd.DataFrame
):
    uri = register(LogisticRegression(), churn)
    words = churn.assign(churned=np.where(churn["churned"] == 1, "yes", "no"))
    with pytest.raises(InvalidInput, match=r"holds 'no', 'yes', which models:/churn-model/1"):
        loopml.evaluate(uri, data=words, target="churned")
    three = churn.assign(churned=churn["churned"] + (churn["a"] > 1))
    with pytest.raises(InvalidInput, match=r"holds 2, which"):
        loopml.evaluate(uri, data=three, target="churned")
    spend = register(LinearRegression(), churn.assign(churned=churn["a"]), name="spend")
    with pytest.raises(InvalidInput, match="infinite values"):
        loopml.evaluate(spend, data=churn.assign(churned=np.inf), target="churned")
    with pytest.raises(InvalidInput, match="cannot score models:/spend/1"):
        loopml.evaluate(spend, data=churn, target="churned", task="classification")
    assert records.of_model(ws, "churn-model") == []


def test_a_metric_undefined_on_the_rows_is_none_and_says_so(ws: Workspace, churn: pd.DataFrame):
    uri = register(LogisticRegression(), churn)
    one_class = churn[churn["churned"] == 1]
    found = loopml.evaluate(uri, data=one_class, target="churned", importance=False)
    assert "roc_auc" not in found.metrics or found.metrics["roc_auc"] is None
    regression = register(LinearRegression(), churn.assign(churned=churn["a"]), name="spend")
    single = loopml.evaluate(regression, data=churn.head(1), target="a", importance=False)
    assert single.metrics["r2"] is None
    for _ in range(2):  # the fresh record and the stored one answer alike
        with pytest.raises(InvalidInput, match="'r2' of models:/spend/1 is undefined"):
            Gate([Threshold("r2", min=0.5)]).check(regression, churn.head(1), target="a")


def test_the_ci_check_keeps_the_data_report_when_the_gate_cannot_run(
    ws: Workspace, churn: pd.DataFrame, tmp_path: Path
):
    from loopml.evaluation.release import check_release

    uri = register(LogisticRegression(), churn)
    churn.drop(columns=["c"]).to_csv(tmp_path / "churn.csv", index=False)
    assert loopml.data.add(tmp_path / "churn.csv", "churn").version == 3
    found = check_release(
        uri, "churn@v3", Gate([Threshold("f1", min=0.5)]), against="churn@v2", target="churned"
    )
    assert not found.passed and found.evaluation is None
    assert found.gate.checks[0].check == "error" and "'c'" in found.gate.checks[0].message
    (report,) = found.validation.values()
    assert not report["ok"] and any("c" in i["message"] for i in report["issues"])

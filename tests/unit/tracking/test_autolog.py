"""scikit-learn autologging: params, training score and a model artifact, one run per fit."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml
from loopml.core.workspace import Workspace
from loopml.tracking import artifacts


@pytest.fixture
def autologged(sqlite_ws: Workspace) -> Iterator[Workspace]:
    loopml.autolog()
    yield sqlite_ws
    loopml.autolog(disable=True)


def test_fit_outside_a_run_gets_its_own_run(autologged: Workspace) -> None:
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    [run] = loopml.search_runs("Default")
    assert run.name == "RandomForestClassifier"
    assert run.status == "FINISHED"
    assert run.params["n_estimators"] == "5" and run.params["max_depth"] == "3"
    assert run.metrics["training_score"] == pytest.approx(model.score(x, y))
    restored = pickle.loads(artifacts.read_bytes(autologged, run.id, "model/model.pkl"))
    assert np.array_equal(restored.predict(x), model.predict(x))


def test_a_pipeline_logs_once_into_the_active_run(autologged: Workspace) -> None:
    x, y = load_iris(return_X_y=True)
    with loopml.start_run(run_name="mine") as run:
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y)
    [stored] = loopml.search_runs("Default")
    assert stored.id == run.id
    assert "logisticregression__max_iter" in stored.params
    assert stored.tags["estimator_class"] == "sklearn.pipeline.Pipeline"


def test_a_failing_fit_marks_its_run_failed(autologged: Workspace) -> None:
    with pytest.raises(ValueError):
        LogisticRegression().fit([[1.0], [2.0]], [0, 1, 2])
    [run] = loopml.search_runs("Default")
    assert run.status == "FAILED"


def test_disable_restores_plain_fit(autologged: Workspace) -> None:
    loopml.autolog(disable=True)
    x, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=200).fit(x, y)
    assert loopml.search_runs("Default") == []


def test_a_model_that_cannot_be_pickled_still_fits(
    autologged: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.preprocessing import FunctionTransformer

    x, _ = load_iris(return_X_y=True)
    model = FunctionTransformer(func=lambda v: v * 2).fit(x)
    assert model.transform(x[:1])[0][0] == x[0][0] * 2
    [run] = loopml.search_runs("Default")
    assert run.status == "FINISHED"
    assert "could not log the model FunctionTransformer" in caplog.text
    assert loopml.list_artifacts(run.id) == []


def test_a_second_fit_in_one_run_keeps_the_first_params(
    autologged: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = load_iris(return_X_y=True)
    with loopml.start_run() as run:
        LogisticRegression(C=1.0, max_iter=300).fit(x, y)
        LogisticRegression(C=0.5, max_iter=300).fit(x, y)
    assert loopml.get_run(run.id).params["C"] == "1.0"
    assert "could not log the params of LogisticRegression" in caplog.text

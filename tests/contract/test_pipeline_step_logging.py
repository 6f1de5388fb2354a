"""Fluent tracking calls inside a step land on the step's run, on every store."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.workspace import Workspace
from loopml.errors import StepFailed
from loopml.pipelines.runner import run_pipeline
from loopml.pipelines.sweep import run_sweep
from loopml.tracking import artifacts, runs
from tests.contract import pipelines_steps as flows


def test_what_a_step_logs_is_on_its_run_and_its_last_values_on_the_pipeline_run(
    ws: Workspace,
):
    result = run_pipeline(flows.training, {"epochs": 3}, progress=False)

    step_run = result.steps["fit_epochs"].run_id
    assert step_run is not None
    history = runs.metric_history(ws, step_run, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    record = runs.get(ws, step_run)
    assert record.params["optimizer"] == "sgd"
    assert record.tags["stage"] == "fit"
    assert artifacts.read_bytes(ws, step_run, "notes.txt") == b"converged"
    assert b'"epochs": 3' in artifacts.read_bytes(ws, step_run, "config.json")
    pipeline_run = runs.get(ws, result.run_id)
    assert pipeline_run.metrics == {"loss": pytest.approx(1 / 3), "final_loss": 1 / 3}

    # A cached rerun reuses the metrics with the outputs: the pipeline run still has them.
    again = run_pipeline(flows.training, {"epochs": 3}, progress=False)
    assert again.steps["fit_epochs"].status == "CACHED"
    assert again.metrics == {"loss": pytest.approx(1 / 3), "final_loss": pytest.approx(1 / 3)}
    assert runs.get(ws, again.run_id).metrics["loss"] == pytest.approx(1 / 3)


def test_a_sweep_ranks_trials_by_a_metric_logged_inside_a_step(ws: Workspace):
    run_pipeline(flows.training, {"epochs": 2}, progress=False)  # one trial comes from cache

    sweep = run_sweep(flows.training, {"epochs": [1, 2, 4]}, metric="loss", mode="min")

    assert [t.params["epochs"] for t in sweep.trials] == [4, 2, 1]
    assert [t.value for t in sweep.trials] == [pytest.approx(0.25), 0.5, 1.0]


def test_a_step_that_logs_a_file_is_told_to_return_it(ws: Workspace, tmp_path: Path):
    with pytest.raises(StepFailed, match="return what you made as an output"):
        run_pipeline(flows.saving, {"path": str(tmp_path / "w.bin")}, progress=False)

"""Edges a review found: metric order, NaN ranking, deleted runs and the cache, resuming a
--no-cache run, lineage of shared outputs."""

from __future__ import annotations

import json
import math

import pytest

from loopml.core.workspace import Workspace
from loopml.errors import StepFailed
from loopml.pipelines import lineage
from loopml.pipelines.loader import load_pipeline
from loopml.pipelines.runner import resume_pipeline, run_pipeline
from loopml.pipelines.sweep import run_sweep
from loopml.tracking import runs
from tests.contract import pipelines_steps as flows


def test_a_metric_two_steps_log_takes_the_later_step_in_the_graph(ws: Workspace):
    # scored_quickly, later in the graph, finishes first: its value still wins.
    result = run_pipeline(flows.two_scores, {}, progress=False)

    assert result.metrics == {"loss": 2.0}
    assert runs.get(ws, result.run_id).metrics == {"loss": 2.0}


def test_a_nan_metric_ranks_last_not_first(ws: Workspace):
    sweep = run_sweep(flows.losses, {"loss": [math.nan, 0.5, 0.2]}, metric="loss", mode="min")

    assert [t.params["loss"] for t in sweep.trials][:2] == [0.2, 0.5]
    assert math.isnan(sweep.trials[2].params["loss"])
    assert sweep.best is not None and sweep.best.value == 0.2


def test_a_deleted_step_run_is_not_reused_from_the_cache(ws: Workspace):
    first = run_pipeline(flows.losses, {"loss": 0.3}, progress=False)
    runs.delete(ws, first.steps["lossy"].run_id or "")

    again = run_pipeline(flows.losses, {"loss": 0.3}, progress=False)

    assert again.steps["lossy"].status == "COMPLETED"


def test_a_no_cache_run_resumes_without_the_cache(ws: Workspace, tmp_path, monkeypatch):
    flow = tmp_path / f"nocache_{tmp_path.name}.py"
    flow.write_text(
        "import os\n"
        "from loopml import pipeline, step\n\n\n"
        "@step\ndef gate(n: int) -> int:\n"
        "    if os.environ.get('BREAK'):\n        raise ValueError('broken')\n    return n\n\n\n"
        "@step\ndef fetch(n: int) -> int:\n"
        "    return n + int(os.environ.get('EXTERNAL', '0'))\n\n\n"
        "@pipeline\ndef flow(n: int = 1):\n    fetch(gate(n))\n"
    )
    pipeline = load_pipeline(f"{flow}:flow")
    run_pipeline(pipeline, {}, progress=False)  # in the cache: fetch -> 1
    # fetch reads something the cache cannot see, so the user runs without the cache; it
    # fails before fetch runs.
    monkeypatch.setenv("EXTERNAL", "10")
    monkeypatch.setenv("BREAK", "1")
    with pytest.raises(StepFailed) as caught:
        run_pipeline(pipeline, {}, cache=False, progress=False)
    run_id = caught.value.result.run_id  # type: ignore[attr-defined]
    monkeypatch.delenv("BREAK")

    resumed = resume_pipeline(run_id, pipeline=pipeline)

    assert resumed.steps["fetch"].status == "COMPLETED"  # not the first run's cached 1
    assert resumed.output("fetch") == 11


def test_lineage_of_shared_outputs_stays_as_small_as_the_graph(ws: Workspace):
    result = run_pipeline(flows.braid, {"depth": 12}, progress=False)
    digest = result.steps["fold_12"].outputs["a"].digest
    assert digest is not None

    origin = lineage.trace(ws, digest)
    tree = json.dumps(origin.to_dict())

    # Each value is expanded once and named again where it is read again: about 3 mentions
    # a level, where writing every path out would be 2 ** 12.
    assert tree.count('"step": "fold') <= 4 * 12
    assert origin.datasets() == set()
    assert '"repeated": true' in tree

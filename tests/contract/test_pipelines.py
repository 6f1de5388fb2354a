"""Pipelines on every store: graphs, tracking, caching, materializers, failures, lineage, sweeps.

The steps live in `pipelines_steps.py` and `pipelines_tables.py` (workers import them by file);
tests whose point is a change of code write their pipeline module into tmp_path instead.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.core.gc import collect
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, StepFailed
from loopml.pipelines import lineage, records
from loopml.pipelines.graph import Pipeline
from loopml.pipelines.loader import load_pipeline
from loopml.pipelines.results import PipelineResult
from loopml.pipelines.runner import resume_pipeline, run_pipeline
from loopml.pipelines.sweep import run_sweep
from loopml.tracking import artifacts, runs
from loopml.tracking.entities import RunRecord
from tests.contract import pipelines_steps as flows
from tests.contract import pipelines_tables as tables


def statuses(result: PipelineResult) -> dict[str, str]:
    return {node: step.status for node, step in result.steps.items()}


def children(ws: Workspace, run_id: str) -> dict[str, RunRecord]:
    """Return the runs nested under `run_id`, by name."""
    return {r.name: r for r in runs.list_runs(ws, view="all", limit=1000) if r.parent_id == run_id}


def artifact(ws: Workspace, run_id: str, path: str) -> str:
    return artifacts.read_bytes(ws, run_id, path).decode()


def failure(pipeline: Pipeline, params: dict[str, Any]) -> tuple[str, PipelineResult]:
    """Run a pipeline that must fail; return the error's message and the result it carries."""
    with pytest.raises(StepFailed) as caught:
        run_pipeline(pipeline, params, progress=False)
    result = caught.value.result
    assert isinstance(result, PipelineResult)
    return str(caught.value), result


# ---- graphs -------------------------------------------------------------------------------
def test_a_diamond_runs_in_dependency_order_and_passes_every_kind_of_output(
    ws: Workspace, tmp_path: Path
):
    log = tmp_path / "log.txt"

    result = run_pipeline(flows.diamond, {"n": 3, "log": str(log)}, progress=False)

    assert result.status == "FINISHED"
    assert statuses(result) == dict.fromkeys(("source", "left", "right", "join"), "COMPLETED")
    order = log.read_text().splitlines()
    assert order[0] == "source" and sorted(order[1:3]) == ["left", "right"]
    # Both outputs of each branch arrive, the optional None as None.
    assert order[3] == "join 6 n=3 103 None"
    assert (result.output("left", "doubled"), result.output("left", "label")) == (6, "n=3")
    assert (result.output("right", "output_0"), result.output("right", "output_1")) == (103, None)
    assert result.output("join") == {"total": 109.0, "missing_was_none": 1.0}
    with pytest.raises(InvalidInput, match="has outputs doubled, label; name one"):
        result.output("left")


def test_a_pipeline_run_nests_one_run_per_step_with_params_stdout_and_metrics(
    ws: Workspace, tmp_path: Path
):
    log = str(tmp_path / "log.txt")

    result = run_pipeline(flows.diamond, {"n": 3, "log": log}, progress=False)

    parent = runs.get(ws, result.run_id)
    assert parent.status == "FINISHED"
    assert parent.tags["loopml.run_type"] == "pipeline"
    assert parent.tags["loopml.pipeline"] == "diamond"
    assert parent.params == {"n": "3", "log": log}
    steps = children(ws, result.run_id)
    assert set(steps) == {"source", "left", "right", "join"}
    for name, run in steps.items():
        assert run.status == "FINISHED"
        assert run.tags["loopml.run_type"] == "step"
        assert run.tags["loopml.step"] == name
        assert run.tags["loopml.cache"] == "miss"
        assert result.steps[name].run_id == run.id
    assert steps["source"].params == {"n": "3", "log": log}
    assert artifact(ws, steps["source"].id, "stdout.txt") == "source made 3\n"
    assert artifact(ws, steps["source"].id, "stderr.txt") == "source warns\n"
    expected = {"total": 109.0, "missing_was_none": 1.0}
    assert steps["join"].metrics == expected
    assert parent.metrics == expected
    assert result.metrics == expected


def test_dict_outputs_of_scores_are_metrics_and_other_dicts_are_data(ws: Workspace):
    first = run_pipeline(flows.scored, {}, progress=False)
    again = run_pipeline(flows.scored, {}, progress=False)

    assert first.output("counts") == {"<=50K": 100, ">50K": 20}
    assert statuses(again) == {"counts": "CACHED", "evaluate": "CACHED"}
    for result in (first, again):
        assert set(result.metrics) == {"share_high", "auc"}
        assert result.metrics["share_high"] == 20 / 120
        assert math.isnan(result.metrics["auc"])
        assert set(runs.get(ws, result.run_id).metrics) == {"share_high", "auc"}
        assert runs.get(ws, result.steps["counts"].run_id or "").metrics == {}


def test_step_outputs_are_kept_by_garbage_collection(ws: Workspace, tmp_path: Path):
    params = {"log": str(tmp_path / "log.txt")}
    result = run_pipeline(flows.diamond, params, progress=False)
    outputs = {s.digest for step in result.steps.values() for s in step.outputs.values()}
    outputs.discard(None)

    collected = collect(ws)

    assert len(outputs) == 5
    assert not outputs & {digest for digest, _ in collected.unreferenced}
    assert collected.unreferenced == []
    collect(ws, force=True)
    again = run_pipeline(flows.diamond, params, progress=False)
    assert set(statuses(again).values()) == {"CACHED"}
    assert again.output("join") == result.output("join")


# ---- tracking of datasets, and lineage ----------------------------------------------------
def test_a_step_reading_a_dataset_links_it_traces_back_to_it_and_reruns_on_new_data(
    ws: Workspace, tmp_path: Path
):
    csv = ws.root / "sales.csv"
    csv.write_text("x,y\n1,2\n3,4\n")
    loopml.data.add(csv, name="sales")

    first = run_pipeline(tables.table, {"data": "sales", "scale": 2.0}, progress=False)

    assert first.metrics == {"rows": 2.0, "mean_y": 6.0}
    load_run = first.steps["load_rows"].run_id
    assert runs.get(ws, load_run or "").params == {"data": "sales@v1"}
    readers = {run_id for run_id, *_ in loopml.data.used_by("sales@v1")}
    assert readers == {first.run_id, load_run}
    summary = first.steps["summarise"].outputs["output"].digest
    origin = lineage.trace(ws, summary or "")
    assert origin.step is not None and origin.step.node == "summarise"
    rows = origin.inputs["rows"]
    assert rows.step is not None and rows.step.node == "load_rows"
    assert rows.inputs["data"].dataset == "sales@v1"
    assert origin.datasets() == {"sales@v1"}
    code = lineage.code_of(ws, origin.step)
    assert "def summarise(rows: pd.DataFrame, scale: float)" in code[tables.summarise.reference]

    cached = run_pipeline(tables.table, {"data": "sales", "scale": 2.0}, progress=False)
    assert statuses(cached) == {"load_rows": "CACHED", "summarise": "CACHED"}
    assert runs.get(ws, cached.run_id).metrics == {"rows": 2.0, "mean_y": 6.0}
    assert runs.get(ws, cached.steps["summarise"].run_id or "").metrics == first.metrics

    csv.write_text("x,y\n1,2\n3,4\n5,9\n")
    loopml.data.add(csv, name="sales")
    second = run_pipeline(tables.table, {"data": "sales", "scale": 2.0}, progress=False)

    assert statuses(second) == {"load_rows": "COMPLETED", "summarise": "COMPLETED"}
    assert second.metrics == {"rows": 3.0, "mean_y": 10.0}
    assert {run_id for run_id, *_ in loopml.data.used_by("sales@v2")} == {
        second.run_id,
        second.steps["load_rows"].run_id,
    }


# ---- caching ------------------------------------------------------------------------------
CHAIN = """
from loopml import pipeline, step

SCALE = {scale}


def unrelated():
    return {unrelated!r}


def helper(x):
    return x {op} 1


@step
def base(n: int) -> int:
    return n


@step
def scaled(x: int) -> int:
    return helper(x) * SCALE


@step
def final(y: int, offset: int) -> int:
    return y + offset


@step(cache=False)
def stamp(y: int) -> int:
    return -y


@pipeline
def chain(n: int = 3, offset: int = 0):
    y = scaled(base(n))
    final(y, offset)
    stamp(y)
"""


def chain_module(folder: Path, *, scale: int = 2, op: str = "+", unrelated: str = "a") -> Pipeline:
    """Write the chain pipeline's module with these pieces of code; return it (re)loaded."""
    path = folder / "chain.py"
    path.write_text(CHAIN.format(scale=scale, op=op, unrelated=unrelated))
    return load_pipeline(f"{path}:chain")


def test_a_rerun_is_cached_and_a_changed_param_reruns_only_its_step_and_what_follows(
    ws: Workspace, tmp_path: Path
):
    chain = chain_module(tmp_path)
    first = run_pipeline(chain, {"n": 3, "offset": 0}, progress=False)
    assert first.output("final") == 8

    again = run_pipeline(chain, {"n": 3, "offset": 0}, progress=False)

    assert statuses(again) == {
        "base": "CACHED",
        "scaled": "CACHED",
        "final": "CACHED",
        "stamp": "COMPLETED",  # @step(cache=False) always runs
    }
    for node in ("base", "scaled", "final"):
        assert again.steps[node].cached_from == first.steps[node].run_id
        tags = runs.get(ws, again.steps[node].run_id or "").tags
        assert tags["loopml.cache"] == "hit"
        assert tags["loopml.cached_from"] == first.steps[node].run_id
    assert again.output("final") == 8
    assert runs.get(ws, again.steps["stamp"].run_id or "").tags["loopml.cache"] == "off"
    code = lineage.code_of(ws, records.get_step(ws, again.steps["scaled"].run_id or ""))
    assert "return helper(x) * SCALE" in code[f"{chain.reference.partition(':')[0]}:scaled"]

    offset = run_pipeline(chain, {"n": 3, "offset": 5}, progress=False)

    assert statuses(offset) == {
        "base": "CACHED",
        "scaled": "CACHED",
        "final": "COMPLETED",
        "stamp": "COMPLETED",
    }
    assert offset.output("final") == 13

    uncached = run_pipeline(chain, {"n": 3, "offset": 5}, cache=False, progress=False)

    assert set(statuses(uncached).values()) == {"COMPLETED"}
    assert runs.get(ws, uncached.steps["base"].run_id or "").tags["loopml.cache"] == "off"


def test_the_cache_follows_the_code_a_step_calls_and_the_constants_it_reads(
    ws: Workspace, tmp_path: Path
):
    first = run_pipeline(chain_module(tmp_path), {"n": 3}, progress=False)
    assert first.output("final") == 8

    unrelated = run_pipeline(chain_module(tmp_path, unrelated="b"), {"n": 3}, progress=False)
    helper = run_pipeline(chain_module(tmp_path, op="-"), {"n": 3}, progress=False)
    constant = run_pipeline(chain_module(tmp_path, op="-", scale=5), {"n": 3}, progress=False)

    assert statuses(unrelated) == {
        "base": "CACHED",
        "scaled": "CACHED",
        "final": "CACHED",
        "stamp": "COMPLETED",
    }
    assert statuses(helper)["base"] == "CACHED"
    assert statuses(helper)["scaled"] == "COMPLETED"
    assert helper.output("final") == 4  # (3 - 1) * 2
    code = lineage.code_of(ws, records.get_step(ws, helper.steps["scaled"].run_id or ""))
    assert "return x - 1" in "".join(code.values())
    assert statuses(constant)["scaled"] == "COMPLETED"
    assert constant.output("final") == 10  # (3 - 1) * 5


def test_an_output_whose_blob_was_deleted_is_computed_again(ws: Workspace, tmp_path: Path):
    chain = chain_module(tmp_path)
    first = run_pipeline(chain, {"n": 3}, progress=False)
    digest = first.steps["scaled"].outputs["output"].digest
    assert digest is not None
    ws.blobs.delete(digest)

    again = run_pipeline(chain, {"n": 3}, progress=False)

    assert statuses(again)["base"] == "CACHED"
    assert statuses(again)["scaled"] == "COMPLETED"
    assert again.output("scaled") == 8
    assert ws.blobs.exists(digest)


# ---- materializers ------------------------------------------------------------------------
def test_each_kind_of_output_is_stored_by_its_materializer_and_reaches_the_next_step(
    ws: Workspace,
):
    result = run_pipeline(tables.kinds, {}, progress=False)

    stored = {node: step.outputs["output"].materializer for node, step in result.steps.items()}
    assert stored == {
        "frame": "parquet",
        "settings": "json",
        "doubled": "npy",
        "fit": "pickle",
        "temperature": "celsius",
        "inspect_all": "json",
    }
    assert result.output("inspect_all") == {
        "types": ["DataFrame", "ndarray", "dict", "LogisticRegression", "Celsius"],
        "twice": [0.0, 2.0, 4.0, 6.0],
        "predicted": [0, 0, 1, 1],
        "degrees": 21.5,
    }
    rows = result.output("frame")
    assert isinstance(rows, pd.DataFrame) and rows["y"].tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(result.output("doubled"), [0.0, 2.0, 4.0, 6.0])
    assert result.output("settings") == {"C": 10.0, "features": ["x"]}
    model = result.output("fit")
    assert isinstance(model, LogisticRegression) and model.predict(rows[["x"]]).tolist() == [
        0,
        0,
        1,
        1,
    ]
    assert ws.blobs.read_bytes(result.steps["temperature"].outputs["output"].digest or "") == (
        b"21.5C"
    )
    assert result.output("temperature").degrees == 21.5


# ---- failures -----------------------------------------------------------------------------
def test_a_failing_step_fails_the_run_keeps_its_traceback_and_skips_what_follows(
    ws: Workspace, tmp_path: Path
):
    flag = tmp_path / "broken"
    flag.touch()

    message, result = failure(flows.breaks, {"n": 7, "flag": flag})

    assert "step 'fragile' of pipeline 'breaks' failed: ValueError: bad row 7" in message
    assert f"loopml run --resume {result.run_id[:8]}" in message
    assert statuses(result) == {"prepare": "COMPLETED", "fragile": "FAILED", "after": "SKIPPED"}
    assert runs.get(ws, result.run_id).status == "FAILED"
    assert runs.get(ws, result.run_id).params["flag"] == str(flag)
    fragile = result.steps["fragile"].run_id or ""
    assert runs.get(ws, fragile).status == "FAILED"
    traceback = artifact(ws, fragile, "traceback.txt")
    assert "Traceback" in traceback and "ValueError: bad row 7" in traceback
    assert 'raise ValueError(f"bad row {x}")' in traceback
    stored = {step.node: step for step in records.steps_of(ws, result.run_id)}
    assert set(stored) == {"prepare", "fragile"}
    assert stored["fragile"].status == "FAILED"
    assert stored["fragile"].error == traceback


def test_resume_reruns_from_the_failed_step_reusing_the_steps_that_succeeded(
    ws: Workspace, tmp_path: Path
):
    flag = tmp_path / "broken"
    flag.touch()
    # Params of types their logged text does not tell apart come back as they were.
    params = {"n": 7, "flag": flag, "label": "none", "shape": (2, 3)}
    _, failed = failure(flows.breaks, params)
    flag.unlink()  # the fix

    resumed = resume_pipeline(failed.run_id[:8], progress=False)

    assert resumed.run_id == failed.run_id
    assert resumed.status == "FINISHED"
    assert statuses(resumed) == {"prepare": "CACHED", "fragile": "COMPLETED", "after": "COMPLETED"}
    assert resumed.steps["prepare"].cached_from == failed.steps["prepare"].run_id
    assert resumed.params == params
    assert resumed.output("after") == "80 'none' (2, 3)"
    assert runs.get(ws, failed.run_id).status == "FINISHED"
    with pytest.raises(InvalidState, match="finished; there is nothing to resume"):
        resume_pipeline(failed.run_id, progress=False)


def test_a_step_is_retried_on_the_errors_it_lists_and_only_those(ws: Workspace, tmp_path: Path):
    counter = tmp_path / "calls"

    result = run_pipeline(flows.retrying, {"counter": str(counter)}, progress=False)

    assert result.output("flaky") == 3
    assert result.steps["flaky"].attempts == 3
    flaky = result.steps["flaky"].run_id or ""
    assert "ConnectionError: try 1" in artifact(ws, flaky, "attempt-1/traceback.txt")
    assert "ConnectionError: try 2" in artifact(ws, flaky, "attempt-2/traceback.txt")

    other = tmp_path / "other-calls"
    message, failed = failure(flows.retrying, {"counter": str(other), "error": "unlisted"})

    assert "step 'flaky' of pipeline 'retrying' failed: KeyError: 'unlisted'" in message
    assert failed.steps["flaky"].attempts == 1
    assert other.read_text() == "1"


def test_a_step_past_its_timeout_is_stopped_and_the_run_goes_on(ws: Workspace, tmp_path: Path):
    counter = tmp_path / "calls"

    result = run_pipeline(flows.slow_once, {"counter": str(counter)}, progress=False)

    first_worker = int(Path(f"{counter}.pid1").read_text())
    second_worker = int(Path(f"{counter}.pid2").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(first_worker, 0)  # stopped, not left sleeping
    assert result.steps["sleepy"].attempts == 2
    assert result.output("after_sleep") == f"after {second_worker}"
    sleepy = result.steps["sleepy"].run_id or ""
    assert "StepTimeout: step 'sleepy' ran past its timeout of 3 s" in artifact(
        ws, sleepy, "attempt-1/traceback.txt"
    )

    message, failed = failure(flows.hangs, {})

    assert "step 'stuck' of pipeline 'hangs' failed: StepTimeout" in message
    assert statuses(failed) == {"stuck": "FAILED", "after_sleep": "SKIPPED"}


def test_ctrl_c_stops_the_run_and_its_worker_and_resume_finishes_it(ws: Workspace, tmp_path: Path):
    started, release = tmp_path / "started", tmp_path / "release"

    def press_ctrl_c_once_the_step_runs() -> None:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    pressing = threading.Thread(target=press_ctrl_c_once_the_step_runs)
    pressing.start()
    with pytest.raises(KeyboardInterrupt):
        params = {"started": str(started), "release": str(release)}
        run_pipeline(flows.interruptible, params, progress=False)
    pressing.join()

    with pytest.raises(ProcessLookupError):
        os.kill(int(started.read_text()), 0)
    (run,) = [r for r in runs.list_runs(ws, "interruptible") if r.parent_id is None]
    assert run.status == "KILLED"
    (waits,) = records.steps_of(ws, run.id)
    assert (waits.node, waits.status) == ("waits", "KILLED")
    assert runs.get(ws, waits.run_id).status == "KILLED"

    release.touch()
    resumed = resume_pipeline(run.id, progress=False)

    assert statuses(resumed) == {"waits": "COMPLETED", "after_sleep": "COMPLETED"}
    assert runs.get(ws, run.id).status == "FINISHED"


def test_a_worker_that_dies_fails_its_step_with_worker_lost(ws: Workspace):
    message, result = failure(flows.crashes, {})

    assert "step 'dies' of pipeline 'crashes' failed: WorkerLost" in message
    assert "exit code 3" in message
    assert statuses(result) == {"dies": "FAILED", "after_sleep": "SKIPPED"}


# ---- bad input ----------------------------------------------------------------------------
def test_bad_params_and_unmet_resources_are_refused_before_anything_runs(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a machine without GPUs

    with pytest.raises(InvalidInput, match="pipeline 'misbehaves' has no param 'size'"):
        run_pipeline(flows.misbehaves, {"size": 1}, progress=False)
    with pytest.raises(InvalidInput, match="param 'n' must be int, not str 'x'"):
        run_pipeline(flows.misbehaves, {"n": "x"}, progress=False)
    with pytest.raises(
        InvalidInput, match=r"step 'on_gpu' asks for 1 GPU\(s\) but this machine has 0"
    ):
        run_pipeline(flows.misbehaves, {"kind": "gpu"}, progress=False)

    assert runs.list_runs(ws, view="all") == []


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("lambda", "step 'unstorable', output 'output': a function cannot be stored"),
        ("generator", "step 'unstorable', output 'output': a generator cannot be stored"),
        ("count", "step 'pair' declares 2 outputs (a, b) but returned 3 values"),
    ],
)
def test_an_output_that_cannot_be_stored_fails_its_step_clearly(
    ws: Workspace, kind: str, error: str
):
    message, result = failure(flows.misbehaves, {"kind": kind})

    assert error in message
    assert list(statuses(result).values()) == ["FAILED"]
    assert next(iter(result.steps.values())).attempts == 1


# ---- sweeps -------------------------------------------------------------------------------
def test_a_grid_sweep_ranks_its_trials_and_runs_a_shared_step_once(ws: Workspace, tmp_path: Path):
    log = tmp_path / "log.txt"

    sweep = run_sweep(
        flows.search,
        {"a": [1, 2], "b": [10, 30]},
        metric="score",
        params={"log": str(log)},
        progress=False,
    )

    assert [(t.params, t.value) for t in sweep.trials] == [
        ({"a": 2, "b": 30}, 65.0),
        ({"a": 1, "b": 30}, 35.0),
        ({"a": 2, "b": 10}, 25.0),
        ({"a": 1, "b": 10}, 15.0),
    ]
    assert sweep.best is not None and sweep.best.params == {"a": 2, "b": 30}
    best_tags = {
        t.run_id: runs.get(ws, t.run_id).tags.get("loopml.sweep.best") for t in sweep.trials
    }
    assert best_tags == {t.run_id: ("true" if t is sweep.best else None) for t in sweep.trials}
    assert {runs.get(ws, t.run_id).parent_id for t in sweep.trials} == {sweep.run_id}
    assert log.read_text() == "shared\n"
    shared = sorted(records.steps_of(ws, t.run_id)[0].status for t in sweep.trials)
    assert shared == ["CACHED", "CACHED", "CACHED", "COMPLETED"]


def test_a_random_sweep_runs_the_number_of_distinct_trials_asked_for(ws: Workspace, tmp_path: Path):
    sweep = run_sweep(
        flows.search,
        {"a": [1, 2, 3], "b": [10, 20]},
        metric="score",
        params={"log": str(tmp_path / "log.txt")},
        random=2,
        progress=False,
    )

    combos = [(t.params["a"], t.params["b"]) for t in sweep.trials]
    assert len(combos) == len(set(combos)) == 2
    assert all(t.status == "FINISHED" and t.value is not None for t in sweep.trials)

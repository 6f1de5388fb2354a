"""Runs on every store: lifecycle, params, tags, metrics, nesting, threads, bad input."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, NotFound, ParamConflict
from loopml.tracking import runs
from loopml.tracking.writer import store_metrics


def test_the_issue_example_round_trips(ws: Workspace) -> None:
    with loopml.start_run(experiment="churn", run_name="rf-baseline") as run:
        loopml.log_params({"n_estimators": 100, "max_depth": 5})
        for step in range(100):
            loopml.log_metric("loss", 1 / (step + 1), step=step)
    stored = loopml.get_run(run.id)
    assert stored.name == "rf-baseline"
    assert stored.status == "FINISHED"
    assert stored.end_time is not None and stored.end_time >= stored.start_time
    assert stored.params == {"n_estimators": "100", "max_depth": "5"}
    assert stored.metrics == {"loss": 1 / 100}
    history = loopml.get_metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(100))
    assert [p.value for p in history] == [1 / (s + 1) for s in range(100)]


def test_exit_status_follows_how_the_block_ended(ws: Workspace) -> None:
    with pytest.raises(RuntimeError), loopml.start_run() as failed:
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), loopml.start_run() as killed:
        raise KeyboardInterrupt
    assert loopml.get_run(failed.id).status == "FAILED"
    assert loopml.get_run(killed.id).status == "KILLED"
    assert loopml.active_run() is None


def test_runs_record_their_context(ws: Workspace, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(
        "import sys, loopml\n"
        "loopml.set_workspace(sys.argv[1])\n"
        "with loopml.start_run() as run:\n"
        "    print(run.id)\n"
    )

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    commit = git("rev-parse", "HEAD")
    script.write_text(script.read_text() + "# edited\n")  # uncommitted change: dirty
    done = subprocess.run(
        [sys.executable, str(script), str(ws.root)], capture_output=True, text=True, check=True
    )
    tags = runs.get(ws, done.stdout.strip()).tags
    assert tags["loopml.git.commit"] == commit
    assert tags["loopml.git.dirty"] == "true"
    assert tags["loopml.source.name"] == str(script.resolve())
    assert tags["loopml.python"] == platform.python_version()
    assert "scikit-learn" in json.loads(tags["loopml.packages"])


def test_params_are_write_once_and_all_or_none(ws: Workspace) -> None:
    with loopml.start_run() as run:
        run.log_params({"lr": 0.1, "depth": 3})
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(ParamConflict, match=r"'lr'.*already '0.1'"):
            run.log_params({"batch": 32, "lr": 0.2})
    assert loopml.get_run(run.id).params == {"lr": "0.1", "depth": "3"}


def test_tags_overwrite(ws: Workspace) -> None:
    with loopml.start_run(tags={"team": "a"}) as run:
        run.set_tag("team", "b")
        run.set_tags({"stage": "dev"})
    tags = loopml.get_run(run.id).tags
    assert tags["team"] == "b" and tags["stage"] == "dev"


def test_latest_metric_is_the_highest_step_not_the_last_logged(ws: Workspace) -> None:
    with loopml.start_run() as run:
        run.log_metric("acc", 0.9, step=10)
        run.log_metric("acc", 0.5, step=3)  # a late point for an earlier step
        run.log_metrics({"nan": math.nan, "inf": math.inf, "neg": -math.inf}, step=1)
    stored = loopml.get_run(run.id)
    assert stored.metrics["acc"] == 0.9
    assert math.isnan(stored.metrics["nan"])
    assert stored.metrics["inf"] == math.inf and stored.metrics["neg"] == -math.inf
    assert [(p.step, p.value) for p in loopml.get_metric_history(run.id, "acc")] == [
        (3, 0.5),
        (10, 0.9),
    ]


def test_nested_runs_point_at_their_parent(ws: Workspace) -> None:
    with loopml.start_run(run_name="parent") as parent:
        with pytest.raises(InvalidState, match="nested=True"):
            loopml.start_run()
        with loopml.start_run(run_name="child", nested=True) as child:
            assert loopml.active_run() is child
        assert loopml.active_run() is parent
    assert loopml.get_run(child.id).parent_id == parent.id


def test_resume_continues_a_run(ws: Workspace) -> None:
    with loopml.start_run() as run:
        run.log_metric("loss", 1.0, step=0)
    with loopml.start_run(run_id=run.id) as again:
        again.log_metric("loss", 0.5, step=1)
    assert [p.value for p in loopml.get_metric_history(run.id, "loss")] == [1.0, 0.5]
    assert loopml.get_run(run.id).status == "FINISHED"


def test_threads_logging_into_one_run_lose_nothing(ws: Workspace) -> None:
    with loopml.start_run() as run:

        def work(worker: int) -> None:
            for step in range(500):
                run.log_metric(f"t{worker}", step, step=step)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for worker in range(8):
        points = loopml.get_metric_history(run.id, f"t{worker}")
        assert [p.value for p in points] == [float(s) for s in range(500)]


def test_replaying_a_batch_adds_nothing(ws: Workspace) -> None:
    with loopml.start_run() as run:
        pass
    rows = [(run.id, seq, "m", float(seq), seq, 1000 + seq) for seq in range(50)]
    for _ in range(3):
        with ws.store.write() as conn:
            store_metrics(conn, rows)
    assert len(loopml.get_metric_history(run.id, "m")) == 50
    assert loopml.get_run(run.id).metrics == {"m": 49.0}


def test_deleted_runs_are_hidden_refuse_writes_and_restore(ws: Workspace) -> None:
    with loopml.start_run("e") as keep:
        pass
    run = loopml.start_run("e")
    runs.delete(ws, run.id)
    with pytest.raises(InvalidState, match="deleted"):
        run.log_param("a", 1)
    run.end()
    assert [r.id for r in runs.list_runs(ws, "e")] == [keep.id]
    assert [r.id for r in loopml.search_runs("e")] == [keep.id]
    runs.restore(ws, run.id)
    assert {r.id for r in loopml.search_runs("e")} == {keep.id, run.id}


def test_ended_runs_refuse_logging(ws: Workspace) -> None:
    with loopml.start_run() as run:
        pass
    with pytest.raises(InvalidState, match="has ended"):
        run.log_metric("x", 1.0)
    with pytest.raises(InvalidState, match="no active run"):
        loopml.log_metric("x", 1.0)


@pytest.mark.parametrize(
    ("key", "value", "step"),
    [
        ("", 1.0, 0),
        ("bad\tkey", 1.0, 0),
        ("x" * 251, 1.0, 0),
        ("ok", "1.0", 0),
        ("ok", None, 0),
        ("ok", object(), 0),
        ("ok", 1.0, 1.5),
        ("ok", 1.0, 2**63),
    ],
)
def test_bad_metrics_are_refused_before_anything_is_stored(
    ws: Workspace, key: str, value: object, step: object
) -> None:
    with loopml.start_run() as run, pytest.raises(InvalidInput):
        run.log_metric(key, value, step=step)  # type: ignore[arg-type]
    assert loopml.get_run(run.id).metrics == {}


def test_unknown_and_malformed_run_ids(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="no run"):
        runs.get(ws, "0" * 32)
    with pytest.raises(InvalidInput, match="not a run id"):
        runs.get(ws, "../../etc")
    with pytest.raises(InvalidInput, match="mapping"), loopml.start_run() as run:
        run.log_params(["a", 1])  # type: ignore[arg-type]


def test_run_id_prefixes_resolve_when_unique(ws: Workspace) -> None:
    with loopml.start_run() as run:
        pass
    assert runs.resolve_id(ws, run.id[:8]) == run.id
    with pytest.raises(NotFound):
        runs.resolve_id(ws, "ffff" if not run.id.startswith("ffff") else "0000")


def test_python_api_creates_a_workspace_where_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    with loopml.start_run() as run:
        run.log_metric("m", 1.0)
    assert (tmp_path / ".loopml" / "loopml.db").exists()
    assert "creating one" in caplog.text
    assert loopml.get_run(run.id).metrics == {"m": 1.0}


def test_history_of_an_unknown_metric_names_the_known_ones(ws: Workspace) -> None:
    with loopml.start_run() as run:
        run.log_metric("loss", 1.0)
    with pytest.raises(NotFound, match="no metric 'acc'; its metrics are loss"):
        loopml.get_metric_history(run.id, "acc")


def test_resuming_hands_out_distinct_writer_numbers(ws: Workspace) -> None:
    with loopml.start_run() as run:
        pass
    numbers = [runs.resume(ws, run.id)[1] for _ in range(3)]
    assert numbers == [1, 2, 3]
    with pytest.raises(InvalidInput, match="leave out experiment and run_name"):
        loopml.start_run(run_id=run.id, run_name="renamed")


def test_two_threads_ending_one_run_both_see_it_ended(ws: Workspace) -> None:
    run = loopml.start_run()
    for step in range(2000):
        run.log_metric("m", step, step=step)
    seen: list[str] = []

    def finish() -> None:
        run.end()
        seen.append(runs.get(ws, run.id).status)

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["FINISHED", "FINISHED"]


def test_the_workspace_set_for_the_process_holds_in_new_threads(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ids: list[str] = []

    def work() -> None:
        with loopml.start_run() as run:
            ids.append(run.id)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert runs.get(ws, ids[0]).status == "FINISHED"
    assert not (elsewhere / ".loopml").exists()


def test_extreme_metric_values_read_back_exactly(ws: Workspace) -> None:
    values = {
        "max": sys.float_info.max,
        "big": 1.074903261319722e307,
        "tiny": 5e-324,
        "pi": math.pi,
        "third": 1 / 3,
        "inf": math.inf,
    }
    with loopml.start_run("extreme") as run:
        run.log_metrics(values)
    assert loopml.get_run(run.id).metrics == values
    assert loopml.search_runs("extreme")[0].metrics == values


def test_nul_in_values_is_refused(ws: Workspace) -> None:
    with loopml.start_run() as run:
        with pytest.raises(InvalidInput, match="NUL"):
            run.log_param("p", "a\x00b")
        with pytest.raises(InvalidInput, match="NUL"):
            run.set_tag("t", "a\x00b")


def test_writers_touching_keys_in_opposite_orders_never_deadlock(ws: Workspace) -> None:
    with loopml.start_run() as run:
        pass
    keys = [f"t{i:02d}" for i in range(50)]
    errors: list[BaseException] = []

    def work(order: list[str]) -> None:
        for round_ in range(60):
            try:
                runs.set_tags(ws, run.id, dict.fromkeys(order, round_))
                runs.log_params(ws, run.id, dict.fromkeys(order, "same"))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(o,)) for o in (keys, keys[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(runs.get(ws, run.id).tags) >= set(keys)

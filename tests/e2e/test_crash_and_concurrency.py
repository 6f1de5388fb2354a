"""Real processes: a run killed with SIGKILL loses nothing; eight writers share one store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.tracking import runs

LOGGER = textwrap.dedent(
    """
    import sys, loopml
    loopml.set_workspace(sys.argv[1])
    run = loopml.start_run(experiment="crash")
    print(run.id, flush=True)
    step = 0
    while True:
        run.log_metric("loss", 1.0 / (step + 1), step=step)
        if step % 2:
            run.log_metrics({"a": step, "b": -step}, step=step)
        print(step, flush=True)   # everything up to here has been journaled
        step += 1
    """
)


def test_a_run_killed_mid_logging_keeps_every_journaled_value(ws: Workspace) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LOGGER, str(ws.root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    stop_after = random.uniform(0.3, 1.5)
    deadline = time.monotonic() + stop_after
    last = -1
    while time.monotonic() < deadline:
        last = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    confirmed = last  # the child may have journaled a few more before it died
    assert confirmed > 10

    Workspace.close_all()  # a new "process": opening replays the journal
    reopened = Workspace.open(ws.root)
    stored = runs.get(reopened, run_id)
    assert stored.status == "KILLED"
    assert stored.end_time is not None
    loss = runs.metric_history(reopened, run_id, "loss")
    steps = [p.step for p in loss]
    assert steps == list(range(len(steps)))  # no gaps, no duplicates
    assert len(steps) >= confirmed + 1
    assert [p.value for p in loss] == [1.0 / (s + 1) for s in steps]
    a = runs.metric_history(reopened, run_id, "a")
    assert [p.step for p in a] == [s for s in range(len(steps)) if s % 2][: len(a)]
    assert len(a) >= (confirmed + 1) // 2
    assert list(reopened.journal_dir.iterdir()) == []

    Workspace.close_all()  # replaying again finds nothing and changes nothing
    again = Workspace.open(ws.root)
    assert len(runs.metric_history(again, run_id, "loss")) == len(steps)


WRITER = textwrap.dedent(
    """
    import sys, loopml
    loopml.set_workspace(sys.argv[1])
    with loopml.start_run(experiment="swarm", run_name=f"w{sys.argv[2]}") as run:
        for step in range(1000):
            run.log_metric("x", float(step), step=step)
    """
)


def test_eight_processes_log_8000_values_into_one_store(ws: Workspace) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ws.root), str(i)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, errors
    assert not any("locked" in e for e in errors), errors
    found = runs.list_runs(ws, "swarm")
    assert sorted(r.name for r in found) == [f"w{i}" for i in range(8)]
    total = 0
    for run in found:
        points = runs.metric_history(ws, run.id, "x")
        assert [p.value for p in points] == [float(s) for s in range(1000)]
        total += len(points)
        assert run.status == "FINISHED"
    assert total == 8000


def test_a_live_run_is_not_mistaken_for_a_killed_one(ws: Workspace, tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LOGGER, str(ws.root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        run_id = child.stdout.readline().strip()
        child.stdout.readline()
        Workspace.close_all()
        reopened = Workspace.open(ws.root)  # the journal is locked by the live child
        assert runs.get(reopened, run_id).status == "RUNNING"
        assert any(reopened.journal_dir.iterdir())
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


@pytest.mark.parametrize(
    ("ending", "status"),
    [("pass", "FINISHED"), ("raise SystemExit(0)", "FINISHED"), ("1 / 0", "FAILED")],
)
def test_a_run_left_open_is_ended_and_flushed_at_exit(
    sqlite_ws: Workspace, ending: str, status: str
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, loopml
        loopml.set_workspace(sys.argv[1])
        run = loopml.start_run()
        print(run.id, flush=True)
        for step in range(300):
            loopml.log_metric("loss", step, step=step)
        {ending}
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(sqlite_ws.root)],
        capture_output=True,
        text=True,
        check=False,
    )
    run_id = done.stdout.split()[0]
    stored = runs.get(sqlite_ws, run_id)
    assert stored.status == status
    assert len(runs.metric_history(sqlite_ws, run_id, "loss")) == 300
    assert list(sqlite_ws.journal_dir.iterdir()) == []


FORKER = textwrap.dedent(
    """
    import os, sys, loopml
    loopml.set_workspace(sys.argv[1])
    run = loopml.start_run(run_name="parent")
    for i in range(10):
        run.log_metric("loss", i, step=i)
    pid = os.fork()
    if pid == 0:
        try:
            loopml.log_metric("loss", 99.0, step=99)
        except loopml.errors.InvalidState as exc:
            print("refused:", exc, flush=True)
        with loopml.start_run(run_name="child", nested=True) as child:
            child.log_metric("child", 1.0)
        sys.exit(0)
    os.waitpid(pid, 0)
    for i in range(10, 20):
        run.log_metric("loss", i, step=i)
    run.end()
    print(run.id)
    """
)


def test_a_forked_child_leaves_the_parents_run_alone(sqlite_ws: Workspace) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKER, str(sqlite_ws.root)],
        capture_output=True,
        text=True,
        check=True,
    )
    refused, parent_id = done.stdout.strip().splitlines()
    assert "nested=True" in refused
    parent = runs.get(sqlite_ws, parent_id)
    assert parent.status == "FINISHED"
    assert [p.step for p in runs.metric_history(sqlite_ws, parent_id, "loss")] == list(range(20))
    [child] = [r for r in runs.list_runs(sqlite_ws) if r.name == "child"]
    assert child.parent_id == parent_id and child.metrics == {"child": 1.0}


def test_a_journal_that_cannot_be_replayed_does_not_block_the_workspace(
    sqlite_ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with loopml.start_run() as run:
        pass
    orphan = sqlite_ws.journal_dir / f"{'f' * 32}.0.journal"
    orphan.write_text("0\tloss\t1.0\t0\t1\n")
    torn = sqlite_ws.journal_dir / f"{run.id}.5.journal"
    torn.write_text("not a point\n" + f"{5 << 32}\tlate\t2.5\t3\t7\n" + "12\tcut")
    Workspace.close_all()
    reopened = Workspace.open(sqlite_ws.root)
    assert [p.value for p in runs.metric_history(reopened, run.id, "late")] == [2.5]
    # Kept for a later retry (renamed while claimed), and the replayed one is gone.
    assert orphan.with_suffix(".replaying").exists() and not torn.exists()
    assert "which this store does not have" in caplog.text


def test_journals_of_dead_writers_and_dead_replayers_are_all_replayed(
    sqlite_ws: Workspace,
) -> None:
    run = loopml.start_run()
    run_id = run.id
    run.disown()  # as if this process had died: its journal stays, unlocked, RUNNING in store
    folder = sqlite_ws.journal_dir
    (folder / f"{run_id}.0.journal").write_text("1\tloss\t0.5\t1\t10\n")
    (folder / f"{run_id}.1.journal").write_text(f"{1 << 32}\tloss\t0.25\t2\t20\n")
    (folder / f"{run_id}.2.replaying").write_text(f"{2 << 32}\tloss\t0.125\t3\t30\n")
    Workspace.close_all()
    reopened = Workspace.open(sqlite_ws.root)
    assert [p.value for p in runs.metric_history(reopened, run_id, "loss")] == [0.5, 0.25, 0.125]
    stored = runs.get(reopened, run_id)
    assert stored.status == "KILLED" and stored.end_time == 30
    assert list(folder.iterdir()) == []

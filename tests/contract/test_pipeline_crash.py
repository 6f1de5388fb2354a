"""A driver killed outright (SIGKILL) in the middle of a step: nothing stays RUNNING, and the
run resumes from the step it was in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopml.core.workspace import Workspace, use_workspace
from loopml.pipelines import records
from loopml.pipelines.loader import load_pipeline
from loopml.pipelines.runner import resume_pipeline
from loopml.tracking import runs
from tests.e2e.cli import environment

FLOW = """
    import os
    import time
    from pathlib import Path

    from loopml import pipeline, step


    @step
    def first(n: int) -> int:
        return n + 1


    @step
    def slow(x: int, marker: str) -> int:
        if not os.environ.get("CRASH_TEST_FAST"):
            Path(marker).write_text(str(os.getpid()))
            time.sleep(120)
        return x * 2


    @pipeline
    def crashy(marker: str, n: int = 1):
        slow(first(n), marker)
"""

DRIVER = """
    import sys
    from loopml.pipelines.loader import load_pipeline
    from loopml.pipelines.runner import run_pipeline

    run_pipeline(load_pipeline(sys.argv[1]), {"marker": sys.argv[2]}, progress=False)
"""


def wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_killed_driver_leaves_killed_runs_and_no_worker_and_the_run_resumes(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A file name of its own: a module of the same name loaded by an earlier test in this
    # process would make this one load under another name, and so other cache keys.
    flow = tmp_path / f"crashy_{tmp_path.name}.py"
    flow.write_text(textwrap.dedent(FLOW))
    marker = tmp_path / "slow-started"
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), f"{flow}:crashy", str(marker)],
        cwd=ws.root,
        env=environment(),
    )
    try:
        wait_for(marker)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()

    # The worker that was running `slow` does not outlive its driver.
    assert gone(int(marker.read_text()))
    # The next process to open the workspace finds every run of the dead driver ended.
    root = ws.root
    Workspace.close_all()
    reopened = use_workspace(root)
    listed = runs.list_runs(reopened, limit=100)
    (pipeline_run,) = [r for r in listed if r.tags.get("loopml.run_type") == "pipeline"]
    assert pipeline_run.status == "KILLED"
    steps = {s.node: s.status for s in records.steps_of(reopened, pipeline_run.id)}
    assert steps == {"first": "COMPLETED", "slow": "KILLED"}

    monkeypatch.setenv("CRASH_TEST_FAST", "1")
    result = resume_pipeline(pipeline_run.id, pipeline=load_pipeline(f"{flow}:crashy"))

    assert result.status == "FINISHED"
    assert {n: s.status for n, s in result.steps.items()} == {
        "first": "CACHED",
        "slow": "COMPLETED",
    }
    assert result.output("slow") == 4
    assert runs.get(reopened, pipeline_run.id).status == "FINISHED"

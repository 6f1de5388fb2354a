"""HTML run reports: one self-contained file with a chart per metric and the runs' numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.tracking.report import write_report


def test_report_plots_each_metric_for_each_run(sqlite_ws: Workspace, tmp_path: Path) -> None:
    ids = []
    for name, scale in (("slow", 1.0), ("fast", 0.5)):
        with loopml.start_run(run_name=name) as run:
            run.log_params({"lr": scale})
            for step in range(5):
                run.log_metrics({"loss": scale / (step + 1), "acc": 1 - scale / (step + 2)}, step)
        ids.append(run.id)
    page = write_report(sqlite_ws, ids, tmp_path / "r.html").read_text()
    assert "<td>slow (" in page and "<td>fast (" in page
    assert "params.lr" in page
    # Offline: Plotly's JavaScript is embedded; no script is loaded from anywhere.
    assert not re.search(r"<script[^>]+src=", page)
    assert "Plotly.newPlot" in page
    body = page[page.index("<body>") :]
    traces = re.findall(r'"name":"(slow|fast) \(', body)
    assert sorted(traces) == ["fast", "fast", "slow", "slow"]  # 2 metrics x 2 runs
    assert '"x":[0,1,2,3,4],"y":[0.5,0.25,0.16666666666666666,0.125,0.1]' in body


def test_report_refuses_unknown_metrics_and_empty_selections(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    with loopml.start_run() as run:
        run.log_metric("loss", 1.0)
    with pytest.raises(NotFound, match="'acc'"):
        write_report(sqlite_ws, [run.id], tmp_path / "r.html", metrics=["acc"])
    with pytest.raises(InvalidInput):
        write_report(sqlite_ws, [], tmp_path / "r.html")


def test_cli_writes_the_report(sqlite_ws: Workspace, tmp_path: Path) -> None:
    with loopml.start_run("exp") as run:
        run.log_metric("loss", 1.0, step=0)
        run.log_metric("loss", 0.5, step=1)
    loopml_cli = Path(sys.executable).parent / "loopml"
    out = tmp_path / "out" / "report.html"
    done = subprocess.run(
        [str(loopml_cli), "runs", "report", "-e", "exp", "--html", str(out)],
        cwd=sqlite_ws.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 runs" in done.stdout
    assert run.name in out.read_text()


def test_one_value_per_run_is_drawn_as_bars(sqlite_ws: Workspace, tmp_path: Path) -> None:
    ids = []
    for name, f1 in (("a", 0.8), ("b", 0.9)):
        with loopml.start_run(run_name=name) as run:
            run.log_metric("f1", f1)
        ids.append(run.id)
    page = write_report(sqlite_ws, ids, tmp_path / "r.html").read_text()
    body = page[page.index("<body>") :]
    assert '"type":"bar"' in body and '"y":[0.8,0.9]' in body

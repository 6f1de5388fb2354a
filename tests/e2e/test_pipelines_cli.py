"""`loopml run`, `loopml sweep` and `loopml pipelines` run as a user runs them, in a workspace."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import environment, loopml, loopml_json, one_error_line, together

# Four steps: `double` alone calls the helper `scale`, and `total` reads what `double` made;
# `count` reads `make` too, so a change to `scale` must leave `make` and `count` cached.
FLOW = """
from loopml import pipeline, step


def scale(x: int) -> int:
    return x * 2


@step
def make(n: int) -> list[int]:
    return list(range(n))


@step
def double(xs: list[int]) -> list[int]:
    return [scale(x) for x in xs]


@step
def count(xs: list[int]) -> dict[str, float]:
    return {"count": float(len(xs))}


@step
def total(xs: list[int]) -> dict[str, float]:
    return {"total": float(sum(xs))}


@pipeline
def flow(n: int = 4, label: str = "demo"):
    xs = make(n)
    count(xs)
    total(double(xs))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace folder, made by `loopml init`, holding the pipeline file flow.py."""
    loopml("init", cwd=tmp_path)
    write(tmp_path / "flow.py", FLOW)
    return tmp_path


def write(path: Path, text: str) -> None:
    """Write a source file (dedented)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def statuses(result: dict[str, Any]) -> dict[str, str]:
    """Return step -> status from the JSON of `loopml run --json`."""
    return {s["node"]: s["status"] for s in result["steps"]}


def table_row(stdout: str, first_cell: str) -> str:
    """Return the table row (one line) whose first cell is `first_cell`."""
    rows = [line for line in stdout.splitlines() if re.match(rf"│ {first_cell}\s+│", line)]
    assert len(rows) == 1, stdout
    return rows[0]


def test_a_second_run_is_cached_and_an_edited_helper_reruns_its_step_and_downstream(
    project: Path,
) -> None:
    first = loopml("run", "flow.py:flow", "-p", "n=5", cwd=project).stdout
    for node in ("make", "count", "double", "total"):
        assert "completed ✓" in table_row(first, node)
    assert "total=20" in first and "count=5" in first  # metrics of the steps' dicts

    second = loopml("run", "flow.py:flow", "-p", "n=5", cwd=project).stdout
    for node in ("make", "count", "double", "total"):
        assert "cached ↺" in table_row(second, node)
    assert "total=20" in second  # a cached step's metrics still reach the pipeline run

    # A different length too: Python's bytecode cache trusts a same-size file of the same second.
    (project / "flow.py").write_text(FLOW.replace("x * 2", "x * 2 + 1"), encoding="utf-8")
    edited = loopml_json("run", "flow.py:flow", "-p", "n=5", cwd=project)
    assert statuses(edited) == {
        "make": "CACHED",
        "count": "CACHED",
        "double": "COMPLETED",
        "total": "COMPLETED",
    }
    assert edited["metrics"] == {"count": 5.0, "total": 25.0}

    fresh = loopml_json("run", "flow.py:flow", "-p", "n=5", "--no-cache", cwd=project)
    assert set(statuses(fresh).values()) == {"COMPLETED"}

    listed = loopml_json("pipelines", "runs", cwd=project)
    assert [r["id"] for r in listed[:2]] == [fresh["run_id"], edited["run_id"]]
    assert [(r["pipeline"], r["status"], r["cached"], r["steps"]) for r in listed] == [
        ("flow", "FINISHED", 0, 4),
        ("flow", "FINISHED", 2, 4),
        ("flow", "FINISHED", 4, 4),
        ("flow", "FINISHED", 0, 4),
    ]
    assert listed[1]["params"] == {"n": "5", "label": "demo"}


def test_bad_params_and_broken_pipeline_files_get_one_line_naming_them(project: Path) -> None:
    write(project / "broken_syntax.py", "from loopml import pipeline\n\ndef flow(:\n    pass\n")
    write(project / "broken_import.py", "import no_such_module_here\n")

    def fails(*args: str) -> Any:
        return lambda: one_error_line(loopml(*args, cwd=project, expect=1))

    wrong_type, unknown, missing, syntax, failed_import, not_a_pipeline = together(
        fails("run", "flow.py:flow", "-p", "n=many"),
        fails("run", "flow.py:flow", "-p", "depth=3"),
        fails("run", "nowhere.py:flow"),
        fails("run", "broken_syntax.py:flow"),
        fails("run", "broken_import.py:flow"),
        fails("run", "flow.py:make"),
    )
    assert "'n'" in wrong_type and "int" in wrong_type and "'many'" in wrong_type
    assert "'depth'" in unknown and "n, label" in unknown
    assert "nowhere.py" in missing
    assert "broken_syntax.py" in syntax and "SyntaxError" in syntax and "line 3" in syntax
    assert "broken_import.py" in failed_import and "no_such_module_here" in failed_import
    assert "flow.py:make" in not_a_pipeline and "@pipeline" in not_a_pipeline
    assert loopml_json("pipelines", "runs", cwd=project) == []  # none of them started a run


def test_a_failed_step_shows_its_traceback_and_resume_reruns_from_it(project: Path) -> None:
    broken = FLOW.replace(
        'return {"total": float(sum(xs))}', 'raise ValueError(f"cannot total {len(xs)} values")'
    )
    (project / "flow.py").write_text(broken, encoding="utf-8")

    done = loopml("run", "flow.py:flow", cwd=project, expect=1)
    assert "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: step 'total'") and "cannot total 4 values" in error
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [error]
    assert "failed ✗" in table_row(done.stdout, "total")
    run_prefix = re.search(r"loopml run --resume (\w+)", error).group(1)  # type: ignore[union-attr]

    shown = loopml("pipelines", "show", run_prefix, cwd=project).stdout
    assert "Traceback (most recent call last)" in shown
    assert 'raise ValueError(f"cannot total {len(xs)} values")' in shown
    assert "ValueError: cannot total 4 values" in shown
    assert "failed ✗" in table_row(shown, "total")

    fixed = FLOW.replace('return {"total": float(sum(xs))}', 'return {"total": -1.0}')
    (project / "flow.py").write_text(fixed, encoding="utf-8")
    resumed = loopml_json("run", "--resume", run_prefix, cwd=project)
    assert resumed["run_id"].startswith(run_prefix)
    assert statuses(resumed) == {
        "make": "CACHED",
        "count": "CACHED",
        "double": "CACHED",
        "total": "COMPLETED",
    }
    assert resumed["status"] == "FINISHED" and resumed["metrics"]["total"] == -1.0


SWEEP = """
from loopml import pipeline, step


@step
def base(offset: float) -> float:
    return offset


@step
def score(start: float, a: int, b: float) -> dict[str, float]:
    return {"score": start + a * b}


@pipeline
def tune(a: int = 1, b: float = 1.0, offset: float = 0.0):
    score(base(offset), a, b)
"""


def test_a_sweep_over_a_two_by_two_grid_ranks_four_trials(project: Path) -> None:
    write(project / "pipelines" / "tuning.py", SWEEP)
    swept = loopml_json(
        "sweep",
        "pipelines.tuning:tune",  # MODULE:FUNCTION, found from the project folder
        "-p",
        "a=1,2",
        "-p",
        "b=0.5,3",
        "-p",
        "offset=10",
        "--metric",
        "score",
        cwd=project,
    )
    trials = swept["trials"]
    assert [(t["params"], t["value"]) for t in trials] == [
        ({"a": 2, "b": 3.0}, 16.0),
        ({"a": 1, "b": 3.0}, 13.0),
        ({"a": 2, "b": 0.5}, 11.0),
        ({"a": 1, "b": 0.5}, 10.5),
    ]
    assert swept["best"] == trials[0]["run_id"] and trials[0]["best"]
    assert not any(t["best"] for t in trials[1:])

    lowest = loopml(
        "sweep",
        "pipelines/tuning.py:tune",
        "-p",
        "a=1,2",
        "-p",
        "b=0.5,3",
        "-p",
        "offset=10",
        "--metric",
        "score",
        "--mode",
        "min",
        "--html",
        "sweep.html",
        cwd=project,
    ).stdout
    page = (project / "sweep.html").read_text()
    assert "tune sweep" in page and "plotly" in page.lower()
    assert all(f"trial-{n}" in page for n in range(1, 5))  # one row per trial
    rows = [
        line for line in lowest.splitlines() if re.match(r"│ (★ best|\s+) +│ [0-9a-f]{8}", line)
    ]
    assert len(rows) == 4, lowest
    assert "★ best" in rows[0] and "10.5" in rows[0]
    assert "★ best" not in "".join(rows[1:]) and "16" in rows[3]


def test_lineage_of_a_final_output_walks_back_to_the_dataset_version(project: Path) -> None:
    (project / "spend.csv").write_text("customer,spend\n1,10.5\n2,3.5\n3,6\n", encoding="utf-8")
    loopml("data", "add", "spend.csv", "--name", "spend", cwd=project)
    write(
        project / "report.py",
        """
        from loopml import Dataset, pipeline, step


        @step
        def load(data: Dataset) -> list[float]:
            return [float(v) for v in data.to_pandas()["spend"]]


        @step
        def clean(values: list[float]) -> list[float]:
            return [v for v in values if v > 5]


        @step
        def summary(values: list[float]) -> dict[str, float]:
            return {"mean_spend": sum(values) / len(values)}


        @pipeline
        def report(data: str = "spend@latest"):
            summary(clean(load(data)))
        """,
    )
    ran = loopml_json("run", "report.py:report", cwd=project)
    assert ran["metrics"] == {"mean_spend": 8.25}
    final = next(s for s in ran["steps"] if s["node"] == "summary")

    tree = loopml_json("pipelines", "lineage", final["outputs"]["output"]["digest"], cwd=project)
    assert tree["datasets"] == ["spend@v1"]
    chain = [tree, tree["inputs"]["values"], tree["inputs"]["values"]["inputs"]["values"]]
    assert [(o["step"], o["function"]) for o in chain] == [
        ("summary", "report:summary"),
        ("clean", "report:clean"),
        ("load", "report:load"),
    ]
    assert all(o["code_digest"].startswith("blake3:") for o in chain)
    assert chain[2]["inputs"]["data"]["dataset"] == "spend@v1"

    shown = loopml("pipelines", "lineage", final["run_id"][:8], cwd=project).stdout
    lines = shown.splitlines()
    assert [i for i, line in enumerate(lines) if "step " in line or "dataset " in line] == [
        0,
        1,
        2,
        3,
    ], shown
    for line, step in zip(lines, ("summary", "clean", "load"), strict=False):
        assert f"step {step}  report:{step}" in line and "code blake3:" in line
    assert "dataset spend@v1" in lines[3]


@pytest.mark.postgres
def test_runs_and_their_cached_steps_are_listed_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    from loopml.testing.stores import truncate_all

    truncate_all(postgres_url)
    env = environment(LOOPML_STORE_URI=postgres_url)
    assert "postgresql" in loopml("init", cwd=tmp_path, env=env).stdout
    write(tmp_path / "flow.py", FLOW)
    first = loopml_json("run", "flow.py:flow", cwd=tmp_path, env=env)
    second = loopml_json("run", "flow.py:flow", cwd=tmp_path, env=env)
    assert set(statuses(second).values()) == {"CACHED"}

    listed = loopml_json("pipelines", "runs", "--pipeline", "flow", cwd=tmp_path, env=env)
    assert [(r["id"], r["cached"], r["steps"]) for r in listed] == [
        (second["run_id"], 4, 4),
        (first["run_id"], 0, 4),
    ]

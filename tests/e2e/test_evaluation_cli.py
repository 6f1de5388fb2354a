"""`loopml models evaluate | compare | promote | evaluations` and `loopml check`, for real."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import loopml, loopml_json, one_error_line, python, together

SETUP = """
    import numpy as np
    import pandas as pd
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    import loopml

    rng = np.random.default_rng(1)
    for version in (1, 2):
        frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
        frame["region"] = rng.choice(["north", "south"], size=200)
        frame["gender"] = rng.choice(["f", "m"], size=200)
        frame["churned"] = (frame["a"] + rng.normal(0, 0.3, 200) > 0).astype(int)
        frame.to_csv("churn.csv", index=False)
        loopml.data.add("churn.csv", "churn")
    train = frame[["a", "b"]]
    with loopml.start_run():
        for model in (LogisticRegression(), DummyClassifier(strategy="most_frequent")):
            loopml.log_model(model.fit(train, frame["churned"]), name="churn",
                             input_example=train.head(3))
"""

GATE = """\
target: churned
checks:
  - threshold: {metric: f1, min: 0.5}
  - beats_champion: {metric: accuracy, min_delta: 0.0}
  - fairness: {metric: demographic_parity_difference, max: 0.5, sensitive: gender}
"""


def test_evaluate_check_and_promote_through_the_cli(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(SETUP, cwd=tmp_path)
    (tmp_path / "gate.yaml").write_text(GATE)

    scored = loopml_json(
        "models",
        "evaluate",
        "churn/1",
        "--data",
        "churn@v2",
        "--target",
        "churned",
        "--sensitive",
        "gender",
        "--slice",
        "region",
        "--html",
        "eval.html",
        cwd=tmp_path,
    )
    assert scored["model"] == "models:/churn/1" and scored["dataset"] == "churn@v2"
    assert scored["metrics"]["accuracy"] > 0.8
    assert "gender" in scored["details"]["fairness"]
    page = (tmp_path / "eval.html").read_text()
    assert "<html" in page.lower() and "churn@v2" in page

    passed = loopml_json(
        "check",
        "--model",
        "churn/1",
        "--data",
        "churn@v2",
        "--against",
        "churn@v1",
        "--gate",
        "gate.yaml",
        cwd=tmp_path,
    )
    assert passed["passed"] is True
    assert set(passed["validation"]) == {"churn.csv"}
    assert [c["check"] for c in passed["gate"]["checks"]] == [
        "threshold",
        "beats_champion",
        "fairness",
    ]

    promoted = loopml(
        "models",
        "promote",
        "churn",
        "1",
        "--gate",
        "gate.yaml",
        "--data",
        "churn@v2",
        cwd=tmp_path,
    )
    assert "churn@champion: nothing -> v1" in promoted.stdout

    failed_check, refused = together(
        lambda: loopml(
            "check",
            "--model",
            "models:/churn/2",
            "--data",
            "churn@v2",
            "--gate",
            "gate.yaml",
            "--html",
            "check.html",
            cwd=tmp_path,
            expect=1,
        ),
        lambda: loopml(
            "models",
            "promote",
            "churn",
            "2",
            "--gate",
            "gate.yaml",
            "--data",
            "churn@v2",
            cwd=tmp_path,
            expect=1,
        ),
    )
    assert "FAIL" in failed_check.stdout and failed_check.stdout.strip().endswith("FAILED")
    assert "FAILED" in (tmp_path / "check.html").read_text()
    assert "was not moved" in one_error_line(refused)
    assert "beats_champion" in refused.stdout  # the table of checks, before the error

    loopml(
        "models",
        "promote",
        "churn",
        "2",
        "--gate",
        "gate.yaml",
        "--data",
        "churn@v2",
        "--force",
        "--reason",
        "drill",
        cwd=tmp_path,
    )
    history = loopml("models", "alias", "churn", "champion", "--history", cwd=tmp_path).stdout
    assert "passed" in history and "failed (forced)" in history and "drill" in history

    compared, listed = together(
        lambda: loopml_json(
            "models", "compare", "churn/1", "churn/2", "--data", "churn@v2", cwd=tmp_path
        ),
        lambda: loopml_json("models", "evaluations", "churn", cwd=tmp_path),
    )
    assert [e["model"] for e in compared] == ["models:/churn/1", "models:/churn/2"]
    assert compared[0]["metrics"]["accuracy"] > compared[1]["metrics"]["accuracy"]
    assert {e["model_version"] for e in listed} == {1, 2}


def test_evaluation_cli_errors_are_one_line(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(SETUP, cwd=tmp_path)
    (tmp_path / "bad.yaml").write_text("checks:\n  - threshold: {metric: f1}\n")
    no_target, no_gate, bad_gate, no_model = together(
        lambda: loopml(
            "models",
            "evaluate",
            "churn/1",
            "--data",
            "churn@v2",
            "--target",
            "label",
            cwd=tmp_path,
            expect=1,
        ),
        lambda: loopml(
            "check",
            "--model",
            "churn/1",
            "--data",
            "churn@v2",
            "--gate",
            "gate.yaml",
            cwd=tmp_path,
            expect=1,
        ),
        lambda: loopml(
            "check",
            "--model",
            "churn/1",
            "--data",
            "churn@v2",
            "--gate",
            "bad.yaml",
            cwd=tmp_path,
            expect=1,
        ),
        lambda: loopml(
            "models", "promote", "nope", "1", "--force", "--reason", "x", cwd=tmp_path, expect=1
        ),
    )
    assert "no target column 'label'" in one_error_line(no_target)
    assert "gate file gate.yaml does not exist" in one_error_line(no_gate)
    assert "needs min=, max= or both" in one_error_line(bad_gate)
    assert "nope" in one_error_line(no_model)

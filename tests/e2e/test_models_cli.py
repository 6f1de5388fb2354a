"""`loopml models`: list, versions, show and alias, driven through the real CLI."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import loopml, loopml_json, one_error_line, python, together

LOG = """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml

    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    target = (frame["a"] > 9).astype(int)
    with loopml.start_run(experiment="churn"):
        for c in (1.0, 0.1):
            loopml.log_model(LogisticRegression(C=c).fit(frame, target), name="churn",
                             input_example=frame.head(3))
"""


def test_models_list_versions_show_and_alias_with_its_history(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(LOG, cwd=tmp_path)

    listed, versions = together(
        lambda: loopml_json("models", "list", cwd=tmp_path),
        lambda: loopml_json("models", "versions", "churn", cwd=tmp_path),
    )
    assert [(m["name"], m["versions"], m["latest_version"]) for m in listed] == [("churn", 2, 2)]
    assert [v["version"] for v in versions] == [2, 1]
    assert all(v["flavor"] == "sklearn" for v in versions)

    moved = loopml("models", "alias", "churn", "champion", "1", "--reason", "first", cwd=tmp_path)
    assert "churn@champion: nothing -> v1" in moved.stdout
    loopml("models", "alias", "churn", "champion", "2", "--reason", "better", cwd=tmp_path)
    history = loopml_json("models", "alias", "churn", "champion", "--history", cwd=tmp_path)
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        (None, 1, "first"),
        (1, 2, "better"),
    ]

    shown = loopml_json("models", "show", "models:/churn@champion", cwd=tmp_path)
    assert shown["uri"] == "models:/churn/2" and shown["flavor"] == "sklearn"
    assert [c["name"] for c in shown["signature"]["inputs"]] == ["a", "b"]
    table, short = together(
        lambda: loopml("models", "show", "churn", cwd=tmp_path).stdout,
        lambda: loopml_json("models", "show", "churn@champion", cwd=tmp_path),
    )
    assert "models:/churn/2" in table and "flavor sklearn" in table
    assert short["uri"] == "models:/churn/2"

    unknown, missing_version, bad_uri = together(
        lambda: loopml("models", "show", "models:/nope/1", cwd=tmp_path, expect=1),
        lambda: loopml("models", "alias", "churn", "prod", "9", cwd=tmp_path, expect=1),
        lambda: loopml("models", "show", "models:/churn/v1", cwd=tmp_path, expect=1),
    )
    assert "no registered model 'nope'; models are churn" in one_error_line(unknown)
    assert "has no version 9; versions are 1..2" in one_error_line(missing_version)
    assert "is not a model URI" in one_error_line(bad_uri)


def test_a_version_that_is_not_a_number_is_one_error_line(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(LOG, cwd=tmp_path)

    done = loopml("models", "alias", "churn", "gold", "x", cwd=tmp_path, expect=1)

    assert "a model version is a whole number like 3, not 'x'" in one_error_line(done)

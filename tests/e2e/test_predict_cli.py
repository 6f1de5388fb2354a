"""`loopml predict`: a registered model over a file, driven through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.e2e.cli import environment, loopml, loopml_json, one_error_line, python

SETUP = """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(30_000) + 100, "x": rng.normal(size=30_000),
                          "y": rng.normal(size=30_000)})
    model = LogisticRegression().fit(frame[["x", "y"]], frame["x"] > frame["y"])
    loopml.log_model(model, name="churn", input_example=frame[["x", "y"]].head(5))
    loopml.set_alias("churn", "champion", 1)
    frame.to_parquet("rows.parquet", index=False, row_group_size=7_000)
    frame.to_csv("rows.csv", index=False)
    np.save("expected.npy", model.predict(frame[["x", "y"]]))
"""


def test_predict_writes_every_row_in_order_and_refuses_to_clobber(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(SETUP, cwd=tmp_path)
    expected = np.load(tmp_path / "expected.npy")

    done = loopml(
        "predict", "churn@champion", "--input", "rows.parquet", "--output", "preds.csv",
        "--chunk-rows", "4000", "--columns", "id", cwd=tmp_path,
    )  # fmt: skip
    assert "Predicted 30000 rows in 8 chunk(s)" in done.stdout
    written = pd.read_csv(tmp_path / "preds.csv")
    assert list(written.columns) == ["id", "prediction"]
    np.testing.assert_array_equal(written["id"], np.arange(30_000) + 100)
    np.testing.assert_array_equal(written["prediction"], expected)

    again = loopml(
        "predict", "churn@champion", "-i", "rows.csv", "-o", "preds.csv", cwd=tmp_path, expect=1
    )
    assert "preds.csv exists already; pass --overwrite" in one_error_line(again)
    report = loopml_json(
        "predict", "models:/churn/1", "-i", "rows.csv", "-o", "preds.csv", "--overwrite",
        cwd=tmp_path,
    )  # fmt: skip
    assert (report["rows"], report["chunks"]) == (30_000, 1)
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "preds.csv")["prediction"], expected)


def test_predict_refuses_a_bad_chunk_with_its_rows_and_leaves_no_file(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(SETUP, cwd=tmp_path)
    rows = pd.read_csv(tmp_path / "rows.csv").astype({"y": object})
    rows.loc[12_345, "y"] = "twelve"
    rows.to_csv(tmp_path / "bad.csv", index=False)

    done = loopml(
        "predict", "churn", "-i", "bad.csv", "-o", "preds.parquet", "--chunk-rows", "10000",
        cwd=tmp_path, expect=1,
    )  # fmt: skip
    line = one_error_line(done)
    assert "rows 10000..19999 of bad.csv" in line and "'y'" in line
    missing = loopml("predict", "churn", "-i", "nope.csv", "-o", "p.csv", cwd=tmp_path, expect=1)
    assert "nope.csv does not exist" in one_error_line(missing)
    assert (
        sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".preds", "preds"))) == []
    )


def test_predict_with_the_ray_executor_matches(tmp_path: Path) -> None:
    loopml("init", cwd=tmp_path)
    python(SETUP, cwd=tmp_path)
    env = environment(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")

    loopml(
        "predict", "churn@champion", "-i", "rows.parquet", "-o", "preds.parquet",
        "--chunk-rows", "5000", "--executor", "ray", "--columns", "id", cwd=tmp_path, env=env,
    )  # fmt: skip

    written = pd.read_parquet(tmp_path / "preds.parquet")
    np.testing.assert_array_equal(written["id"], np.arange(30_000) + 100)
    np.testing.assert_array_equal(written["prediction"], np.load(tmp_path / "expected.npy"))

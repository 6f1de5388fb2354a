"""Batch prediction of files: chunked, in order, atomic, with Ray or in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.serving.batch import predict_file

ROWS = 120_000
CHUNK = 25_000
FEATURES = ["a", "b", "c"]


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows) * 7 + 3,  # distinct per row: a reordered row would show
            "a": rng.normal(size=rows),
            "b": rng.integers(0, 5, size=rows),
            "c": rng.normal(size=rows),
        }
    )


@pytest.fixture
def model(sqlite_ws: Workspace) -> tuple[str, Any]:
    """A registered classifier on a/b/c (not id) and its native model."""
    train = _frame(2_000, seed=1)
    fitted = LogisticRegression().fit(train[FEATURES], train["a"] + train["c"] > 0)
    logged = loopml.log_model(fitted, name="churn", input_example=train[FEATURES].head(5))
    return logged.uri, fitted


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return _frame(ROWS)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:  # several row groups, none aligned with the chunks
        frame.to_parquet(path, index=False, row_group_size=30_000)
    return path


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("source", "target"), [("parquet", "parquet"), ("csv", "csv"), ("csv", "parquet")]
)
def test_chunked_prediction_equals_predicting_the_whole_file(
    model: tuple[str, Any], big: pd.DataFrame, tmp_path: Path, source: str, target: str
) -> None:
    uri, fitted = model
    data = _write(big, tmp_path / f"in.{source}")
    out = tmp_path / f"preds.{target}"

    report = predict_file(uri, data, out, chunk_rows=CHUNK, keep_columns=["id"], progress=False)

    assert (report.rows, report.chunks, report.output) == (ROWS, 5, out)
    written = _read(out)
    assert list(written.columns) == ["id", "prediction"]
    np.testing.assert_array_equal(written["id"], big["id"])
    np.testing.assert_array_equal(written["prediction"], fitted.predict(big[FEATURES]))
    assert _leftovers(tmp_path) == []


def test_ray_executor_writes_the_same_file_in_order(
    model: tuple[str, Any], big: pd.DataFrame, tmp_path: Path, ray_cluster: None
) -> None:
    uri, fitted = model
    data = _write(big, tmp_path / "in.parquet")

    report = predict_file(
        uri,
        data,
        tmp_path / "ray.parquet",
        chunk_rows=CHUNK,
        executor="ray",
        keep_columns=["id"],
        progress=False,
    )
    predict_file(uri, data, tmp_path / "local.parquet", chunk_rows=CHUNK, keep_columns=["id"])

    assert (report.rows, report.chunks) == (ROWS, 5)
    ray_out = pd.read_parquet(tmp_path / "ray.parquet")
    pd.testing.assert_frame_equal(ray_out, pd.read_parquet(tmp_path / "local.parquet"))
    np.testing.assert_array_equal(ray_out["prediction"], fitted.predict(big[FEATURES]))


def test_ray_executor_names_the_refused_chunk_and_leaves_no_output(
    model: tuple[str, Any], tmp_path: Path, ray_cluster: None
) -> None:
    uri, _ = model
    frame = _frame(100).astype({"b": object})
    frame.loc[60, "b"] = "lots"
    data = _write(frame, tmp_path / "in.csv")
    out = tmp_path / "preds.parquet"

    with pytest.raises(InvalidInput, match=r"rows 50\.\.99 of .*in\.csv.*'b'"):
        predict_file(uri, data, out, chunk_rows=50, executor="ray", progress=False)

    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_chunk_failing_the_signature_names_its_rows_and_column(
    model: tuple[str, Any], tmp_path: Path
) -> None:
    uri, _ = model
    frame = _frame(1_000).astype({"a": object})
    frame.loc[730, "a"] = "unknown"
    data = _write(frame, tmp_path / "in.csv")
    out = tmp_path / "preds.csv"

    with pytest.raises(InvalidInput, match=r"rows 500\.\.749 of .*in\.csv.*'a'"):
        predict_file(uri, data, out, chunk_rows=250, progress=False)

    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_column_the_model_needs_missing_from_the_input_is_named(
    model: tuple[str, Any], tmp_path: Path
) -> None:
    uri, _ = model
    data = _write(_frame(10).drop(columns="c"), tmp_path / "in.parquet")

    with pytest.raises(InvalidInput, match=r"rows 0\.\.9 .*'c' missing"):
        predict_file(uri, data, tmp_path / "preds.parquet", progress=False)
    assert not (tmp_path / "preds.parquet").exists()


def test_an_existing_output_is_refused_unless_overwrite(
    model: tuple[str, Any], tmp_path: Path
) -> None:
    uri, fitted = model
    frame = _frame(50)
    data = _write(frame, tmp_path / "in.parquet")
    out = tmp_path / "preds.csv"
    out.write_text("keep me\n")

    with pytest.raises(AlreadyExists, match="--overwrite"):
        predict_file(uri, data, out, progress=False)
    assert out.read_text() == "keep me\n"

    predict_file(uri, data, out, overwrite=True, progress=False)
    np.testing.assert_array_equal(_read(out)["prediction"], fitted.predict(frame[FEATURES]))


@pytest.mark.parametrize(
    ("source", "target", "error", "match"),
    [
        ("missing.parquet", "out.parquet", NotFound, "missing.parquet does not exist"),
        ("in.txt", "out.parquet", InvalidInput, r"input file .*in\.txt has an unknown suffix"),
        ("in.parquet", "out.json", InvalidInput, r"output file .*out\.json has an unknown suffix"),
    ],
)
def test_unusable_files_are_refused(
    model: tuple[str, Any],
    tmp_path: Path,
    source: str,
    target: str,
    error: type[Exception],
    match: str,
) -> None:
    uri, _ = model
    _write(_frame(5), tmp_path / "in.parquet")
    (tmp_path / "in.txt").write_text("a,b,c\n1,2,3\n")

    with pytest.raises(error, match=match):
        predict_file(uri, tmp_path / source, tmp_path / target, progress=False)
    assert not (tmp_path / target).exists()


def test_bad_options_are_refused(model: tuple[str, Any], tmp_path: Path) -> None:
    uri, _ = model
    data = _write(_frame(5), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"

    with pytest.raises(InvalidInput, match=r"'day'.* are not in .*its columns are: id, a, b, c"):
        predict_file(uri, data, out, keep_columns=["id", "day"], progress=False)
    with pytest.raises(InvalidInput, match="executor 'spark' is unknown"):
        predict_file(uri, data, out, executor="spark", progress=False)
    with pytest.raises(InvalidInput, match="chunk_rows is 0"):
        predict_file(uri, data, out, chunk_rows=0, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_several_outputs_become_numbered_prediction_columns(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    frame = _frame(300)
    targets = np.column_stack([frame["a"] * 2, frame["c"] - frame["b"]])
    fitted = LinearRegression().fit(frame[FEATURES], targets)
    uri = loopml.log_model(fitted, name="two", input_example=frame[FEATURES].head(3)).uri
    data = _write(frame, tmp_path / "in.parquet")

    predict_file(uri, data, tmp_path / "out.parquet", chunk_rows=64, progress=False)

    written = pd.read_parquet(tmp_path / "out.parquet")
    assert list(written.columns) == ["prediction.0", "prediction.1"]
    np.testing.assert_allclose(written.to_numpy(), fitted.predict(frame[FEATURES]))


def test_an_empty_input_gives_an_empty_output(model: tuple[str, Any], tmp_path: Path) -> None:
    uri, _ = model
    data = _write(_frame(0), tmp_path / "in.csv")

    report = predict_file(uri, data, tmp_path / "out.csv", progress=False)

    assert (report.rows, report.chunks) == (0, 0)
    assert (tmp_path / "out.csv").read_text() == ""

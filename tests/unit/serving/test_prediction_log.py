"""Prediction log: every recorded request lands in day-partitioned Parquet that readers can use."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from loopml.errors import InvalidInput, InvalidState
from loopml.serving.prediction_log import PredictionLog, read_labelled, read_predictions

DAY1 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DAY2 = datetime(2024, 3, 2, 9, 30, tzinfo=UTC)


ROW = pd.DataFrame({"x": [1.0], "y": ["a"]})
ANSWER = np.array([2.0])


def record(plog: PredictionLog, request_id: str, **kwargs: object) -> None:
    plog.record(
        request_id=request_id,
        inputs=ROW,
        outputs=ANSWER,
        model_version="churn/3",
        latency_ms=1.5,
        **kwargs,  # type: ignore[arg-type]
    )


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def test_rows_carry_request_model_inputs_and_outputs(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        plog.record(
            request_id="r1",
            inputs=pd.DataFrame({"age": [30, 41], "plan": ["basic", "pro"]}),
            outputs=np.array([0, 1]),
            model_version="churn/3",
            latency_ms=4.25,
            ts=DAY1,
        )
    frame = read_predictions(tmp_path, "churn")
    assert list(frame.columns) == [
        "request_id", "row", "ts", "model_version", "latency_ms", "status", "sample_rate",
        "in.age", "in.plan", "out",
    ]  # fmt: skip
    assert frame["row"].tolist() == [0, 1]
    assert frame["in.plan"].tolist() == ["basic", "pro"]
    assert frame["out"].tolist() == [0, 1]
    assert set(frame["status"]) == {200}
    assert frame["ts"].iloc[0] == pd.Timestamp(DAY1)
    [path] = parts(tmp_path)
    assert path.parent == tmp_path / "deployment=churn" / "date=2024-03-01"
    assert str(pq.read_schema(path).field("ts").type) == "timestamp[ms, tz=UTC]"


def test_arrays_and_named_outputs_become_numbered_and_named_columns(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "img") as plog:
        plog.record(
            request_id="r1",
            inputs=np.arange(6.0).reshape(2, 3),
            outputs={"label": np.array(["cat", "dog"]), "score": np.array([0.9, 0.8])},
            model_version="img/1",
            latency_ms=2,
        )
        plog.record(
            request_id="r2",
            inputs=None,
            outputs=None,
            model_version="img/1",
            latency_ms=0.1,
            status=400,
        )
    frame = read_predictions(tmp_path, "img")
    first = frame[frame["request_id"] == "r1"]
    assert first["in.2"].tolist() == [2.0, 5.0]
    assert first["out.label"].tolist() == ["cat", "dog"]
    refused = frame[frame["request_id"] == "r2"]
    assert refused["status"].tolist() == [400]


def test_many_threads_lose_no_rows(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path, "churn", flush_rows=500)

    def send(worker: int) -> None:
        for i in range(1250):
            record(plog, f"w{worker}-{i}")

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plog.close()
    frame = read_predictions(tmp_path, "churn")
    assert len(frame) == 10_000
    assert frame["request_id"].nunique() == 10_000
    assert plog.dropped == 0
    assert plog.failed == 0
    assert len(parts(tmp_path)) > 1


def test_sampling_keeps_about_the_rate_and_records_it(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn", sample_rate=0.1, seed=7) as plog:
        for i in range(3000):
            record(plog, f"r{i}")
    frame = read_predictions(tmp_path, "churn")
    assert 150 <= len(frame) <= 450
    assert set(frame["sample_rate"]) == {0.1}


def test_days_are_partitions_and_reads_open_only_those_in_range(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        record(plog, "first", ts=DAY1)
        record(plog, "second", ts=DAY2)
    folders = sorted(p.name for p in (tmp_path / "deployment=churn").iterdir())
    assert folders == ["date=2024-03-01", "date=2024-03-02"]
    # A file no reader can parse on day 1 shows which partitions a read opens.
    (tmp_path / "deployment=churn" / "date=2024-03-01" / "part-broken.parquet").write_bytes(b"no")
    with caplog.at_level(logging.WARNING, logger="loopml"):
        later = read_predictions(tmp_path, "churn", since=DAY2 - timedelta(hours=1))
    assert later["request_id"].tolist() == ["second"]
    assert "part-broken" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="loopml"):
        everything = read_predictions(tmp_path, "churn")
        earlier = read_predictions(tmp_path, "churn", until=DAY2)
    assert everything["request_id"].tolist() == ["first", "second"]
    assert earlier["request_id"].tolist() == ["first"]
    assert "part-broken" in caplog.text


def test_feedback_joins_latest_label_per_request(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        record(plog, "a", ts=DAY1)
        record(plog, "b", ts=DAY1)
        record(plog, "c", ts=DAY1)
        plog.record_feedback("a", 0, ts=DAY1 + timedelta(hours=1))
        plog.record_feedback("a", 1, ts=DAY2)  # corrected later: the latest wins
        plog.record_feedback("b", 0, ts=DAY2)
    assert parts(tmp_path / "feedback" / "deployment=churn")
    labelled = read_labelled(tmp_path, "churn")
    assert dict(zip(labelled["request_id"], labelled["label"], strict=True)) == {"a": 1, "b": 0}


def test_no_feedback_gives_no_labelled_rows(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        record(plog, "a")
    labelled = read_labelled(tmp_path, "churn")
    assert labelled.empty
    assert "label" in labelled.columns


def test_close_flushes_and_refuses_later_records(tmp_path: Path) -> None:
    plog = PredictionLog(tmp_path, "churn", flush_rows=1000, flush_seconds=3600)
    record(plog, "r1")
    plog.close()
    assert read_predictions(tmp_path, "churn")["request_id"].tolist() == ["r1"]
    with pytest.raises(InvalidState, match="closed"):
        record(plog, "r2")
    with pytest.raises(InvalidState, match="closed"):
        plog.record_feedback("r1", 1)
    plog.close()  # closing twice is harmless


def test_flush_writes_without_closing(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn", flush_seconds=3600) as plog:
        record(plog, "r1")
        assert plog.flush(timeout=30)
        assert len(read_predictions(tmp_path, "churn")) == 1


def test_schema_change_between_requests_goes_to_separate_files(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        plog.record(
            request_id="a",
            inputs=pd.DataFrame({"x": [1]}),
            outputs=[1],
            model_version="m/1",
            latency_ms=1,
        )
        plog.record(
            request_id="b",
            inputs=pd.DataFrame({"z": ["q"]}),
            outputs=["yes"],
            model_version="m/2",
            latency_ms=1,
        )
    assert len(parts(tmp_path)) == 2
    assert plog.failed == 0
    frame = read_predictions(tmp_path, "churn").set_index("request_id")
    assert frame.loc["a", "in.x"] == 1
    assert frame.loc["b", "in.z"] == "q"
    assert frame.loc["b", "out"] == "yes"


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn", max_queue=1) as plog:
        for i in range(3000):
            record(plog, f"r{i}")
    written = len(read_predictions(tmp_path, "churn"))
    assert plog.dropped > 0
    assert written + plog.dropped == 3000


def test_rows_that_do_not_match_are_counted_as_failed(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        plog.record(
            request_id="bad",
            inputs=np.zeros((3, 2)),
            outputs=np.zeros(2),
            model_version="m/1",
            latency_ms=1,
        )
        record(plog, "good")
    assert plog.failed == 1
    assert read_predictions(tmp_path, "churn")["request_id"].tolist() == ["good"]


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        record(plog, "r1", ts=DAY1)
    folder = tmp_path / "deployment=churn" / "date=2024-03-01"
    (folder / ".tmp-0123abcd.parquet").write_bytes(b"PAR1 half written")
    assert read_predictions(tmp_path, "churn")["request_id"].tolist() == ["r1"]
    assert (folder / ".tmp-0123abcd.parquet").exists()  # left in place; readers skip it


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", ".hidden", "a\\b", "x" * 200, 5])
def test_unsafe_deployment_names_are_refused(tmp_path: Path, name: object) -> None:
    with pytest.raises(InvalidInput, match="deployment name"):
        PredictionLog(tmp_path, name)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="deployment name"):
        read_predictions(tmp_path, name)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("sample_rate", 0),
        ("sample_rate", 1.5),
        ("sample_rate", float("nan")),
        ("flush_rows", 0),
        ("flush_rows", 2.5),
        ("flush_seconds", 0),
        ("flush_seconds", float("inf")),
        ("max_queue", 0),
        ("seed", "x"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, setting: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=setting):
        PredictionLog(tmp_path, "churn", **{setting: value})  # type: ignore[arg-type]


def test_bad_record_arguments_are_refused(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        with pytest.raises(InvalidInput, match="timezone-aware"):
            record(plog, "r1", ts=datetime(2024, 3, 1))
        with pytest.raises(InvalidInput, match="request_id"):
            record(plog, "")
        with pytest.raises(InvalidInput, match="latency_ms"):
            plog.record(request_id="r", inputs=[1], outputs=[1], model_version="m", latency_ms=-1)
        with pytest.raises(InvalidInput, match="since"):
            read_predictions(tmp_path, "churn", since=datetime(2024, 3, 1))


def test_same_columns_with_new_types_still_land(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "churn") as plog:
        for request_id, value in (("a", 1), ("b", "one"), ("c", 2)):
            plog.record(
                request_id=request_id,
                inputs=pd.DataFrame({"x": pd.Series([value], dtype=object)}),
                outputs=[0],
                model_version="m/1",
                latency_ms=1,
            )
        plog.record_feedback("a", 1)
        plog.record_feedback("b", "yes")
    assert plog.failed == 0
    frame = read_predictions(tmp_path, "churn").set_index("request_id")
    assert frame["in.x"].to_dict() == {"a": 1, "b": "one", "c": 2}
    labelled = read_labelled(tmp_path, "churn").set_index("request_id")
    assert labelled["label"].to_dict() == {"a": 1, "b": "yes"}

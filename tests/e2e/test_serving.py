"""`loopml serve`: a real uvicorn server on a loopback port, driven over HTTP."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cli import (
    loopml,
    one_error_line,
    python,
    start_server,
    stop,
)

SETUP = """
    import numpy as np
    import pandas as pd

    import loopml

    class Doubler:
        '''Predicts 2x + y; fails on x == -999, as a model with a bug would.'''

        def predict(self, frame):
            if (frame["x"] == -999).any():
                raise ValueError("x of -999 is not a number this model knows")
            return (frame["x"] * 2 + frame["y"]).to_numpy()

    example = pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 0.25]})
    with loopml.start_run():
        logged = loopml.log_model(Doubler(), name="doubler", input_example=example)
    loopml.set_alias("doubler", "champion", 1)
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    loopml("init", cwd=root)
    python(SETUP, cwd=root)
    return root


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    process, url = start_server(
        workspace, "serve", "doubler@champion", "--max-batch-size", "16", "--max-wait-ms", "20"
    )
    yield url
    status, output = stop(process)
    # uvicorn ends by re-raising the SIGTERM it handled; what matters is that it drained.
    assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output


def test_open_inference_protocol_metadata_and_infer(server: str) -> None:
    assert httpx.get(f"{server}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server}/v2").json()["name"] == "loopml"
    meta = httpx.get(f"{server}/v2/models/doubler").json()
    assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == ["x", "y"]
    assert httpx.get(f"{server}/v2/models/doubler/versions/1/ready").json()["ready"] is True
    body = {
        "id": "req-7",
        "inputs": [
            {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 3.0]},
            {"name": "y", "shape": [2, 1], "datatype": "FP64", "data": [[0.5], [1.0]]},
        ],
    }
    answer = httpx.post(f"{server}/v2/models/doubler/infer", json=body)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert (found["id"], found["model_name"], found["model_version"]) == ("req-7", "doubler", "1")
    assert found["outputs"][0]["data"] == [2.5, 7.0]
    assert answer.headers["x-model-version"] == "doubler/1"


def test_mlflow_invocations_in_each_format(server: str) -> None:
    url = f"{server}/invocations"
    split = {"dataframe_split": {"columns": ["x", "y"], "data": [[1.0, 1.0], [2.0, 0.0]]}}
    records = {"dataframe_records": [{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 0.0}]}
    for body in (split, records):
        answer = httpx.post(url, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [3.0, 4.0]
        assert answer.json()["model_version"] == "1"
    csv = httpx.post(url, content="x,y\n1,1\n2,0\n", headers={"content-type": "text/csv"})
    assert csv.json()["predictions"] == [3.0, 4.0]


def test_bad_requests_get_4xx_that_name_the_problem(server: str) -> None:
    url = f"{server}/invocations"
    bad_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    missing = httpx.post(url, json={"dataframe_records": [{"x": 1.0}]})
    assert missing.status_code == 400 and "'y'" in missing.json()["message"]
    wrong_type = httpx.post(url, json={"dataframe_records": [{"x": "one", "y": 1.0}]})
    assert wrong_type.status_code == 400 and "'x'" in wrong_type.json()["message"]
    media = httpx.post(url, content=b"x", headers={"content-type": "application/xml"})
    assert media.status_code == 415
    unknown = httpx.post(f"{server}/v2/models/other/infer", json={"inputs": []})
    assert unknown.status_code == 404 and "doubler" in unknown.json()["error"]
    shape = httpx.post(
        f"{server}/v2/models/doubler/infer",
        json={"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0]}]},
    )
    assert shape.status_code == 400 and "inputs[0]" in shape.json()["error"]
    huge = httpx.post(url, content=b" " * (33 * 1024 * 1024), headers={"content-type": "text/csv"})
    assert huge.status_code == 413 and "--max-body-mb" in huge.json()["message"]
    assert 'status="413"' in httpx.get(f"{server}/metrics").text  # counted like any answer


def test_a_model_error_is_a_500_with_an_id_and_the_server_keeps_serving(server: str) -> None:
    url = f"{server}/invocations"
    failed = httpx.post(url, json={"dataframe_records": [{"x": -999.0, "y": 0.0}]})
    assert failed.status_code == 500 and failed.json()["error_id"] in failed.json()["message"]
    assert httpx.post(url, json={"dataframe_records": [{"x": 1.0, "y": 0.0}]}).status_code == 200


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server: str) -> None:
    def one(i: int) -> tuple[int, list[float]]:
        body = {"dataframe_records": [{"x": float(i), "y": 0.5}]}
        return i, httpx.post(f"{server}/invocations", json=body, timeout=60).json()["predictions"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(96)))
    assert all(predictions == [i * 2 + 0.5] for i, predictions in answers)
    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(f"{server}/metrics").text)
    }
    batches = {s.name: s.value for s in families["loopml_batch_rows"].samples}
    # Fewer model calls than rows: concurrent requests shared calls.
    assert batches["loopml_batch_rows_count"] < batches["loopml_batch_rows_sum"]
    requests = families["loopml_requests"].samples
    assert any(s.labels["status"] == "200" and s.value >= 96 for s in requests)


def test_binding_beyond_loopback_needs_a_token(workspace: Path) -> None:
    refused = loopml("serve", "doubler@champion", "--host", "0.0.0.0", cwd=workspace, expect=1)
    assert "without authentication" in one_error_line(refused)
    process, url = start_server(workspace, "serve", "doubler@champion", "--auth-token", "s3cret")
    try:
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200  # probes stay open
        body = {"dataframe_records": [{"x": 1.0, "y": 1.0}]}
        assert httpx.post(f"{url}/invocations", json=body).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert httpx.post(f"{url}/invocations", json=body, headers=wrong).status_code == 401
        right = {"authorization": "Bearer s3cret"}
        answer = httpx.post(f"{url}/invocations", json=body, headers=right)
        assert answer.status_code == 200 and json.loads(answer.text)["predictions"] == [3.0]
    finally:
        stop(process)


def test_predictions_are_logged_and_feedback_attaches_labels(server: str, workspace: Path) -> None:
    from loopml.serving.prediction_log import read_labelled, read_predictions

    body = {"dataframe_records": [{"x": 4.0, "y": 0.0}, {"x": 5.0, "y": 0.0}]}
    answer = httpx.post(f"{server}/invocations", json=body, headers={"x-request-id": "req-42"})
    assert answer.headers["x-request-id"] == "req-42" and answer.json()["request_id"] == "req-42"
    given = httpx.post(f"{server}/feedback", json={"request_id": "req-42", "label": 8.0})
    assert given.json() == {"accepted": 1}
    bad = httpx.post(f"{server}/feedback", json={"request": "req-42"})
    assert bad.status_code == 400 and "request_id" in bad.json()["error"]
    root = workspace / ".loopml" / "predictions"
    deadline = time.monotonic() + 30
    labelled = read_labelled(root, "doubler") if root.exists() else None
    while (labelled is None or labelled.empty) and time.monotonic() < deadline:
        time.sleep(0.3)  # the log writes in the background, about once a second
        labelled = read_labelled(root, "doubler") if root.exists() else None
    assert labelled is not None
    rows = labelled[labelled["request_id"] == "req-42"]
    assert rows["out"].tolist() == [8.0, 10.0] and rows["label"].tolist() == [8.0, 8.0]
    assert rows["in.x"].tolist() == [4.0, 5.0] and set(rows["model_version"]) == {"1"}
    logged = read_predictions(root, "doubler")
    assert {400, 415, 500} <= set(logged["status"])  # refused and failed requests are kept too

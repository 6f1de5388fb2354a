"""`loopml monitor` and `loopml drift`: a real deployment server, real traffic, a real webhook.

The module serves one deployment; traffic like the reference, then shifted traffic, goes
through it over HTTP with labels sent to /feedback. The monitor computes its windows from the
prediction log, alerts reach a webhook, and the server's /metrics shows the monitor's numbers.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cli import loopml, loopml_json, one_error_line, python, start_server, stop

SETUP = """
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(600, 3)), columns=["x1", "x2", "x3"])
    target = (frame["x1"] + frame["x2"] > 0).astype(int)
    model = LogisticRegression().fit(frame, target)
    frame.assign(target=target).to_csv("reference.csv", index=False)
    shifted = frame + 3.0
    shifted.assign(target=target).to_csv("shifted.csv", index=False)
    with loopml.start_run():
        loopml.log_model(model, name="clf", input_example=frame.head(3))
    loopml.set_alias("clf", "champion", 1)
"""
WINDOW_S = 2


class Hook(BaseHTTPRequestHandler):
    """A webhook that refuses its first POST (500) and keeps the rest."""

    received: ClassVar[list[dict[str, Any]]] = []
    posts: ClassVar[int] = 0

    def do_POST(self) -> None:
        type(self).posts += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).posts == 1:
            self.send_response(500)
        else:
            type(self).received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    loopml("init", cwd=root)
    python(SETUP, cwd=root)
    loopml("data", "add", "reference.csv", "--name", "reference", cwd=root)
    loopml("deploy", "create", "clf", "--model", "clf@champion", "--no-serve", cwd=root)
    return root


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    process, url = start_server(workspace, "deploy", "serve", "clf")
    yield url
    status, output = stop(process)
    assert status in (0, -signal.SIGTERM), output


def send(url: str, rows: np.ndarray[Any, Any]) -> None:
    """Send each row as a request, with its true label as feedback."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for row in rows:
            body = {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [row.tolist()]}}
            answer = client.post("/invocations", json=body)
            assert answer.status_code == 200, answer.text
            label = int(row[0] + row[1] > 0)
            feedback = {"request_id": answer.headers["x-request-id"], "label": label}
            assert client.post("/feedback", json=feedback).status_code == 200


def next_window() -> None:
    """Sleep until a new window begins (windows start at whole multiples of their length)."""
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)


def test_a_shift_in_live_traffic_fires_one_alert_that_reaches_the_webhook(
    workspace: Path, server: str, hook: str
) -> None:
    loopml(
        "monitor", "create", "watch", "--deployment", "clf", "--reference", "reference@v1",
        "--window", f"{WINDOW_S}s", "--min-rows", "10", "--alert", "drift_share > 0.3",
        "--alert", "accuracy < 0.9", "--webhook", hook, "--alert-file", "alerts.jsonl",
        cwd=workspace,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    next_window()
    send(server, rng.normal(size=(40, 3)))  # like the reference
    next_window()
    send(server, rng.normal(size=(40, 3)) + 3.0)  # shifted: every column drifts
    next_window()
    time.sleep(2.7)  # a window is complete once the prediction log has settled (2.5 s)
    ran = loopml_json("monitor", "run", "watch", "--since", "30s", "--json", cwd=workspace)
    busy = [w for w in ran["windows"] if w["rows"] >= 30]
    assert len(busy) == 2, ran["windows"]
    calm, shifted = busy
    assert calm["metrics"]["drift_share"] == 0.0
    assert calm["metrics"]["accuracy"] >= 0.9
    assert shifted["metrics"]["drift_share"] == 1.0
    assert shifted["metrics"]["prediction_drifted"] == 1.0
    assert shifted["metrics"]["requests"] == 40
    assert shifted["metrics"]["p99_ms"] is not None
    fired = {(a["rule"], a["state"]) for a in ran["alerts"]}
    assert ("drift_share > 0.3", "firing") in fired

    # A second run over the same time raises nothing new.
    again = loopml_json("monitor", "run", "watch", "--since", "30s", "--json", cwd=workspace)
    assert again["alerts"] == []
    stored = loopml_json("monitor", "alerts", "watch", "--json", cwd=workspace)
    assert sorted((a["rule"], a["state"]) for a in stored) == sorted(
        (a["rule"], a["state"]) for a in ran["alerts"]
    )
    lines = (workspace / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == len(ran["alerts"])
    # The webhook refused the first POST; the retry delivered every event once.
    assert sorted(a["rule"] for a in Hook.received) == sorted(a["rule"] for a in ran["alerts"])
    assert all(a["deployment"] == "clf" and a["monitor"] == "watch" for a in Hook.received)

    status = loopml_json("monitor", "status", "watch", "--json", cwd=workspace)
    assert status["alerts"]["drift_share > 0.3"]["state"] == "firing"

    # The server's /metrics shows the monitor next to its own numbers, in valid exposition.
    def firing() -> dict[str, float]:
        text = httpx.get(f"{server}/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert "loopml_requests" in families  # the serving metrics are still there
        return {s.labels["rule"]: s.value for s in families["loopml_alert_firing"].samples}

    deadline = time.monotonic() + 15
    while firing().get("drift_share > 0.3") != 1.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert firing()["drift_share > 0.3"] == 1.0
    text = httpx.get(f"{server}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    columns = {s.labels["column"] for s in families["loopml_drift_score"].samples}
    assert columns <= {"x1", "x2", "x3"}

    report = workspace / "watch.html"
    loopml("monitor", "report", "watch", "--html", str(report), cwd=workspace)
    page = report.read_text()
    assert "drift_share &gt; 0.3" in page or "drift_share > 0.3" in page
    assert '<script src="http' not in page


def test_drift_between_two_files(workspace: Path) -> None:
    found = loopml_json(
        "drift", "reference.csv", "shifted.csv", "--column", "x1", "--column", "x2", "--json",
        cwd=workspace,
    )  # fmt: skip
    assert found["drifted"] == ["x1", "x2"]
    assert found["dataset_drift"] is True
    same = loopml_json("drift", "reference@v1", "reference.csv", "--json", cwd=workspace)
    assert same["drifted"] == []
    page = workspace / "drift.html"
    printed = loopml("drift", "reference.csv", "shifted.csv", "--html", str(page), cwd=workspace)
    assert "columns drifted" in printed.stdout
    assert page.read_text().count("plotly") > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--alert", "drift_share >> 0.3"), "is not METRIC OP NUMBER"),
        (("--alert", "wobble > 1"), "unknown metric 'wobble'"),
        (("--alert", "drift.nothing > 0.1"), "no column 'nothing'"),
        (("--window", "soon"), "is not a duration"),
        (("--webhook", "ftp://example"), "is not an http(s) URL"),
        (("--column", "x9"), "'x9' are not inputs of the deployed model"),
        (("--alert-file", "reference.csv/alerts.jsonl"), "is a file, not a folder"),
    ],
)
def test_a_bad_monitor_is_refused_with_one_line_and_not_stored(
    workspace: Path, args: tuple[str, ...], says: str
) -> None:
    done = loopml(
        "monitor", "create", "bad", "--deployment", "clf", "--reference", "reference.csv", *args,
        cwd=workspace, expect=1,
    )  # fmt: skip
    assert says in one_error_line(done)
    assert "bad" not in [
        m["name"] for m in loopml_json("monitor", "status", "--json", cwd=workspace)
    ]


def test_unknown_names_and_files_are_one_line_errors(workspace: Path) -> None:
    missing = loopml("monitor", "run", "nothing", cwd=workspace, expect=1)
    assert "no monitor 'nothing'" in one_error_line(missing)
    no_file = loopml("drift", "reference.csv", "absent.csv", cwd=workspace, expect=1)
    assert "absent.csv" in one_error_line(no_file)
    no_deployment = loopml(
        "monitor", "create", "m", "--deployment", "ghost", "--reference", "reference.csv",
        cwd=workspace, expect=1,
    )  # fmt: skip
    assert "no deployment 'ghost'" in one_error_line(no_deployment)


def test_a_monitor_may_watch_some_of_the_model_inputs(workspace: Path) -> None:
    loopml(
        "monitor", "create", "some", "--deployment", "clf", "--reference", "reference.csv",
        "--column", "x1", "--alert", "drift.x1 > 0.5", cwd=workspace,
    )  # fmt: skip
    shown = loopml_json("monitor", "status", "some", "--json", cwd=workspace)
    assert shown["columns"] == ["x1"]
    assert shown["rules"] == ["drift.x1 > 0.5"]
    loopml("monitor", "delete", "some", cwd=workspace)

"""Monitors on every store: settings, windows from the prediction log, alerts and notifiers."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sqlalchemy import func, select

import loopml
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.deploy import deployments
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.monitoring import monitors, windows
from loopml.monitoring.alerts import Alert, WebhookNotifier
from loopml.monitoring.monitors import Window
from loopml.serving.prediction_log import PredictionLog, iter_predictions
from loopml.serving.server import PREDICTIONS_DIR

FEATURES = ["a", "b", "c"]
DEPLOYMENT = "churn-prod"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a whole minute, so 1m windows start on it
NOW = T0 + timedelta(seconds=30)  # the window that starts at T0 is still open
SINCE_S = 330  # back to T0 - 5m: five complete windows and the open one


@dataclass(frozen=True)
class Served:
    """A workspace whose model churn/1 serves deployment churn-prod, and the model's data."""

    ws: Workspace
    model: LogisticRegression
    features: pd.DataFrame  # 400 rows the model was fitted on
    target: pd.Series

    @property
    def reference(self) -> pd.DataFrame:
        return self.features.assign(target=self.target)

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict(frame[FEATURES]))

    def log(self, deployment: str = DEPLOYMENT, **options: Any) -> PredictionLog:
        return PredictionLog(self.ws.settings.dir / PREDICTIONS_DIR, deployment, **options)


@pytest.fixture
def served(ws: Workspace) -> Served:
    rng = np.random.default_rng(7)
    features = pd.DataFrame({c: rng.normal(size=400) for c in FEATURES})
    target = pd.Series((features["a"] + features["b"] + rng.normal(0, 0.7, 400) > 0).astype(int))
    model = LogisticRegression().fit(features, target)
    with loopml.start_run():
        loopml.log_model(model, name="churn", input_example=features.head(3))
    loopml.set_alias("churn", "champion", 1)
    deployments.create(ws, DEPLOYMENT, "churn@champion", host="127.0.0.1", port=8080)
    return Served(ws, model, features, target)


def _at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _ms(minute: int) -> int:
    return int(_at(minute).timestamp() * 1000)


def _serve(
    log: PredictionLog,
    minute: int,
    inputs: pd.DataFrame,
    outputs: np.ndarray[Any, Any],
    *,
    latencies: Sequence[float] | np.ndarray[Any, Any] | None = None,
    labels: Sequence[int] | np.ndarray[Any, Any] = (),
) -> None:
    """Log each row of `inputs` as one request in minute `minute`, the first ones labelled."""
    step = 50 / max(len(inputs), 1)
    for i in range(len(inputs)):
        request = f"m{minute}-{i}"
        ts = _at(minute) + timedelta(seconds=i * step)
        log.record(
            request_id=request,
            inputs=inputs.iloc[[i]],
            outputs=outputs[i : i + 1],
            model_version="1",  # as the server logs it: the version number
            latency_ms=5.0 if latencies is None else float(latencies[i]),
            ts=ts,
        )
        if i < len(labels):
            log.record_feedback(request, int(labels[i]), ts=ts + timedelta(seconds=1))


def _fail(log: PredictionLog, minute: int, statuses: Sequence[int], latency: float = 2.0) -> None:
    """Log requests that were answered with an error status (no inputs or outputs kept)."""
    for i, status in enumerate(statuses):
        log.record(
            request_id=f"m{minute}-err{i}",
            inputs=None,
            outputs=None,
            model_version="1",  # as the server logs it: the version number
            latency_ms=latency,
            status=status,
            ts=_at(minute) + timedelta(seconds=55, milliseconds=i),
        )


def _by_minute(found: Sequence[Window]) -> dict[int, Window]:
    return {(w.start_ms - _ms(0)) // 60_000: w for w in found}


def _create(ws: Workspace, name: str = "watch", **options: Any) -> monitors.Monitor:
    """Create monitor `name` of churn-prod with 1m windows unless `options` say otherwise."""
    return monitors.create(ws, name, **{"deployment": DEPLOYMENT, "window": "1m", **options})


# --- create, get, list, delete -----------------------------------------------------------


def test_create_stores_the_settings_and_get_list_delete_find_it(
    served: Served, tmp_path: Path
) -> None:
    ws = served.ws
    with pytest.raises(NotFound, match=r"no monitor 'watch'; monitors: none yet"):
        monitors.get(ws, "watch")
    made = _create(
        ws,
        reference=served.reference,
        alerts=["drift_share>0.30", " p99_ms >= 50 ", "drift.b > 0.2"],
        webhooks=["http://127.0.0.1:9/hook"],
        files=[tmp_path / "alerts.jsonl"],
    )
    # The target column is in the reference but the model does not take it: not watched.
    assert made.columns == FEATURES
    assert made.settings["rules"] == ["drift_share > 0.3", "p99_ms >= 50", "drift.b > 0.2"]
    assert made.settings["notifiers"] == [
        {"kind": "log"},
        {"kind": "webhook", "url": "http://127.0.0.1:9/hook"},
        {"kind": "file", "path": str((tmp_path / "alerts.jsonl").resolve())},
    ]
    assert made.settings["task"] == "classification"
    assert (made.deployment, made.model, made.window_s) == (DEPLOYMENT, "churn/1", 60)
    assert made.reference == "DataFrame (400 rows)"
    assert monitors.get(ws, "watch") == made
    inputs, outputs = monitors.profile(ws, made)
    assert list(inputs.columns_) == FEATURES and list(outputs.columns_) == ["prediction"]

    with pytest.raises(AlreadyExists, match="monitor 'watch' exists"):
        _create(ws, reference=served.reference)
    assert monitors.get(ws, "watch") == made

    other = _create(ws, "other", reference=served.features, task="regression", window=90)
    assert (other.settings["task"], other.window_s, other.settings["rules"]) == (
        "regression",
        90,
        [],
    )
    with pytest.raises(NotFound, match=r"no monitor 'nope'; monitors: other, watch"):
        monitors.get(ws, "nope")
    assert [m.name for m in monitors.list_all(ws)] == ["other", "watch"]
    assert [m.name for m in monitors.list_all(ws, deployment=DEPLOYMENT)] == ["other", "watch"]
    assert monitors.list_all(ws, deployment="elsewhere") == []

    monitors.delete_monitor(ws, "other")
    assert [m.name for m in monitors.list_all(ws)] == ["watch"]
    with pytest.raises(NotFound, match="no monitor 'other'; monitors: watch"):
        monitors.delete_monitor(ws, "other")


def test_delete_takes_the_windows_and_alert_events_with_it(served: Served) -> None:
    ws = served.ws
    _create(ws, reference=served.reference, alerts=["error_rate > 0.1"])
    with served.log() as log:
        _fail(log, -2, [500] * 5)
    result = windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    assert len(result.windows) == 6 and len(result.alerts) == 1
    monitors.delete_monitor(ws, "watch")
    with pytest.raises(NotFound, match="no monitor 'watch'"):
        monitors.windows(ws, "watch")
    assert monitors.alert_events(ws) == []
    with ws.store.read() as conn:  # nothing left behind that a join would hide
        for table in (db.monitor_windows, db.alert_events):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    again = _create(ws, reference=served.reference)
    assert monitors.windows(ws, again.name) == [] and monitors.alert_states(ws, again) == {}


def test_bad_settings_are_refused_and_nothing_is_stored(served: Served) -> None:
    ws, reference = served.ws, served.reference
    with pytest.raises(NotFound, match="no deployment 'nosuch'; deployments: churn-prod"):
        monitors.create(ws, "watch", deployment="nosuch", reference=reference)
    refused: list[tuple[dict[str, Any], str]] = [
        ({"reference": reference.drop(columns=["c"])}, r"lacks column\(s\) 'c' the model takes"),
        ({"alerts": ["drift_share >"]}, "is not METRIC OP NUMBER"),
        ({"alerts": ["drift_share > lots"]}, "'lots' is not a number"),
        ({"alerts": ["latency > 3"]}, "unknown metric 'latency'"),
        ({"alerts": ["drift.nosuchcolumn > 0.1"]}, "watches no column 'nosuchcolumn'"),
        ({"window": "0s"}, "duration must be above 0"),
        ({"window": "abc"}, "'abc' is not a duration"),
        ({"window": 0.5}, "at least 1s"),
        ({"webhooks": ["ftp://x"]}, "'ftp://x' is not an http"),
        ({"task": "nonsense"}, "task must be one of classification, regression"),
    ]
    for options, says in refused:
        chosen = {"reference": reference, "window": "1m", **options}
        with pytest.raises(InvalidInput, match=says):
            monitors.create(ws, "watch", deployment=DEPLOYMENT, **chosen)
    assert monitors.list_all(ws) == []


# --- windows -----------------------------------------------------------------------------


def test_run_stores_each_window_s_traffic_drift_and_quality(served: Served) -> None:
    ws = served.ws
    _create(ws, reference=served.reference)
    rng = np.random.default_rng(11)
    order = rng.permutation(400)
    rows = served.features.iloc[order].reset_index(drop=True)
    truth = served.target.iloc[order].to_numpy()
    shifted = served.features + 3.0
    predicted = served.predict(rows)
    latencies = {minute: rng.gamma(2.0, 4.0, 400) for minute in (-5, -3, -2, -1)}
    with served.log() as log:
        _serve(log, -5, rows, predicted, latencies=latencies[-5], labels=truth[:300])
        _serve(log, -3, shifted, served.predict(shifted), latencies=latencies[-3])
        _serve(log, -2, rows, predicted, latencies=latencies[-2])
        _fail(log, -2, [500] * 6 + [400] * 4, latency=2.0)
        _serve(log, -1, rows, predicted, latencies=latencies[-1])
        _serve(log, 0, rows.head(20), predicted[:20])
    latencies[-2] = np.concatenate([latencies[-2], [2.0] * 10])

    result = windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    assert [w.start_ms for w in result.windows] == [_ms(m) for m in range(-5, 1)]
    stored = monitors.windows(ws, "watch")
    assert [(w.start_ms, w.end_ms, w.rows, w.metrics) for w in stored] == [
        (w.start_ms, w.end_ms, w.rows, w.metrics) for w in result.windows
    ]
    by = _by_minute(stored)
    # Minute 0 got 20 requests 2.5 s apart; the 8 stamped after now are not read.
    assert {m: w.rows for m, w in by.items()} == {-5: 400, -4: 0, -3: 400, -2: 410, -1: 400, 0: 12}
    assert [w.complete for w in stored] == [True] * 5 + [False]
    assert by[0].end_ms == int(NOW.timestamp() * 1000)  # the open window ends now

    assert by[-2].metrics["requests"] == 410
    assert by[-2].metrics["error_rate"] == pytest.approx(6 / 410)
    assert by[-2].metrics["client_error_rate"] == pytest.approx(4 / 410)
    assert by[-5].metrics["error_rate"] == 0.0
    for minute, logged in latencies.items():
        for q, key in ((50, "p50_ms"), (99, "p99_ms")):
            assert by[minute].metrics[key] == pytest.approx(np.percentile(logged, q), rel=0.02)

    for minute in (-5, -2, -1):  # the reference's own rows: nothing drifted
        assert by[minute].metrics["drift_share"] == 0.0
        assert by[minute].metrics["prediction_drifted"] == 0.0
    assert by[-3].metrics["drift_share"] is not None and by[-3].metrics["drift_share"] > 0.5
    assert by[-3].metrics["dataset_drift"] == 1.0
    assert sorted(by[-3].details["drift"]["drifted"]) == FEATURES
    assert by[-3].metrics["prediction_drifted"] == 1.0
    assert by[-3].metrics["prediction_drift"] is not None
    assert by[-3].metrics["prediction_drift"] > (by[-5].metrics["prediction_drift"] or 0.0)

    labelled = by[-5].metrics
    assert labelled["labelled_rows"] == 300
    assert labelled["accuracy"] == pytest.approx(accuracy_score(truth[:300], predicted[:300]))
    assert labelled["f1"] == pytest.approx(f1_score(truth[:300], predicted[:300]))
    assert labelled["accuracy_change"] is None  # no evaluation of churn/1 to compare with
    assert by[-1].metrics["accuracy"] is None and by[-1].metrics["labelled_rows"] == 0

    empty = by[-4].metrics
    assert (by[-4].rows, empty["rows"], empty["requests"], empty["labelled_rows"]) == (0, 0, 0, 0)
    assert {k for k, v in empty.items() if v is not None} == {"rows", "requests", "labelled_rows"}
    assert by[0].complete is False

    # An evaluation of the serving version gives the labelled windows a baseline; a rerun over
    # the same minutes replaces their windows rather than adding more.
    evaluation = loopml.evaluate(
        "models:/churn/1", data=served.reference, target="target", importance=False
    )
    windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    again = _by_minute(monitors.windows(ws, "watch"))
    assert len(monitors.windows(ws, "watch")) == 6
    change = again[-5].metrics
    accuracy, f1 = labelled["accuracy"], labelled["f1"]
    assert accuracy is not None and f1 is not None and change["accuracy"] == accuracy
    scored = evaluation.metrics
    assert change["accuracy_change"] == pytest.approx(accuracy - (scored["accuracy"] or 0.0))
    assert change["f1_change"] == pytest.approx(f1 - (scored["f1"] or 0.0))
    assert again[-5].details["baseline"]["evaluation"] == evaluation.id
    assert again[-1].metrics["accuracy_change"] is None  # no labels there


def test_many_small_log_files_and_small_chunks_give_the_same_windows(served: Served) -> None:
    ws = served.ws
    deployments.create(ws, "churn-copy", "churn@champion", host="127.0.0.1", port=8081)
    _create(ws, "one-file", reference=served.reference)
    monitors.create(
        ws, "many-files", deployment="churn-copy", reference=served.reference, window="1m"
    )
    rng = np.random.default_rng(5)
    picked = served.features.sample(150, random_state=1)
    rows = picked.reset_index(drop=True)
    truth = served.target.loc[picked.index].to_numpy()
    shifted = rows.assign(a=rows["a"] + 2.0)
    latencies = rng.gamma(2.0, 4.0, 150)
    big = served.log(flush_rows=100_000, flush_seconds=600)
    small = served.log("churn-copy", flush_rows=7)
    for log in (big, small):
        _serve(log, -2, rows, served.predict(rows), latencies=latencies, labels=truth[:100])
        _fail(log, -2, [500, 503, 404])
        _serve(log, -1, shifted, served.predict(shifted), latencies=latencies[::-1])
        log.close()
    root = ws.settings.dir / PREDICTIONS_DIR
    assert len(list((root / "deployment=churn-copy").rglob("part-*.parquet"))) > 20

    one = windows.run(ws, "one-file", since_s=150, now=NOW).windows
    many = windows.run(ws, "many-files", since_s=150, now=NOW).windows
    assert [w.rows for w in one] == [153, 150, 0]
    assert [w.rows for w in many] == [153, 150, 0]
    for left, right in zip(one, many, strict=True):
        assert left.metrics.keys() == right.metrics.keys()
        for key, value in left.metrics.items():
            other = right.metrics[key]
            assert (value is None) == (other is None), key
            assert value is None or other == pytest.approx(value, abs=1e-9), key
    assert one[0].metrics["accuracy"] == pytest.approx(
        accuracy_score(truth[:100], served.predict(rows)[:100])
    )

    whole = list(iter_predictions(root, DEPLOYMENT))
    chunks = list(iter_predictions(root, DEPLOYMENT, batch_rows=7))
    assert len(chunks) > len(whole) and max(len(c) for c in chunks) <= 7
    pd.testing.assert_frame_equal(
        pd.concat(chunks, ignore_index=True), pd.concat(whole, ignore_index=True)
    )


# --- alerts ------------------------------------------------------------------------------


def _alert_traffic(served: Served) -> None:
    """Errors above 30 % in minutes -5..-3 and in the open minute 0; slow answers from -3 on."""
    rows = served.features.head(40)
    predicted = served.predict(rows)
    fast, slow = [3.0] * 40, [3.0] * 35 + [500.0] * 5
    with served.log() as log:
        for minute in range(-6, 1):
            _serve(log, minute, rows, predicted, latencies=slow if -3 <= minute < 0 else fast)
            if minute in (-5, -4, -3, 0):
                _fail(log, minute, [500] * 30)


RULES = ["error_rate > 0.3", "p99_ms > 100"]


def test_a_rule_fires_once_while_its_condition_lasts_and_resolves_when_it_clears(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = served.ws
    jsonl = tmp_path / "alerts.jsonl"
    monitor = _create(ws, reference=served.reference, alerts=RULES, files=[jsonl])
    _alert_traffic(served)
    with caplog.at_level(logging.INFO, logger="loopml"):
        result = windows.run(ws, "watch", since_s=390, now=NOW)
    assert len(result.windows) == 7
    seen = [(a.rule, a.state, a.window_start) for a in result.alerts]
    assert seen == [
        ("error_rate > 0.3", "firing", _ms(-5)),
        ("p99_ms > 100", "firing", _ms(-3)),
        ("error_rate > 0.3", "resolved", _ms(-2)),
    ]  # the open minute 0 is not judged yet
    firing = result.alerts[0]
    assert (firing.monitor, firing.deployment) == ("watch", DEPLOYMENT)
    assert firing.value == pytest.approx(30 / 70)
    assert firing.message == "watch: error_rate > 0.3 firing (error_rate = 0.428571)"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [f"alert {a.message}" for a in result.alerts[:2]]

    listed = monitors.alert_events(ws, "watch")
    assert [a.id for a in listed] == sorted((a.id for a in listed), reverse=True)
    assert listed == result.alerts[::-1]  # newest first
    assert monitors.alert_events(ws, "watch", limit=1) == listed[:1]
    states = monitors.alert_states(ws, monitor)
    assert {rule: (a.state, a.window_start) for rule, a in states.items()} == {
        "error_rate > 0.3": ("resolved", _ms(-2)),
        "p99_ms > 100": ("firing", _ms(-3)),
    }
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines == [a.to_dict() for a in result.alerts]

    # The same minutes again: windows recomputed, no alert raised twice.
    rerun = windows.run(ws, "watch", since_s=390, now=NOW)
    assert rerun.alerts == [] and len(rerun.windows) == 7
    assert monitors.alert_events(ws, "watch") == listed
    assert len(jsonl.read_text().splitlines()) == 3

    # A minute later the open window is complete: judged now, from where the last run stopped.
    later = windows.run(ws, "watch", now=NOW + timedelta(minutes=1))
    assert [w.start_ms for w in later.windows] == [_ms(0), _ms(1)]
    assert [(a.rule, a.state, a.window_start) for a in later.alerts] == [
        ("error_rate > 0.3", "firing", _ms(0)),
        ("p99_ms > 100", "resolved", _ms(0)),
    ]
    assert len(jsonl.read_text().splitlines()) == 5
    assert {r: a.state for r, a in monitors.alert_states(ws, monitor).items()} == {
        "error_rate > 0.3": "firing",
        "p99_ms > 100": "resolved",
    }


def test_a_rule_whose_metric_has_no_value_keeps_its_state(served: Served) -> None:
    ws = served.ws
    _create(ws, reference=served.reference, alerts=["accuracy < 0.6"])
    rows = served.features.head(50)
    wrong = 1 - served.predict(rows)
    with served.log() as log:
        _serve(log, -5, rows, served.predict(rows), labels=wrong)  # every label disagrees
        _serve(log, -4, rows, served.predict(rows))  # no labels: no accuracy to judge
        _serve(log, -3, rows, served.predict(rows), labels=wrong)
    result = windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    assert [(a.state, a.window_start, a.value) for a in result.alerts] == [("firing", _ms(-5), 0.0)]


def test_two_runs_at_once_never_store_a_transition_twice(served: Served, tmp_path: Path) -> None:
    ws = served.ws
    jsonl = tmp_path / "alerts.jsonl"
    _create(ws, reference=served.reference, alerts=RULES, files=[jsonl])
    _alert_traffic(served)
    start = threading.Barrier(2)
    results: list[windows.RunResult] = []
    problems: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(windows.run(ws, "watch", since_s=390, now=NOW))
        except BaseException as exc:  # handed to the test thread, which fails on it
            problems.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    raised = [a for result in results for a in result.alerts]
    assert len(raised) == 3
    assert len(monitors.alert_events(ws, "watch")) == 3
    assert len(jsonl.read_text().splitlines()) == 3
    assert len(monitors.windows(ws, "watch")) == 7


# --- webhooks ----------------------------------------------------------------------------


class _HookServer(ThreadingHTTPServer):
    """An HTTP server that answers POSTs with the codes queued in `codes`, then 200."""

    def __init__(self, codes: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.codes = codes
        self.bodies: list[bytes] = []
        self.answered: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Hook(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        code = self.server.codes.pop(0) if self.server.codes else 200
        self.server.answered.append(code)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean of the server's access log."""


@pytest.fixture
def hook() -> Iterator[_HookServer]:
    server = _HookServer([500])  # the first POST fails; a retry gets through
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_webhooks_get_each_alert_once_and_a_dead_one_does_not_stop_the_run(
    served: Served, hook: _HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    ws = served.ws
    dead = f"http://127.0.0.1:{_closed_port()}/hook"
    _create(ws, reference=served.reference, alerts=["error_rate > 0.3"], webhooks=[hook.url, dead])
    with served.log() as log:
        _serve(log, -2, served.features.head(10), served.predict(served.features.head(10)))
        _fail(log, -2, [500] * 10)
    with caplog.at_level(logging.ERROR, logger="loopml"):
        result = windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    [alert] = result.alerts
    assert hook.answered == [500, 200]
    assert hook.bodies[0] == hook.bodies[1]  # the retry sent the same event
    sent = json.loads(hook.bodies[1])
    assert sent["monitor"] == "watch" and sent["deployment"] == DEPLOYMENT
    assert (sent["rule"], sent["state"]) == ("error_rate > 0.3", "firing")
    assert sent["value"] == pytest.approx(0.5) and sent["window_start"] == _ms(-2)
    assert sent == alert.to_dict()
    # The closed port is retried, then reported; the run keeps what it computed.
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith(f"webhook {dead} did not take alert {alert.message!r}: ")
    assert len(monitors.windows(ws, "watch")) == 6
    assert monitors.alert_events(ws, "watch") == [alert]


def test_a_webhook_that_refuses_the_event_is_not_retried(
    hook: _HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    hook.codes[:] = [400]
    alert = Alert("watch", DEPLOYMENT, "error_rate > 0.3", "firing", 0.5, 0, "watch: firing", 1)
    notifier = WebhookNotifier(hook.url, tries=3, backoff_s=0.01)
    with caplog.at_level(logging.ERROR, logger="loopml"):
        notifier.send(alert)
        notifier.wait(timeout=10)
    assert hook.answered == [400]
    assert "HTTP 400" in caplog.records[-1].getMessage()
    closed = WebhookNotifier(f"http://127.0.0.1:{_closed_port()}/", tries=2, backoff_s=0.01)
    closed.send(alert)  # never raises: it reports on the log
    closed.wait(timeout=10)
    assert "did not take alert" in caplog.records[-1].getMessage()


# --- bad log data ------------------------------------------------------------------------


def test_an_unreadable_log_file_is_skipped_and_text_in_a_number_column_is_drift(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    ws = served.ws
    _create(ws, reference=served.reference)
    rows = served.features
    texts = rows.assign(a=np.where(rows["a"] > 0, "high", "low"))
    with served.log() as log:
        _serve(log, -2, rows, served.predict(rows))
        _serve(log, -1, texts, served.predict(rows))
    folder = ws.settings.dir / PREDICTIONS_DIR / f"deployment={DEPLOYMENT}" / "date=2024-05-01"
    garbage = folder / "part-0-garbage.parquet"
    garbage.write_text("this is not parquet\n")
    with caplog.at_level(logging.WARNING, logger="loopml"):
        result = windows.run(ws, "watch", since_s=SINCE_S, now=NOW)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped unreadable file" in m and str(garbage) in m for m in warned), warned
    by = _by_minute(result.windows)
    assert (by[-2].rows, by[-1].rows) == (400, 400)  # the other files were all read
    assert by[-2].metrics["drift_share"] == 0.0
    columns = {c["column"]: c for c in by[-1].details["drift"]["columns"]}
    assert columns["a"]["method"] == "type" and columns["a"]["drift"] is True
    assert "text" in columns["a"]["note"]
    assert by[-1].details["drift"]["drifted"] == ["a"]
    assert by[-1].metrics["drift_share"] == pytest.approx(1 / 3)


def test_a_window_left_open_by_one_run_is_completed_by_a_later_one(served: Served) -> None:
    ws = served.ws
    deployments.create(ws, "quiet", "churn@champion", host="127.0.0.1", port=8082)
    monitors.create(ws, "silence", deployment="quiet", reference=served.reference, window="1m")
    # Runs a window apart, each while its newest window is still open (as `--every` does).
    windows.run(ws, "silence", since_s=30, now=T0 + timedelta(seconds=30))
    windows.run(ws, "silence", now=T0 + timedelta(seconds=61))
    windows.run(ws, "silence", now=T0 + timedelta(seconds=121))
    stored = {w.start_ms: w.complete for w in monitors.windows(ws, "silence")}
    assert stored == {_ms(0): True, _ms(1): False, _ms(2): False}


def test_a_deployment_with_no_log_gives_empty_windows(served: Served) -> None:
    ws = served.ws
    deployments.create(ws, "quiet", "churn@champion", host="127.0.0.1", port=8082)
    monitors.create(ws, "silence", deployment="quiet", reference=served.reference, window="1m")
    with served.log() as log:  # the other deployment's traffic is not this one's
        _serve(log, -2, served.features.head(40), served.predict(served.features.head(40)))
    result = windows.run(ws, "silence", since_s=SINCE_S, now=NOW)
    assert [w.rows for w in result.windows] == [0] * 6
    assert all(w.metrics["requests"] == 0 for w in result.windows)
    assert all(w.metrics["drift_share"] is None for w in result.windows)
    assert len(monitors.windows(ws, "silence")) == 6

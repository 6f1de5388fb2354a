"""HTML reports of drift and of a monitor: summaries, tables, chart data, thresholds, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.core.workspace import Workspace
from loopml.monitoring.alerts import Alert
from loopml.monitoring.monitors import Monitor, Window
from loopml.monitoring.report import render_drift, render_monitor
from loopml.monitoring.table_drift import DriftReport, drift
from tests.charts import layout, traces

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
START = int(datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def lines(page: str, div_id: str) -> dict[float, str]:
    """Return the horizontal lines of a chart: their height -> dash style."""
    return {s["y0"]: s["line"]["dash"] for s in layout(page, div_id).get("shapes", [])}


def notes(page: str, div_id: str) -> list[str]:
    return [a["text"] for a in layout(page, div_id).get("annotations", [])]


def row(page: str, first_cell: str) -> tuple[str, list[str]]:
    """Return the class and the cells of the table row that starts with `first_cell`."""
    found = re.search(r'<tr class="([^"]*)"><td>' + re.escape(first_cell) + "</td>(.*?)</tr>", page)
    assert found, f"no row {first_cell!r} in the page"
    return found.group(1), [first_cell, *re.findall(r"<td>(.*?)</td>", found.group(2))]


def headings(page: str) -> list[str]:
    return re.findall(r'<section class="chart"><h3>(.*?)</h3>', page)


def assert_offline(page: str) -> None:
    assert not re.search(r"<script[^>]+src=", page)  # Plotly's JavaScript is embedded
    assert "<script src=" not in page and len(page) > 1_000_000
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def tables(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a reference and a current table: age and plan moved, the rest did not."""
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            HOSTILE: rng.normal(0, 1, n),
            "income": rng.normal(50, 10, n),
            "age": rng.normal(40, 5, n),
            "plan": rng.choice(["basic", "pro"], n, p=[0.8, 0.2]),
        }
    )
    current = pd.DataFrame(
        {
            "age": rng.normal(55, 5, n),  # reaches past the reference's largest age
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.3, 0.5, 0.2]),
            HOSTILE: rng.normal(0, 1, n),
        }
    )  # income is missing
    return reference, current


def test_a_drift_report_names_the_drifted_columns_and_draws_both_sides() -> None:
    report = drift(*tables())
    page = render_drift(report, reference="training", current="last week")

    assert_offline(page)
    summary = re.search(r'<p class="summary failed"><strong>DRIFT</strong>(.*?)</p>', page)
    assert summary, "the verdict is drift"
    assert "2 of 3 judged column(s) drifted (67%" in summary.group(1)
    assert ": age, plan." in summary.group(1)
    assert "last week: 400 rows; training: 400 rows" in summary.group(1)
    css, cells = row(page, "age")
    assert css == "error" and cells[2] == "ks" and cells[7] == "drifted"
    assert row(page, "plan")[0] == "error"
    css, cells = row(page, "income")
    assert css == "warning" and cells[7] == "no verdict"
    assert cells[8] == "missing from the current data" and cells[3] == ""
    assert row(page, ESCAPED)[1][7] == "stable"
    # Drifted columns are drawn first; a missing column still shows its reference.
    assert [h.split(" (")[0] for h in headings(page)] == ["age", "plan", ESCAPED, "income"]
    numeric = traces(page, "distribution-0")
    edges = report.distributions["age"]["edges"]
    assert [t["name"] for t in numeric] == ["training", "last week"]
    assert all(t["type"] == "bar" and len(t["x"]) == len(edges) - 1 for t in numeric)
    assert numeric[0]["x"][0] == pytest.approx((edges[0] + edges[1]) / 2)
    assert sum(numeric[0]["y"][i] * numeric[0]["width"][i] for i in range(len(edges) - 1)) == (
        pytest.approx(1.0, abs=0.01)
    )  # densities over the reference's bins
    assert f"beyond training&#x27;s {edges[0]:.4g} to {edges[-1]:.4g}" in headings(page)[0]
    categorical = traces(page, "distribution-1")
    assert categorical[0]["x"] == categorical[1]["x"] and set(categorical[0]["x"]) == {
        "basic",
        "pro",
        "team",
    }
    assert sum(categorical[1]["y"]) == pytest.approx(1.0)
    assert categorical[0]["y"][categorical[0]["x"].index("team")] == 0  # new in the current data
    assert layout(page, "distribution-1")["barmode"] == "group"


def test_names_from_the_data_are_escaped_everywhere() -> None:
    reference, current = tables()
    page = render_drift(drift(reference, current), title=HOSTILE, current=HOSTILE)

    assert HOSTILE not in page
    assert f"<title>{ESCAPED}</title>" in page and f"<h3>{ESCAPED} (ks)</h3>" in page
    # Plotly draws names as HTML-like text: they are escaped for it, then JSON-encoded.
    assert traces(page, "distribution-0")[1]["name"] == ESCAPED


def test_a_drift_report_with_no_verdict_and_many_columns() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({f"c{i}": rng.normal(0, 1, 200) for i in range(35)})
    page = render_drift(drift(reference, reference.head(10)))

    assert '<p class="summary"><strong>NO VERDICT</strong> no column could be judged' in page
    assert row(page, "c0")[1][8] == "too few values to judge (10 &lt; 30)"
    assert len(headings(page)) == 30 and "<p>5 more column(s) not drawn.</p>" in page


def window(index: int, rows: int, metrics: dict[str, float | None], report: DriftReport | None,
           prediction: DriftReport | None = None, *, complete: bool = True) -> Window:  # fmt: skip
    """Return window `index` minutes after START with the details a run stores."""
    details: dict[str, Any] = {}
    if report is not None and prediction is not None:
        details = {
            "drift": report.to_dict(),
            "prediction": prediction.to_dict()["columns"][0],
            "distributions": {**report.distributions, **prediction.distributions},
            "versions": {"churn/3": {"requests": float(rows), "error_rate": 0.0, "p99_ms": 12.0}},
            "baseline": {
                "version": "churn/3",
                "evaluation": "e" * 32,
                "dataset": "churn@v2",
                "metrics": {"accuracy": 0.91, "f1": 0.88},
            },
        }
    start = START + index * MINUTE
    return Window("churn-watch", start, start + MINUTE, rows, complete, metrics, details, start)


def monitored() -> tuple[Monitor, list[Window], list[Alert]]:
    """Return a monitor, four windows (one empty, the last in progress) and its alert events."""
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"age": rng.normal(40, 5, 300), "plan": rng.choice(["a", "b"], 300)})
    predicted = pd.DataFrame({"prediction": rng.choice([0, 1], 300)})
    calm = reference.sample(100, random_state=1)
    moved = calm.assign(age=calm["age"] + 15)
    reports = [
        (drift(reference, calm), drift(predicted, predicted.head(100))),
        (drift(reference, moved), drift(predicted, predicted.assign(prediction=1).head(100))),
    ]
    operational = {"requests": 100.0, "error_rate": 0.0, "client_error_rate": 0.01}
    operational["labelled_rows"] = 80.0
    windows = []
    for i, (rows, which, accuracy) in enumerate([(100, 0, 0.9), (0, None, None), (100, 1, 0.7)]):
        metrics: dict[str, float | None] = {"rows": float(rows), **operational}
        metrics |= {"p50_ms": 4.0 + i, "p95_ms": 9.0 + i, "p99_ms": 20.0 + i}
        metrics |= {"accuracy": accuracy, "f1": None if accuracy is None else accuracy - 0.05}
        inputs, outputs = reports[which] if which is not None else (None, None)
        if inputs is not None and outputs is not None:
            metrics |= {f"drift.{c.column}": c.score.statistic for c in inputs.columns}
            metrics["drift_share"] = inputs.share
            metrics["prediction_drift"] = outputs.columns[0].score.statistic
        else:  # what an empty window stores
            metrics |= {"requests": 0.0, "error_rate": None, "drift_share": None}
            metrics |= {"drift.age": None, "drift.plan": None, "p99_ms": None}
            metrics["labelled_rows"] = 0.0
        windows.append(window(i, rows, metrics, inputs, outputs))
    windows.append(window(3, 5, {"rows": 5.0, "requests": 5.0}, None, complete=False))
    rules = ["drift_share > 0.3", "drift.age > 0.2", "accuracy < 0.8", "p99_ms > 50"]
    monitor = Monitor(
        1, "churn-watch", "churn", HOSTILE, "churn/3", 60,
        {"columns": ["age", "plan"], "rules": rules, "drift_share": 0.5, "task": "classification"},
        "ana", START, START,
    )  # fmt: skip
    alerts = [
        Alert(monitor.name, "churn", "drift_share > 0.3", "firing", 0.5, START, "share up", 10),
        Alert(monitor.name, "churn", "drift_share > 0.3", "resolved", 0.0, START, "calm", 20),
        Alert(monitor.name, "churn", "accuracy < 0.8", "firing", 0.7, START, HOSTILE, 30),
    ]
    return monitor, windows, alerts[::-1]  # newest first, as the store returns them


def test_a_monitor_report_charts_every_window_with_its_rules() -> None:
    monitor, windows, alerts = monitored()
    page = render_monitor(monitor, windows, alerts)

    assert_offline(page)
    assert "<title>LoopML monitor churn-watch</title>" in page
    assert f"deployment <b>churn</b> (model churn/3) against reference {ESCAPED}" in page
    assert "in windows of 1m; 4 window(s) from 2025-03-01 12:00 UTC" in page
    # The latest event of each rule is its state now: drift resolved, accuracy firing.
    assert "1 of 4 rule(s) firing: accuracy &lt; 0.8." in page
    assert row(page, "accuracy &lt; 0.8")[0] == "error"
    assert row(page, "drift_share &gt; 0.3")[1][1] == "resolved"
    assert row(page, "p99_ms &gt; 50")[1][1] == "no event yet"
    assert "Latest complete window (2025-03-01 12:02 UTC)" in page

    share = traces(page, "drift-share")
    assert share[0]["x"][:2] == ["2025-03-01 12:00:00", "2025-03-01 12:01:00"]
    assert share[0]["y"][1] is None  # the empty window is a gap
    assert share[0]["y"][2] == pytest.approx(0.5)
    assert lines(page, "drift-share") == {0.3: "dash", 0.5: "dot"}
    assert "alert: drift_share &gt; 0.3" in notes(page, "drift-share")
    columns = traces(page, "drift-columns")
    assert [t["name"] for t in columns] == ["age", "plan"]
    assert columns[0]["y"][2] > 0.5 > columns[0]["y"][0]  # age moved in the third window
    assert lines(page, "drift-columns") == {0.2: "dash"}
    assert len(traces(page, "prediction-drift")[0]["y"]) == 4
    performance = traces(page, "performance")
    assert [t["name"] for t in performance] == ["accuracy", "f1"]
    assert performance[0]["y"] == [0.9, None, 0.7, None]
    assert lines(page, "performance") == {0.8: "dash", 0.91: "dot", 0.88: "dot"}
    assert "baseline accuracy (churn/3)" in notes(page, "performance")
    requests = traces(page, "requests")
    assert requests[0]["y"] == [100, 0, 100, 5]  # no rows is no requests: zero, not a gap
    assert requests[1]["name"] == "labelled" and requests[1]["y"][1] is None
    assert [t["name"] for t in traces(page, "latency")] == ["p50", "p95", "p99"]
    assert lines(page, "latency") == {50: "dash"}
    errors = traces(page, "error-rate")
    assert errors[0]["y"][1] is None and errors[1]["y"][1] is None

    # The in-progress window has rows but no details: the latest with them is drawn.
    assert "<h2>Latest window with rows: 2025-03-01 12:02 UTC to 2025-03-01 12:03 UTC</h2>" in page
    assert row(page, "age")[0] == "error" and row(page, "prediction")[1][1] == "categorical"
    assert row(page, "churn/3")[1][1:3] == ["100", "0.0%"]
    drawn = headings(page)
    assert drawn[drawn.index("Latency") + 1 :][0].startswith("age (ks, drifted)")
    assert any(h.startswith("prediction (") for h in drawn)

    events = re.findall(r"<td>(firing|resolved)</td><td>[^<]*</td><td>([^<]*)</td></tr>", page)
    assert [message for _, message in events[-3:]] == [ESCAPED, "calm", "share up"]
    assert HOSTILE not in page


def test_a_monitor_with_no_windows_and_no_alerts_says_how_to_compute_them() -> None:
    monitor, _, _ = monitored()
    page = render_monitor(monitor, [], [])

    assert_offline(page)
    assert "No windows yet: compute them with <code>loopml monitor run churn-watch</code>" in page
    assert "<p>No alert events yet.</p>" in page
    assert "0 of 4 rule(s) firing" in page and "Plotly.newPlot" not in page


def test_the_report_of_a_monitor_run_over_the_prediction_log(sqlite_ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    import loopml
    from loopml.deploy import deployments
    from loopml.monitoring import monitors, windows
    from loopml.serving.prediction_log import PredictionLog
    from loopml.serving.server import PREDICTIONS_DIR

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x1": rng.normal(0, 1, 300), "x2": rng.normal(5, 2, 300)})
    target = (frame["x1"] + rng.normal(0, 0.5, 300) > 0).astype(int)
    model = LogisticRegression().fit(frame, target)
    with loopml.start_run():
        loopml.log_model(model, name="clf", input_example=frame.head(3))
    deployments.create(sqlite_ws, "clf", "models:/clf/1", host="127.0.0.1", port=8080)
    monitors.create(
        sqlite_ws, "clf-watch", deployment="clf", reference=frame.assign(y=target),
        window="1m", alerts=["drift_share > 0.3", "drift.x1 > 0.3"],
    )  # fmt: skip
    log = PredictionLog(sqlite_ws.settings.dir / PREDICTIONS_DIR, "clf")
    now = datetime(2025, 3, 1, 12, 3, tzinfo=UTC)
    for minute in range(3):
        rows = frame.sample(60, random_state=minute).reset_index(drop=True)
        if minute == 2:
            rows["x1"] += 2
        predicted = model.predict(rows)
        for i in range(len(rows)):
            ts = now - timedelta(minutes=3 - minute) + timedelta(seconds=i * 0.5)
            log.record(
                request_id=f"{minute}-{i}", inputs=rows.iloc[[i]],
                outputs=predicted[i : i + 1], model_version="clf/1", latency_ms=5.0, ts=ts,
            )  # fmt: skip
    log.close()
    # Asked a few seconds after the last window ended, once the log has settled.
    windows.run(sqlite_ws, "clf-watch", since_s=180, until=now, now=now + timedelta(seconds=5))
    monitor = monitors.get(sqlite_ws, "clf-watch")
    stored = monitors.windows(sqlite_ws, "clf-watch")
    page = render_monitor(monitor, stored, monitors.alert_events(sqlite_ws, "clf-watch"))

    assert [w.rows for w in stored] == [60, 60, 60]
    assert "2 of 2 rule(s) firing: drift_share &gt; 0.3, drift.x1 &gt; 0.3." in page
    x1 = next(t for t in traces(page, "drift-columns") if t["name"] == "x1")
    assert x1["y"][2] > 0.3 > x1["y"][0]
    assert lines(page, "drift-columns") == {0.3: "dash"}
    assert row(page, "x1")[0] == "error"
    assert any(h.startswith("x1 (ks, drifted)") for h in headings(page))
    assert "<h3>Performance on labelled predictions</h3><p>No window has a value yet.</p>" in page

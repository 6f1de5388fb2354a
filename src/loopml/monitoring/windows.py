"""Computing a monitor's windows from the prediction log, storing them, and raising alerts.

Windows are aligned to whole multiples of the window length since the epoch, so two runs over
the same hours compute the same windows (a rerun replaces them). The log is read in chunks and
each window keeps only sketches and counters, so a window of millions of rows costs the same
memory as one of a thousand. Alert states are read and written in the same transaction as the
windows, under a lock on the monitor's row, so two runs at once never send an alert twice.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.monitoring import monitors
from loopml.monitoring.alerts import Alert, WebhookNotifier, notifier, transitions
from loopml.monitoring.detectors import MIN_ROWS
from loopml.monitoring.monitors import PREDICTION, Monitor, Window
from loopml.monitoring.performance import Operational, Quality
from loopml.monitoring.sketch import GRID
from loopml.monitoring.table_drift import DriftReport, Reference, Sample

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("loopml")

DEFAULT_SINCE_S = 24 * 3600  # a first run looks back a day
MAX_WINDOWS = 10_000  # one run computes at most this many windows
LOG_DELAY_S = 2.5  # the prediction log writes within its flush interval (1 s) and a margin
SLICE_BYTES = 256 * 2**20  # the sketches of one slice of windows stay under this
SKETCH_BYTES = 3 * 8 * (GRID + 1)  # a numeric column's counts, sums and ties, per window
_W = db.monitor_windows
_A = db.alert_events
_M = db.monitors


@dataclass
class RunResult:
    """What one run computed: the windows, and the alert events it raised."""

    windows: list[Window] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class _State:
    """The sketches and counters of one window while the log is read."""

    def __init__(self, inputs: Reference, outputs: Reference, task: str, min_rows: int) -> None:
        self.rows = 0
        self.inputs: Sample = inputs.sample()
        self.outputs: Sample = outputs.sample()
        self.operational = Operational()
        self.quality = Quality(task, min_rows=min_rows)
        self.labelled_versions: dict[str, int] = {}

    def update(self, chunk: pd.DataFrame, labels: pd.Series) -> None:
        self.rows += len(chunk)
        self.operational.update(chunk)
        answered = chunk[chunk["status"] == 200]
        if answered.empty:
            return
        features = {c: c.removeprefix("in.") for c in answered.columns if c.startswith("in.")}
        self.inputs.update(answered[list(features)].rename(columns=features))
        output = _output_column(answered)
        if output is None:
            return
        self.outputs.update(answered[[output]].rename(columns={output: PREDICTION}))
        if labels.empty:
            return
        truth = answered["request_id"].map(labels)
        held = truth.notna()
        if held.any():
            self.quality.update(truth[held], answered.loc[held, output])
            for version, n in answered.loc[held, "model_version"].value_counts().items():
                key = str(version)
                self.labelled_versions[key] = self.labelled_versions.get(key, 0) + int(n)


def run(
    ws: Workspace,
    name: str,
    *,
    since_s: float | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    progress: bool = False,
) -> RunResult:
    """Compute monitor `name`'s windows from `since_s` seconds ago (else from the end of its
    last complete window, else a day back) up to `until` (else now), store them, raise alerts."""
    monitor = monitors.get(ws, name)
    current = now or datetime.now(UTC)
    end = until or current
    if end.tzinfo is None:
        raise InvalidInput(f"until must be a timezone-aware datetime, not {end!r}")
    width = monitor.window_s * 1000
    end_ms = int(end.timestamp() * 1000)
    start_ms = _start(ws, monitor, since_s, end_ms)
    count = -(-(end_ms - start_ms) // width)  # counted before any window is made
    if count > MAX_WINDOWS:
        raise InvalidInput(
            f"{count} windows of {monitor.window_s}s is more than one run computes "
            f"({MAX_WINDOWS}); run with a shorter --since"
        )
    if count <= 0:
        return RunResult()
    from loopml.serving.prediction_log import read_feedback
    from loopml.serving.server import PREDICTIONS_DIR

    inputs, outputs = monitors.profile(ws, monitor)
    # Feedback comes by request id whenever it arrives: read once, for every slice.
    since = datetime.fromtimestamp(start_ms / 1000, UTC)
    labels = read_feedback(ws.settings.dir / PREDICTIONS_DIR, monitor.deployment, since=since)
    # Sketches of a window with rows take memory by column: a long run goes slice by slice.
    per_window = max(1, len(inputs.columns_)) * SKETCH_BYTES
    step = max(1, min(count, SLICE_BYTES // per_window)) * width
    found = RunResult()
    for first in range(start_ms, end_ms, step):
        last = min(first + step, end_ms)
        part = _slice(
            ws, monitor, (inputs, outputs, labels), (first, last), current, progress=progress
        )
        found.windows += part.windows
        found.alerts += part.alerts
    return found


def _slice(
    ws: Workspace,
    monitor: Monitor,
    references: tuple[Reference, Reference, pd.Series],
    span: tuple[int, int],
    current: datetime,
    *,
    progress: bool,
) -> RunResult:
    """Compute, store and judge the windows starting in `span` (whole windows, in ms)."""
    from loopml.core.progress import file_progress
    from loopml.serving.prediction_log import iter_predictions, log_files
    from loopml.serving.server import PREDICTIONS_DIR

    (start_ms, end_ms), width = span, monitor.window_s * 1000
    inputs, outputs, labels = references
    task = monitor.settings["task"]
    min_rows = int(monitor.settings.get("min_rows", MIN_ROWS))
    states: dict[int, _State] = {}  # made for windows with rows only
    root = ws.settings.dir / PREDICTIONS_DIR
    since = datetime.fromtimestamp(start_ms / 1000, UTC)
    until = datetime.fromtimestamp(end_ms / 1000, UTC)
    files = log_files(root, monitor.deployment, since=since, until=until)
    size = sum(path.stat().st_size for path in files)
    with (
        file_progress("reading the prediction log", len(files), size)
        if progress
        else (nullcontext(lambda _files, _bytes: None)) as advance
    ):
        chunks = iter_predictions(
            root,
            monitor.deployment,
            since=since,
            until=until,
            on_file=lambda path: advance(1, path.stat().st_size),
        )
        for chunk in chunks:
            ms = chunk["ts"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
            slots = start_ms + (ms - start_ms) // width * width
            for slot in np.unique(slots):
                state = states.get(int(slot))
                if state is None:
                    state = states[int(slot)] = _State(inputs, outputs, task, min_rows)
                state.update(chunk[slots == slot], labels)
    # Rows reach the log within its flush interval: until that has passed, a window is open.
    settled_ms = int(current.timestamp() * 1000) - int(LOG_DELAY_S * 1000)
    computed = now_ms()
    empty = _State(inputs, outputs, task, min_rows)
    results = [
        _result(
            ws,
            monitor,
            (s, min(s + width, end_ms)),
            states.get(s, empty),
            settled_ms=settled_ms,
            computed=computed,
        )
        for s in range(start_ms, end_ms, width)
    ]
    alerts = _store(ws, monitor, results, computed)
    _notify(monitor, alerts)
    return RunResult(results, alerts)


def _start(ws: Workspace, monitor: Monitor, since_s: float | None, end_ms: int) -> int:
    width = monitor.window_s * 1000
    if since_s is not None:
        if not isinstance(since_s, int | float) or not math.isfinite(since_s) or since_s <= 0:
            raise InvalidInput(f"since must be a positive duration, not {since_s!r}")
        return (end_ms - int(since_s * 1000)) // width * width
    resume = monitors.resume_point(ws, monitor)
    begin = end_ms - DEFAULT_SINCE_S * 1000 if resume is None else resume
    # Without --since a run never refuses: after a long gap it takes the newest windows.
    oldest = end_ms - MAX_WINDOWS * width + width
    if begin < oldest and resume is not None:
        log.warning(
            "monitor %s: %d windows since its last run; computing the newest %d "
            "(run with --since to compute older ones)",
            monitor.name,
            (end_ms - begin) // width,
            MAX_WINDOWS,
        )
    return max(begin, oldest) // width * width


def _result(
    ws: Workspace,
    monitor: Monitor,
    span: tuple[int, int],
    state: _State,
    *,
    settled_ms: int,
    computed: int,
) -> Window:
    start, end = span
    inputs = state.inputs.reference.score(state.inputs)
    outputs = state.outputs.reference.score(state.outputs)
    operational = state.operational.metrics()
    quality = state.quality.metrics()
    metrics: dict[str, float | None] = {"rows": float(state.rows), **operational}
    metrics.update(_drift_metrics(inputs))
    prediction = outputs.columns[0] if outputs.columns else None
    if prediction is not None:
        metrics["prediction_drift"] = prediction.score.statistic
        drifted = prediction.score.drift
        metrics["prediction_drifted"] = None if drifted is None else float(drifted)
    metrics["labelled_rows"] = float(state.quality.rows)
    metrics.update(quality)
    baseline = _baseline(ws, monitor, state.labelled_versions)
    for key, value in quality.items():
        before = baseline.get("metrics", {}).get(key)
        metrics[f"{key}_change"] = None if value is None or before is None else value - before
    details = {
        "drift": inputs.to_dict(),
        "prediction": None if prediction is None else prediction.to_dict(),
        # Charts of an empty window would only repeat the reference: not stored.
        "distributions": _compact({**inputs.distributions, **outputs.distributions})
        if state.rows
        else {},
        "versions": state.operational.by_version(),
        "baseline": baseline,
    }
    return Window(
        monitor=monitor.name,
        start_ms=start,
        end_ms=end,
        rows=state.rows,
        complete=start + monitor.window_s * 1000 <= settled_ms,
        metrics={k: _finite(v) for k, v in metrics.items()},
        details=details,
        computed_at=computed,
    )


def _drift_metrics(report: DriftReport) -> dict[str, float | None]:
    share = report.share
    out: dict[str, float | None] = {
        "drift_share": share,
        "drifted_columns": float(len(report.drifted)) if share is not None else None,
        "dataset_drift": None if report.dataset_drift is None else float(report.dataset_drift),
    }
    for column in report.columns:
        out[f"drift.{column.column}"] = column.score.statistic
    return out


def _baseline(ws: Workspace, monitor: Monitor, versions: dict[str, int]) -> dict[str, Any]:
    """Return the latest evaluation of the version that answered most labelled rows."""
    from loopml.evaluation.records import of_model

    model, _, number = monitor.model.partition("/")
    # The server logs the number ("3"); a log written by hand may say "churn/3".
    version = max(versions, key=lambda v: versions[v]).rpartition("/")[2] if versions else number
    if not version.isdigit():
        return {}
    found = of_model(ws, model, int(version))
    if not found:
        return {"version": f"{model}/{version}"}
    latest = found[0]
    return {
        "version": f"{model}/{version}",
        "evaluation": latest.id,
        "dataset": latest.dataset,
        "metrics": {k: v for k, v in latest.metrics.items() if v is not None},
    }


def _store(ws: Workspace, monitor: Monitor, results: list[Window], now: int) -> list[Alert]:
    """Write the windows and the alert events they cause in one transaction."""
    from sqlalchemy import delete, insert, select, update

    with ws.store.write() as conn:
        # Taking the row's lock first serialises two runs of one monitor (PostgreSQL; SQLite's
        # write transaction is already exclusive), so each reads the states the other left.
        conn.execute(update(_M).where(_M.c.id == monitor.id).values(updated_at=now))
        judged = conn.execute(select(_M.c.judged_until).where(_M.c.id == monitor.id)).scalar()
        if judged is None:
            raise NotFound(f"monitor {monitor.name!r} was deleted while it ran; nothing stored")
        starts = [w.start_ms for w in results]
        conn.execute(delete(_W).where(_W.c.monitor_id == monitor.id, _W.c.start_ms.in_(starts)))
        conn.execute(
            insert(_W),
            [
                {
                    "monitor_id": monitor.id,
                    "start_ms": w.start_ms,
                    "end_ms": w.end_ms,
                    "rows": w.rows,
                    "complete": w.complete,
                    "metrics": json.dumps(w.metrics, allow_nan=False),
                    "details": json.dumps(w.details, allow_nan=False, default=_plain),
                    "computed_at": w.computed_at,
                }
                for w in results
            ],
        )
        latest = monitors.latest_alerts(conn, monitor)
        states = {rule: alert.state for rule, alert in latest.items()}
        # Rules judge complete windows, each once: a rerun over judged hours raises nothing.
        fresh = [w for w in results if w.complete and w.start_ms >= judged]
        pairs = [(w.start_ms, w.metrics) for w in fresh]
        events = transitions(monitor, states, pairs, now)
        if fresh:
            done = max(w.end_ms for w in fresh)
            conn.execute(update(_M).where(_M.c.id == monitor.id).values(judged_until=done))
        for i, event in enumerate(events):
            key = conn.execute(
                insert(_A).values(
                    monitor_id=monitor.id,
                    rule=event.rule,
                    state=event.state,
                    value=event.value,
                    window_start=event.window_start,
                    message=event.message,
                    created_at=event.created_at,
                )
            ).inserted_primary_key
            assert key is not None
            events[i] = replace(event, id=key[0])
    return events


def _notify(monitor: Monitor, alerts: list[Alert]) -> None:
    if not alerts:
        return
    senders = [notifier(settings) for settings in monitor.settings["notifiers"]]
    for alert in alerts:
        for sender in senders:
            sender.send(alert)
    for sender in senders:
        if isinstance(sender, WebhookNotifier):
            sender.wait()


def _compact(value: Any) -> Any:
    """Return `value` with its floats to 4 significant digits: a chart needs no more."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.4g}")
    return value


def _output_column(frame: pd.DataFrame) -> str | None:
    if "out" in frame.columns:
        return "out"
    named = [c for c in frame.columns if str(c).startswith("out.")]
    return named[0] if named else None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


__all__ = ["RunResult", "run"]

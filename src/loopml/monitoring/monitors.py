"""Monitors in the store: what watches a deployment, each window's results and alert events.

A monitor is created from a deployment and a reference table. The reference is profiled once
(grids of quantiles, category counts) for the columns the deployed model takes, and for the
model's own outputs on it (prediction drift); later windows are compared with that profile
without reading the reference again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.durations import seconds
from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.monitoring.alerts import (
    Alert,
    FileNotifier,
    LogNotifier,
    Notifier,
    Rule,
    WebhookNotifier,
)
from loopml.monitoring.detectors import MIN_ROWS
from loopml.monitoring.performance import CLASSIFICATION, REGRESSION, TASKS
from loopml.monitoring.table_drift import DRIFT_SHARE, Reference
from loopml.registry.uris import check_name
from loopml.tracking.current import current_user

_M = db.monitors
_W = db.monitor_windows
_A = db.alert_events
MAX_WINDOW_S = 366 * 86400
PREDICTION = "prediction"  # the name the model's output goes by in a monitor's results


@dataclass(frozen=True)
class Monitor:
    """A monitor's settings (its reference profile is read apart, by `profile`)."""

    id: int
    name: str
    deployment: str
    reference: str
    model: str
    window_s: int
    settings: dict[str, Any]
    user: str
    created_at: int
    updated_at: int

    @property
    def rules(self) -> list[Rule]:
        """Return the alert rules."""
        return [Rule.parse(text) for text in self.settings["rules"]]

    @property
    def columns(self) -> list[str]:
        """Return the input columns watched for drift."""
        return list(self.settings["columns"])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "deployment": self.deployment,
            "reference": self.reference,
            "model": self.model,
            "window_s": self.window_s,
            **self.settings,
            "user": self.user,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Window:
    """One window's stored results."""

    monitor: str
    start_ms: int
    end_ms: int
    rows: int
    complete: bool
    metrics: dict[str, float | None]
    details: dict[str, Any]
    computed_at: int

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """Return a JSON-able dict (with the per-column details if asked)."""
        out = {
            "monitor": self.monitor,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "rows": self.rows,
            "complete": self.complete,
            "metrics": self.metrics,
            "computed_at": self.computed_at,
        }
        if details:
            out["details"] = self.details
        return out


def create(
    ws: Workspace,
    name: str,
    *,
    deployment: str,
    reference: Any,
    window: str | float = "1h",
    alerts: list[str] | tuple[str, ...] = (),
    webhooks: list[str] | tuple[str, ...] = (),
    files: list[str | Path] | tuple[str | Path, ...] = (),
    columns: list[str] | None = None,
    drift_share: float = DRIFT_SHARE,
    min_rows: int = MIN_ROWS,
    task: str | None = None,
    file: str | None = None,
) -> Monitor:
    """Record monitor `name` of `deployment`, profiling `reference` (a dataset ref, a CSV or
    Parquet path, or a DataFrame) for the columns its serving model takes."""
    import pandas as pd

    from loopml.deploy.deployments import get as get_deployment
    from loopml.evaluation.records import of_model
    from loopml.evaluation.scoring import load_model, read_table

    check_name(name, "monitor name")
    window_s = _window_seconds(window)
    if task is not None and task not in TASKS:
        raise InvalidInput(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    notifiers: list[Notifier] = [LogNotifier()]
    notifiers += [WebhookNotifier(url) for url in webhooks]
    notifiers += [FileNotifier.checked(path) for path in files]
    found = get_deployment(ws, deployment)
    stable = found.routing.stable
    model = load_model(ws, f"models:/{stable}")
    table = read_table(ws, reference, file=file)
    frame = table.frame
    taken, features = _features(model.loaded, frame, columns)
    inputs = Reference(columns=features, drift_share=drift_share, min_rows=min_rows).fit(frame)
    predicted = _outputs(model.loaded.predict(frame[taken]))
    outputs = Reference(min_rows=min_rows).fit(pd.DataFrame({PREDICTION: predicted}))
    rules = [str(Rule.parse(text, features)) for text in alerts]
    if task is None:
        evaluations = of_model(ws, model.name or "", model.version)
        task = evaluations[0].task if evaluations else _task_of(predicted)
    settings = {
        "columns": features,
        "rules": rules,
        "notifiers": [n.to_dict() for n in notifiers],
        "task": task if task in TASKS else CLASSIFICATION,
        "drift_share": inputs.drift_share,
        "min_rows": min_rows,
    }
    profile = {"inputs": inputs.to_dict(), "outputs": outputs.to_dict()}
    now = now_ms()
    try:
        with ws.store.write() as conn:
            conn.execute(
                insert(_M).values(
                    name=name,
                    deployment=deployment,
                    reference=table.label if file is None else f"{table.label} ({file})",
                    model=stable,
                    window_s=window_s,
                    settings=json.dumps(settings, allow_nan=False),
                    profile=json.dumps(profile, allow_nan=False),
                    judged_until=0,
                    user=current_user(),
                    created_at=now,
                    updated_at=now,
                )
            )
    except SQLIntegrityError:
        raise AlreadyExists(
            f"monitor {name!r} exists; delete it first (loopml monitor delete {name}) or pick "
            "another name"
        ) from None
    return get(ws, name)


def get(ws: Workspace, name: str) -> Monitor:
    """Return monitor `name`, or raise NotFound listing the monitors there are."""
    with ws.store.read() as conn:
        row = conn.execute(_columns().where(_M.c.name == name)).mappings().first()
        if row is None:
            known = conn.execute(select(_M.c.name).order_by(_M.c.name)).scalars().all()
    if row is None:
        listed = ", ".join(known) if known else "none yet (loopml monitor create)"
        raise NotFound(f"no monitor {name!r}; monitors: {listed}")
    return _monitor(row)


def list_all(ws: Workspace, *, deployment: str | None = None) -> list[Monitor]:
    """Return every monitor (of one deployment), by name."""
    query = _columns().order_by(_M.c.name)
    if deployment is not None:
        query = query.where(_M.c.deployment == deployment)
    with ws.store.read() as conn:
        return [_monitor(row) for row in conn.execute(query).mappings().all()]


def profile(ws: Workspace, monitor: Monitor) -> tuple[Reference, Reference]:
    """Return the fitted references of a monitor's inputs and of its model's outputs."""
    with ws.store.read() as conn:
        text = conn.execute(select(_M.c.profile).where(_M.c.id == monitor.id)).scalar()
    if text is None:
        raise NotFound(f"monitor {monitor.name!r} was deleted")
    data = json.loads(text)
    return Reference.from_dict(data["inputs"]), Reference.from_dict(data["outputs"])


def delete_monitor(ws: Workspace, name: str) -> None:
    """Delete monitor `name` with its windows and alert events."""
    monitor = get(ws, name)
    with ws.store.write() as conn:
        conn.execute(delete(_A).where(_A.c.monitor_id == monitor.id))
        conn.execute(delete(_W).where(_W.c.monitor_id == monitor.id))
        conn.execute(delete(_M).where(_M.c.id == monitor.id))


def windows(
    ws: Workspace, name: str, *, limit: int | None = None, details: bool = True
) -> list[Window]:
    """Return monitor `name`'s stored windows, oldest first (the newest `limit` of them)."""
    monitor = get(ws, name)
    wanted = [_W.c.start_ms, _W.c.end_ms, _W.c.rows, _W.c.complete, _W.c.metrics]
    wanted += [_W.c.computed_at] + ([_W.c.details] if details else [])
    query = select(*wanted).where(_W.c.monitor_id == monitor.id).order_by(_W.c.start_ms.desc())
    if limit is not None:
        query = query.limit(limit)
    with ws.store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [_window(name, row) for row in reversed(rows)]


def resume_point(ws: Workspace, monitor: Monitor) -> int | None:
    """Return where a run without --since starts (epoch ms): the end of the newest complete
    window, since every window after it was still open when last computed (a run often
    ends before its previous window has settled); else the oldest stored window's start;
    None before any run."""
    mine = _W.c.monitor_id == monitor.id
    with ws.store.read() as conn:
        done = conn.execute(select(func.max(_W.c.end_ms)).where(mine, _W.c.complete)).scalar()
        if done is None:
            done = conn.execute(select(func.min(_W.c.start_ms)).where(mine)).scalar()
    return None if done is None else int(done)


def alert_events(
    ws: Workspace, name: str | None = None, *, limit: int | None = None
) -> list[Alert]:
    """Return the alert events (of monitor `name`), newest first."""
    query = select(_A, _M.c.name.label("monitor"), _M.c.deployment).join(
        _M, _M.c.id == _A.c.monitor_id
    )
    if name is not None:
        query = query.where(_A.c.monitor_id == get(ws, name).id)
    query = query.order_by(_A.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with ws.store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [_alert(row) for row in rows]


def alert_states(ws: Workspace, monitor: Monitor) -> dict[str, Alert]:
    """Return the latest event of each rule of `monitor` (its state now)."""
    with ws.store.read() as conn:
        return latest_alerts(conn, monitor)


def latest_alerts(conn: Any, monitor: Monitor) -> dict[str, Alert]:
    """Return the latest event of each rule, read on `conn` (inside a caller's transaction)."""
    rows = conn.execute(
        select(_A, _M.c.name.label("monitor"), _M.c.deployment)
        .join(_M, _M.c.id == _A.c.monitor_id)
        .where(_A.c.monitor_id == monitor.id)
        .order_by(_A.c.id)
    ).mappings()
    return {row["rule"]: _alert(row) for row in rows}


def _columns() -> Any:
    return select(*(c for c in _M.c if c.name != "profile"))


def _monitor(row: RowMapping) -> Monitor:
    return Monitor(
        id=row["id"],
        name=row["name"],
        deployment=row["deployment"],
        reference=row["reference"],
        model=row["model"],
        window_s=row["window_s"],
        settings=json.loads(row["settings"]),
        user=row["user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _window(name: str, row: RowMapping) -> Window:
    details = row.get("details")
    return Window(
        monitor=name,
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        rows=row["rows"],
        complete=bool(row["complete"]),
        metrics=json.loads(row["metrics"]),
        details=json.loads(details) if details else {},
        computed_at=row["computed_at"],
    )


def _alert(row: RowMapping) -> Alert:
    return Alert(
        monitor=row["monitor"],
        deployment=row["deployment"],
        rule=row["rule"],
        state=row["state"],
        value=row["value"],
        window_start=row["window_start"],
        message=row["message"],
        created_at=row["created_at"],
        id=row["id"],
    )


def _window_seconds(window: object) -> int:
    """Return a window length in whole seconds, from "1h", "15m" or a number of seconds."""
    if isinstance(window, bool) or not isinstance(window, str | int | float):
        raise InvalidInput(f"window must be a duration like '1h' or '15m', not {window!r}")
    value = seconds(window) if isinstance(window, str) else float(window)
    if not value >= 1 or value != int(value):
        raise InvalidInput(f"window must be whole seconds, at least 1s, not {window!r}")
    if value > MAX_WINDOW_S:
        raise InvalidInput(f"window must be at most 366d, not {window!r}")
    return int(value)


def _features(loaded: Any, frame: Any, columns: list[str] | None) -> tuple[list[str], list[str]]:
    """Return the columns the model takes and those to watch (`columns`, else all it takes)."""
    names = [str(c) for c in frame.columns]
    signature = loaded.package.signature
    taken = None
    if signature is not None and signature.kind == "dataframe":
        taken = [str(spec.name) for spec in signature.inputs]
    if taken is None and columns is None:
        raise InvalidInput(
            "the deployed model has no column signature; name the columns to watch (--column)"
        )
    watched = list(columns) if columns is not None else list(taken or [])
    if not watched:
        raise InvalidInput("name at least one column to watch (--column)")
    if taken is not None:
        # The prediction log holds what the model takes: nothing else can be watched.
        other = [c for c in watched if c not in taken]
        if other:
            raise InvalidInput(
                f"column(s) {', '.join(map(repr, other))} are not inputs of the deployed model, "
                f"so the prediction log does not hold them; it takes {', '.join(taken)}"
            )
    needed = taken if taken is not None else watched
    missing = [c for c in needed if c not in names]
    if missing:
        raise InvalidInput(
            f"the reference lacks column(s) {', '.join(map(repr, missing))} the model takes; "
            f"it has {', '.join(names)}"
        )
    return needed, watched


def _outputs(predicted: Any) -> Any:
    """Return a model's predictions as one 1-d array (the first output of several)."""
    import numpy as np
    import pandas as pd

    if isinstance(predicted, pd.DataFrame):
        return predicted.iloc[:, 0].to_numpy()
    if isinstance(predicted, dict):
        return np.asarray(next(iter(predicted.values())))
    array = np.asarray(predicted)
    return array if array.ndim == 1 else array.reshape(len(array), -1)[:, 0]


def _task_of(predicted: Any) -> str:
    """Return REGRESSION for predictions that are fractional numbers, else CLASSIFICATION."""
    import numpy as np

    array = np.asarray(predicted)
    if array.dtype.kind == "f" and not np.all(np.isnan(array) | (array == np.round(array))):
        return REGRESSION
    return CLASSIFICATION

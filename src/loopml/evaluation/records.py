"""Evaluation records: what a model scored on which data, kept so gates and reports reuse it."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import RowMapping, insert, select

from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, NotFound

_E = db.evaluations


@dataclass(frozen=True)
class Evaluation:
    """A model package scored on one table: headline metrics and the details behind them."""

    id: str
    model: str  # models:/name/N or runs:/RUN/path
    package_digest: str
    dataset: str  # churn@v2, or a description of an in-memory frame
    data_digest: str
    target: str
    task: str
    rows: int
    metrics: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)  # plots, slices, fairness, importance
    model_name: str | None = None
    model_version: int | None = None
    dataset_version_id: int | None = None
    user: str = ""
    created_at: int = 0

    def metric(self, name: str, sensitive: str | None = None) -> float:
        """Return metric `name` (a fairness metric of feature `sensitive`), or raise
        InvalidInput naming the metrics this evaluation computed."""
        if sensitive is not None:
            fairness = self.details.get("fairness", {})
            if sensitive not in fairness:
                raise InvalidInput(
                    f"evaluation {self.id[:8]} of {self.model} computed no fairness metrics for "
                    f"{sensitive!r} (it has: {', '.join(fairness) or 'none'}); evaluate with "
                    f"sensitive_features=[{sensitive!r}]"
                )
            values = fairness[sensitive]
        else:
            values = self.metrics
        value = values.get(name)
        if name in values and value is None:
            raise InvalidInput(
                f"metric {name!r} of {self.model} is undefined on {self.dataset} (for example "
                "ROC AUC where the rows hold one class); gate on another metric or other rows"
            )
        if not isinstance(value, int | float):
            known = sorted(k for k, v in values.items() if isinstance(v, int | float))
            raise InvalidInput(
                f"metric {name!r} was not computed by the evaluation of {self.model} on "
                f"{self.dataset} ({self.task}); computed: {', '.join(known)}"
            )
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "model": self.model,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "package_digest": self.package_digest,
            "dataset": self.dataset,
            "dataset_version_id": self.dataset_version_id,
            "data_digest": self.data_digest,
            "target": self.target,
            "task": self.task,
            "rows": self.rows,
            "metrics": self.metrics,
            "details": self.details,
            "user": self.user,
            "created_at": self.created_at,
        }


def new_id() -> str:
    """Return a fresh evaluation id (32 hex characters)."""
    return uuid.uuid4().hex


def add(ws: Workspace, evaluation: Evaluation) -> None:
    """Store `evaluation`."""
    with ws.store.write() as conn:
        conn.execute(
            insert(_E).values(
                id=evaluation.id,
                model=evaluation.model,
                package_digest=evaluation.package_digest,
                model_name=evaluation.model_name,
                model_version=evaluation.model_version,
                dataset_version_id=evaluation.dataset_version_id,
                dataset=evaluation.dataset[:1000],
                data_digest=evaluation.data_digest,
                target=evaluation.target,
                task=evaluation.task,
                rows=evaluation.rows,
                metrics=_json(evaluation.metrics),
                body=_json(evaluation.details),
                user=evaluation.user,
                created_at=evaluation.created_at or now_ms(),
            )
        )


def get(ws: Workspace, evaluation_id: str) -> Evaluation:
    """Return the evaluation whose id is or starts with `evaluation_id` (8+ characters)."""
    if not isinstance(evaluation_id, str) or len(evaluation_id) < 8:
        raise InvalidInput(f"an evaluation id has at least 8 hex characters, not {evaluation_id!r}")
    with ws.store.read() as conn:
        rows = (
            conn.execute(select(_E).where(_E.c.id.startswith(evaluation_id, autoescape=True)))
            .mappings()
            .all()
        )
    if not rows:
        raise NotFound(f"no evaluation {evaluation_id!r}; `loopml models evaluations` lists them")
    if len(rows) > 1:
        raise InvalidInput(f"evaluation id {evaluation_id!r} is ambiguous; give more characters")
    return _record(rows[0])


def find(
    ws: Workspace, package_digest: str, data_digest: str, target: str | None = None
) -> list[Evaluation]:
    """Return the evaluations of one package on the same rows (and target), newest first."""
    query = select(_E).where(_E.c.package_digest == package_digest, _E.c.data_digest == data_digest)
    if target is not None:
        query = query.where(_E.c.target == target)
    with ws.store.read() as conn:
        rows = conn.execute(query.order_by(_E.c.created_at.desc(), _E.c.id)).mappings().all()
    return [_record(row) for row in rows]


def of_model(ws: Workspace, name: str, version: int | None = None) -> list[Evaluation]:
    """Return the evaluations of model `name` (one version of it), newest first."""
    query = select(_E).where(_E.c.model_name == name)
    if version is not None:
        query = query.where(_E.c.model_version == version)
    with ws.store.read() as conn:
        rows = conn.execute(query.order_by(_E.c.created_at.desc(), _E.c.id)).mappings().all()
    return [_record(row) for row in rows]


def _record(row: RowMapping) -> Evaluation:
    return Evaluation(
        id=row["id"],
        model=row["model"],
        package_digest=row["package_digest"],
        dataset=row["dataset"],
        data_digest=row["data_digest"],
        target=row["target"],
        task=row["task"],
        rows=row["rows"],
        metrics=json.loads(row["metrics"]),
        details=json.loads(row["body"]),
        model_name=row["model_name"],
        model_version=row["model_version"],
        dataset_version_id=row["dataset_version_id"],
        user=row["user"],
        created_at=row["created_at"],
    )


def finite(value: Any) -> Any:
    """Return `value` with NaN and infinities as None: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(finite(value), sort_keys=True, separators=(",", ":"))

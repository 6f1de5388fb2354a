"""Plain records the tracking API returns: snapshots, not live handles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from loopml.errors import InvalidInput

RunStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
RUN_STATUSES: tuple[RunStatus, ...] = ("RUNNING", "FINISHED", "FAILED", "KILLED")
Lifecycle = Literal["active", "deleted"]


_VIEWS: dict[str, Lifecycle | None] = {"active": "active", "deleted": "deleted", "all": None}


def view_stage(view: str) -> Lifecycle | None:
    """Return the lifecycle stage a listing `view` shows (None for all), or raise InvalidInput."""
    if view not in _VIEWS:
        raise InvalidInput(f"view {view!r} is not one of {', '.join(_VIEWS)}")
    return _VIEWS[view]


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    id: int
    name: str
    lifecycle_stage: Lifecycle
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "name": self.name,
            "lifecycle_stage": self.lifecycle_stage,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric at a step."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class ArtifactInfo:
    """A file a run logged."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class RunRecord:
    """A run as stored: attributes, params, tags and the latest value of each metric."""

    id: str
    name: str
    experiment_id: int
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_id: str | None
    user: str
    lifecycle_stage: Lifecycle
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int | None:
        """Return the run's wall time, or None while it runs."""
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (NaN and infinities as strings, as JSON has none)."""
        return {
            "id": self.id,
            "name": self.name,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "parent_id": self.parent_id,
            "user": self.user,
            "lifecycle_stage": self.lifecycle_stage,
            "params": dict(self.params),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "tags": dict(self.tags),
        }


class RunList(list[RunRecord]):
    """A page of runs; `next_page_token` is None on the last page."""

    next_page_token: str | None = None

    def to_pandas(self) -> Any:
        """Return the page as a DataFrame with `params.*`, `metrics.*` and `tags.*` columns."""
        import pandas as pd

        rows = []
        for run in self:
            row: dict[str, Any] = {
                "run_id": run.id,
                "run_name": run.name,
                "status": run.status,
                "start_time": pd.to_datetime(run.start_time, unit="ms"),
                "end_time": None
                if run.end_time is None
                else pd.to_datetime(run.end_time, unit="ms"),
            }
            row |= {f"metrics.{k}": v for k, v in run.metrics.items()}
            row |= {f"params.{k}": v for k, v in run.params.items()}
            row |= {f"tags.{k}": v for k, v in run.tags.items()}
            rows.append(row)
        return pd.DataFrame(rows)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)

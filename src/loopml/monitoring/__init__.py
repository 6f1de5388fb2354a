"""Monitoring: data and prediction drift, live performance, alerts, Prometheus and reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitoring.table_drift import DriftReport


def drift(reference: pd.DataFrame, current: pd.DataFrame, **options: Any) -> DriftReport:
    """Return the drift of `current` against `reference`: per column in `.table`, the share of
    drifted columns in `.share` (see `loopml.monitoring.table_drift.drift` for the options)."""
    from loopml.monitoring.table_drift import drift as drift_

    return drift_(reference, current, **options)


__all__ = ["drift"]

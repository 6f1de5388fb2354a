"""A deployment's monitor results as Prometheus metrics, beside its serving metrics.

The collector reads the latest complete window of each monitor of the deployment from the
store (at most once per `refresh_s`; scrapes in between get the same numbers), so a dashboard
shows drift, live performance and alert states next to request rates and latencies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from loopml.core.workspace import Workspace
from loopml.errors import LoopMLError
from loopml.monitoring.alerts import METRICS

log = logging.getLogger("loopml")

REFRESH_S = 5.0
# Window metrics exported as loopml_monitor_metric{metric=...}; drift has gauges of its own.
EXPORTED = tuple(m for m in METRICS if "drift" not in m)


class MonitorCollector(Collector):
    """Collect the latest complete window and the alert states of a deployment's monitors."""

    def __init__(self, ws: Workspace, deployment: str, *, refresh_s: float = REFRESH_S) -> None:
        self.ws = ws
        self.deployment = deployment
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges, read from the store when the last read is older than refresh_s."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_s:
                try:
                    self._families = self._read()
                # A store hiccup must not break /metrics: the last numbers stay.
                except (LoopMLError, SQLAlchemyError, OSError, ValueError, KeyError) as exc:
                    log.warning("monitor metrics of %s not read: %s", self.deployment, exc)
                self._read_at = time.monotonic()
            yield from self._families

    def _read(self) -> list[GaugeMetricFamily]:
        from loopml.monitoring import monitors

        when = "in the latest complete window"
        drift = _gauge("drift_score", f"Drift statistic of each watched column {when}.", "column")
        drifted = _gauge("column_drifted", f"1 if the column drifted {when}, else 0.", "column")
        share = _gauge("drift_share", f"Share of watched columns that drifted {when}.")
        prediction = _gauge("prediction_drift", f"Drift statistic of the model's outputs {when}.")
        measured = _gauge(
            "monitor_metric", f"Performance and operational numbers {when}.", "metric"
        )
        window = _gauge(
            "monitor_window_end_seconds", "End of the latest complete window (Unix time)."
        )
        firing = _gauge("alert_firing", "1 while an alert rule is firing, else 0.", "rule")
        for monitor in monitors.list_all(self.ws, deployment=self.deployment):
            ids = [self.deployment, monitor.name]
            states = monitors.alert_states(self.ws, monitor)
            for rule in monitor.settings["rules"]:
                found = states.get(rule)
                firing.add_metric([*ids, rule], 1.0 if found and found.state == "firing" else 0.0)
            latest = [w for w in monitors.windows(self.ws, monitor.name, limit=2) if w.complete]
            if not latest:
                continue
            last = latest[-1]
            window.add_metric(ids, last.end_ms / 1000)
            _add(share, ids, last.metrics.get("drift_share"))
            _add(prediction, ids, last.metrics.get("prediction_drift"))
            for column in last.details.get("drift", {}).get("columns", []):
                _add(drift, [*ids, column["column"]], column.get("statistic"))
                verdict = column.get("drift")
                _add(drifted, [*ids, column["column"]], None if verdict is None else float(verdict))
            for key in EXPORTED:
                _add(measured, [*ids, key], last.metrics.get(key))
        return [drift, drifted, share, prediction, measured, window, firing]


def _gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
    """Return an empty gauge `loopml_NAME` labelled by deployment, monitor and `labels`."""
    return GaugeMetricFamily(f"loopml_{name}", text, labels=["deployment", "monitor", *labels])


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    if value is not None:
        family.add_metric(labels, float(value))

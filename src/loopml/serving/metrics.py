"""Prometheus metrics of a model server: requests, latency, errors and batches per version.

One registry per server process (so two servers in one process, as in tests, never share
numbers); a deployment's versions share its registry, told apart by their labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Request latencies from sub-millisecond to a slow batch; seconds, as Prometheus expects.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LABELS = ("model", "version")


class ServerMetrics:
    """The counters and histograms of one server process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge(
            "loopml_model_info",
            "The model versions this server serves (value 1).",
            [*_LABELS, "flavor"],
            registry=self.registry,
        )
        self.requests = Counter(
            "loopml_requests",
            "Prediction requests, by protocol and HTTP status.",
            [*_LABELS, "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopml_request_seconds",
            "Time to answer a prediction request.",
            [*_LABELS, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "loopml_predicted_rows", "Rows predicted.", _LABELS, registry=self.registry
        )
        self.batches = Histogram(
            "loopml_batch_rows",
            "Rows per model call (micro-batching groups concurrent requests).",
            _LABELS,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def of_model(self, model: str, version: str, flavor: str) -> ModelMetrics:
        """Return the metrics of one served model version (marked in `loopml_model_info`)."""
        self.info.labels(model, version, flavor).set(1)
        return ModelMetrics(self, model, version)

    def exposition(self) -> bytes:
        """Return the metrics in Prometheus' text format."""
        return bytes(generate_latest(self.registry))


class ModelMetrics:
    """The server's metrics with one model version's labels bound."""

    def __init__(self, metrics: ServerMetrics, model: str, version: str) -> None:
        self.server = metrics
        self._labels = {"model": model, "version": version}

    def observe(self, protocol: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.server.requests.labels(**self._labels, protocol=protocol, status=str(status)).inc()
        self.server.latency.labels(**self._labels, protocol=protocol).observe(seconds)

    def batch(self, rows: int, seconds: float) -> None:
        """Count one model call of `rows` rows."""
        self.server.rows.labels(**self._labels).inc(rows)
        self.server.batches.labels(**self._labels).observe(rows)

"""Prometheus metrics of one model server: requests, latency, errors and batches."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Request latencies from sub-millisecond to a slow batch; seconds, as Prometheus expects.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """The counters and histograms a model server keeps, in a registry of its own (so two
    servers in one process, as in tests, never share numbers)."""

    def __init__(self, model: str, version: str, flavor: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        self._labels = {"model": model, "version": version}
        info = Gauge(
            "loopml_model_info",
            "The model version this server serves (value 1).",
            [*labels, "flavor"],
            registry=self.registry,
        )
        info.labels(model, version, flavor).set(1)
        self.requests = Counter(
            "loopml_requests",
            "Prediction requests, by protocol and HTTP status.",
            [*labels, "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopml_request_seconds",
            "Time to answer a prediction request.",
            [*labels, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "loopml_predicted_rows", "Rows predicted.", labels, registry=self.registry
        )
        self.batches = Histogram(
            "loopml_batch_rows",
            "Rows per model call (micro-batching groups concurrent requests).",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe(self, protocol: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(**self._labels, protocol=protocol, status=str(status)).inc()
        self.latency.labels(**self._labels, protocol=protocol).observe(seconds)

    def batch(self, rows: int, seconds: float) -> None:
        """Count one model call of `rows` rows."""
        self.rows.labels(**self._labels).inc(rows)
        self.batches.labels(**self._labels).observe(rows)

    def exposition(self) -> bytes:
        """Return the metrics in Prometheus' text format."""
        return bytes(generate_latest(self.registry))

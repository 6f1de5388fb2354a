"""Live traffic of a deployment, per model version: what rollouts and A/B tests are judged on.

The server records every answered request here (status, latency, the prediction of a one-row
request) and attaches labels that arrive through `/feedback`. Memory is bounded: the newest
`max_requests` outcomes per version, and the newest `max_pending` predictions awaiting a label.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Window:
    """One version's traffic since a moment: counts, latency and live metrics from labels."""

    version: str
    requests: int
    errors: int  # 5xx answers: the model failed
    latencies_ms: tuple[float, ...]
    predictions: tuple[Any, ...]  # of labelled requests
    labels: tuple[Any, ...]
    refused: int = 0  # 4xx answers: the request did not fit (a changed signature shows here)

    @property
    def error_rate(self) -> float:
        """Return the share of requests the model failed (0 with no requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def refused_rate(self) -> float:
        """Return the share of requests refused with a 4xx (0 with no requests)."""
        return self.refused / self.requests if self.requests else 0.0

    @property
    def labelled(self) -> int:
        """Return how many requests got a label."""
        return len(self.labels)

    def p99_ms(self) -> float | None:
        """Return the 99th percentile latency, or None with no requests."""
        return _percentile(self.latencies_ms, 99)

    def p50_ms(self) -> float | None:
        """Return the median latency, or None with no requests."""
        return _percentile(self.latencies_ms, 50)

    def correct(self) -> list[bool]:
        """Return, per labelled request, whether the prediction equalled the label."""
        return [_same(p, y) for p, y in zip(self.predictions, self.labels, strict=True)]

    def metric(self, name: str) -> float | None:
        """Return live metric `name` over the labelled requests (None without labels or for
        numeric metrics over labels that are not numbers)."""
        if name == "error_rate":
            return self.error_rate if self.requests else None
        if not self.labels:
            return None
        if name == "accuracy":
            return float(np.mean(self.correct()))
        try:
            errors = np.asarray(self.predictions, float) - np.asarray(self.labels, float)
        except (TypeError, ValueError):
            return None
        if name == "mae":
            return float(np.mean(np.abs(errors)))
        return float(np.sqrt(np.mean(errors**2)))  # rmse

    def summary(self) -> dict[str, Any]:
        """Return the numbers a person reads (and the history keeps)."""
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "refused": self.refused,
            "p50_ms": _round(self.p50_ms()),
            "p99_ms": _round(self.p99_ms()),
            "labelled": self.labelled,
            "accuracy": _round(self.metric("accuracy")),
        }


@dataclass(frozen=True)
class _Outcome:
    at_ms: int
    status: int
    latency_ms: float


class TrafficStats:
    """Per-version outcomes of recent requests, safe to use from several threads."""

    def __init__(self, *, max_requests: int = 100_000, max_pending: int = 100_000) -> None:
        self.max_requests = max_requests
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._outcomes: dict[str, deque[_Outcome]] = {}
        self._labelled: dict[str, deque[tuple[int, Any, Any]]] = {}
        # request id -> {version: prediction}: a shadow answers the same id as its primary
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def record(
        self,
        version: str,
        *,
        request_id: str,
        status: int,
        latency_ms: float,
        prediction: Any,
        at_ms: int,
    ) -> None:
        """Count one answered request; keep its prediction (one row) to await a label."""
        with self._lock:
            outcomes = self._outcomes.setdefault(version, deque(maxlen=self.max_requests))
            outcomes.append(_Outcome(at_ms, status, latency_ms))
            if status == 200 and prediction is not None:
                self._pending.setdefault(request_id, {})[version] = prediction
                self._pending.move_to_end(request_id)
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)

    def feedback(self, request_id: str, label: Any, *, at_ms: int) -> bool:
        """Attach `label` to a recent one-row prediction (of every version that answered the
        request); return False if none is known."""
        with self._lock:
            found = self._pending.pop(request_id, None)
            if found is None:
                return False
            for version, prediction in found.items():
                labelled = self._labelled.setdefault(version, deque(maxlen=self.max_requests))
                labelled.append((at_ms, prediction, label))
            return True

    def window(self, version: str, since_ms: int) -> Window:
        """Return `version`'s traffic answered (and labelled) at or after `since_ms`."""
        with self._lock:
            outcomes = [o for o in self._outcomes.get(version, ()) if o.at_ms >= since_ms]
            labelled = [x for x in self._labelled.get(version, ()) if x[0] >= since_ms]
        return Window(
            version=version,
            requests=len(outcomes),
            errors=sum(1 for o in outcomes if o.status >= 500),
            refused=sum(1 for o in outcomes if 400 <= o.status < 500),
            latencies_ms=tuple(o.latency_ms for o in outcomes),
            predictions=tuple(p for _, p, _ in labelled),
            labels=tuple(y for _, _, y in labelled),
        )


def _same(prediction: Any, label: Any) -> bool:
    if isinstance(prediction, float) or isinstance(label, float):
        try:
            return math.isclose(float(prediction), float(label))
        except (TypeError, ValueError):
            return False
    return bool(prediction == label) or str(prediction) == str(label)


def _percentile(values: tuple[float, ...], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

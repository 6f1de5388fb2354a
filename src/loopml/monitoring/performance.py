"""Live performance from the prediction log, counted chunk by chunk in bounded memory.

`Operational` counts requests, errors and latency per model version (latency on a log-spaced
histogram: percentiles within 1 % of the exact value). `Quality` scores predictions against the
labels sent to `/feedback`: accuracy and F1 from a confusion table, ROC AUC from per-class
histograms of a score, RMSE and MAE from running sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.monitoring.sketch import _label

if TYPE_CHECKING:
    import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
LATENCY_LOW_MS = 0.01  # latencies below this share the first bucket
LATENCY_RATIO = 1.02  # bucket width: each bucket is 2 % wider than the one before
LATENCY_BUCKETS = 1000  # 0.01 ms .. about 4 hours
SCORE_BINS = 1000  # ROC AUC from scores in [0, 1] on 1,000 bins


class Latency:
    """Latencies on a log-spaced histogram; percentiles within half a bucket (1 %)."""

    def __init__(self) -> None:
        self.counts = np.zeros(LATENCY_BUCKETS, dtype=np.float64)

    def update(self, ms: np.ndarray[Any, Any], weights: np.ndarray[Any, Any]) -> None:
        """Count latencies (milliseconds), each with a weight (1 / its sampling rate)."""
        ratio = np.log(np.maximum(ms, LATENCY_LOW_MS) / LATENCY_LOW_MS) / np.log(LATENCY_RATIO)
        slots = np.clip(ratio.astype(np.int64), 0, LATENCY_BUCKETS - 1)
        self.counts += np.bincount(slots, weights=weights, minlength=LATENCY_BUCKETS)

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile (0..1) in milliseconds, or None with nothing counted."""
        total = self.counts.sum()
        if not total:
            return None
        slot = int(np.searchsorted(np.cumsum(self.counts), q * total, side="left"))
        slot = min(slot, LATENCY_BUCKETS - 1)
        return float(LATENCY_LOW_MS * LATENCY_RATIO ** (slot + 0.5))


@dataclass
class _Version:
    requests: float = 0.0
    server_errors: float = 0.0
    client_errors: float = 0.0
    latency: Latency = field(default_factory=Latency)

    def metrics(self) -> dict[str, float | None]:
        count = self.requests
        return {
            "requests": count,
            "error_rate": self.server_errors / count if count else None,
            "client_error_rate": self.client_errors / count if count else None,
            "p50_ms": self.latency.quantile(0.50),
            "p95_ms": self.latency.quantile(0.95),
            "p99_ms": self.latency.quantile(0.99),
        }


class Operational:
    """Requests, error rates and latency percentiles, overall and per model version."""

    def __init__(self) -> None:
        self.versions: dict[str, _Version] = {}

    def update(self, chunk: pd.DataFrame) -> None:
        """Count the requests of a chunk of the prediction log (one per request, at row 0)."""
        first = chunk[chunk["row"] == 0] if "row" in chunk.columns else chunk
        if first.empty:
            return
        rate = first["sample_rate"].to_numpy(dtype=np.float64)
        weight = 1.0 / np.where(rate > 0, rate, 1.0)  # a sampled request stands for 1/rate
        status = first["status"].to_numpy(dtype=np.int64)
        latency = first["latency_ms"].to_numpy(dtype=np.float64)
        versions = first["model_version"].astype(str).to_numpy()
        for version in np.unique(versions):
            mine = versions == version
            found = self.versions.setdefault(str(version), _Version())
            w = weight[mine]
            found.requests += float(w.sum())
            found.server_errors += float(w[status[mine] >= 500].sum())
            found.client_errors += float(w[(status[mine] >= 400) & (status[mine] < 500)].sum())
            found.latency.update(latency[mine], w)

    def metrics(self) -> dict[str, float | None]:
        """Return the numbers over every version together."""
        whole = _Version()
        for version in self.versions.values():
            whole.requests += version.requests
            whole.server_errors += version.server_errors
            whole.client_errors += version.client_errors
            whole.latency.counts += version.latency.counts
        return whole.metrics()

    def by_version(self) -> dict[str, dict[str, float | None]]:
        """Return the numbers of each model version."""
        return {name: v.metrics() for name, v in sorted(self.versions.items())}


class Quality:
    """Predictions scored against their labels: a classifier's or a regressor's metrics."""

    def __init__(self, task: str, *, min_rows: int = 1) -> None:
        self.task = task
        self.min_rows = min_rows  # fewer labelled rows than this give no numbers
        self.rows = 0
        self.confusion: dict[tuple[str, str], int] = {}
        self.errors = 0.0  # regression: sum of |error|, and of error squared
        self.squares = 0.0
        # A binary classifier whose outputs are scores in [0, 1]: score histograms per label.
        self.scores: dict[str, np.ndarray[Any, Any]] = {}

    def update(self, truth: pd.Series, predicted: pd.Series) -> None:
        """Count labelled predictions (rows where either is missing are left out)."""
        import pandas as pd

        both = pd.DataFrame({"t": truth.to_numpy(), "p": predicted.to_numpy()}).dropna()
        if both.empty:
            return
        self.rows += len(both)
        if self.task == REGRESSION:
            error = pd.to_numeric(both["t"], errors="coerce").to_numpy(dtype=float) - (
                pd.to_numeric(both["p"], errors="coerce").to_numpy(dtype=float)
            )
            error = error[np.isfinite(error)]
            self.rows -= len(both) - error.size
            self.errors += float(np.abs(error).sum())
            self.squares += float(np.dot(error, error))
            return
        labels = [_label(v) for v in both["t"]]
        predictions = both["p"]
        if _scores(predictions):
            values = predictions.to_numpy(dtype=float)
            for label in set(labels):
                mine = np.array([t == label for t in labels])
                hist = self.scores.setdefault(label, np.zeros(SCORE_BINS, dtype=np.int64))
                slots = np.clip((values[mine] * SCORE_BINS).astype(int), 0, SCORE_BINS - 1)
                hist += np.bincount(slots, minlength=SCORE_BINS)
            predicted_labels = ["1" if v >= 0.5 else "0" for v in values]
        else:
            predicted_labels = [_label(v) for v in predictions]
        for pair in zip(labels, predicted_labels, strict=True):
            self.confusion[pair] = self.confusion.get(pair, 0) + 1

    def metrics(self) -> dict[str, float | None]:
        """Return accuracy, F1 (and ROC AUC for scores), or RMSE and MAE; None with fewer
        labelled rows than `min_rows` (a rate of three rows is noise, not news)."""
        few = self.rows < max(self.min_rows, 1)
        if self.task == REGRESSION:
            n = self.rows
            return {
                "rmse": None if few else math.sqrt(self.squares / n),
                "mae": None if few else self.errors / n,
            }
        if few:
            return {"accuracy": None, "f1": None, **({"roc_auc": None} if self.scores else {})}
        total = sum(self.confusion.values())
        right = sum(n for (t, p), n in self.confusion.items() if t == p)
        out: dict[str, float | None] = {
            "accuracy": right / total if total else None,
            "f1": self._f1() if total else None,
        }
        if self.scores:
            out["roc_auc"] = self._auc()
        return out

    def _f1(self) -> float:
        found = {t for t, _ in self.confusion} | {p for _, p in self.confusion}
        # Binary: F1 of the positive class, the last label in order (1, "yes"), numbers
        # ordered as numbers as an evaluation orders its classes ("10" after "9").
        classes = sorted(found, key=_natural)
        chosen = classes[-1:] if len(classes) == 2 else classes
        scores = []
        for c in chosen:
            tp = self.confusion.get((c, c), 0)
            fp = sum(n for (t, p), n in self.confusion.items() if p == c and t != c)
            fn = sum(n for (t, p), n in self.confusion.items() if t == c and p != c)
            scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(scores))

    def _auc(self) -> float | None:
        labels = sorted(self.scores, key=_natural)
        if len(labels) != 2:
            return None
        negative, positive = self.scores[labels[0]], self.scores[labels[1]]
        n, p = negative.sum(), positive.sum()
        # P(score of a positive > score of a negative), ties in one bin counting half.
        below = np.cumsum(negative) - negative
        return float((positive * (below + negative / 2)).sum() / (n * p))


def _natural(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _scores(predictions: pd.Series) -> bool:
    """Return True if the predictions are probabilities of a positive class, not labels."""
    from pandas.api import types

    if not types.is_float_dtype(predictions.dtype):
        return False
    values = predictions.to_numpy(dtype=float)
    inside = bool(((values >= 0) & (values <= 1)).all())
    return inside and not bool(np.all(values == np.round(values)))

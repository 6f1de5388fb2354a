"""Single-row predict latency: what one request costs a model once it is loaded."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from loopml.registry.package import LoadedModel

WARMUP = 5


def single_row_latency(
    loaded: LoadedModel, frame: pd.DataFrame, *, calls: int = 200, quantile: float = 0.99
) -> dict[str, Any]:
    """Return p50 and the `quantile` of single-row `predict` times in milliseconds, over
    `calls` calls cycling through the rows of `frame` (after a few untimed warm-up calls)."""
    rows = [frame.iloc[[i % len(frame)]] for i in range(calls + WARMUP)]
    timings = []
    for i, row in enumerate(rows):
        start = time.perf_counter_ns()
        loaded.predict(row)
        if i >= WARMUP:
            timings.append((time.perf_counter_ns() - start) / 1e6)
    values = np.asarray(timings)
    return {
        "calls": calls,
        "quantile": quantile,
        "p50_ms": float(np.quantile(values, 0.5)),
        "value_ms": float(np.quantile(values, quantile)),
        "max_ms": float(values.max()),
    }

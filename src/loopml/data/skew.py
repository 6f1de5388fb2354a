"""Distances between two column profiles: how far a column's distribution moved.

Evidently's defaults for samples over 1,000 rows, computed from profiles alone: normalised
Wasserstein distance for numbers (from the 101 stored quantiles), Jensen-Shannon distance
(base 2, so 0..1) for categories and for integer columns with at most 5 distinct values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.data.profile import NUMERIC_TYPES

WASSERSTEIN = "wasserstein"
JENSEN_SHANNON = "jensen_shannon"
MAX_CATEGORICAL_NUMBERS = 5  # Evidently: numbers with <= 5 values are compared as categories
MIN_STD = 0.001


def skew(reference: dict[str, Any], current: dict[str, Any]) -> tuple[str | None, float | None]:
    """Return (method, distance) between two column profiles; None where they do not compare."""
    ref_cats: dict[str, int] | None = reference.get("categories")
    cur_cats: dict[str, int] | None = current.get("categories")
    if reference["type"] in NUMERIC_TYPES and current["type"] in NUMERIC_TYPES:
        if (
            ref_cats is not None
            and cur_cats is not None
            and len(ref_cats.keys() | cur_cats.keys()) <= MAX_CATEGORICAL_NUMBERS
        ):
            return JENSEN_SHANNON, jensen_shannon(ref_cats, cur_cats)
        if reference.get("quantiles") and current.get("quantiles"):
            std = reference.get("std") or 0.0
            return WASSERSTEIN, wasserstein(reference["quantiles"], current["quantiles"], std)
        return None, None
    if reference["type"] == current["type"] and ref_cats is not None and cur_cats is not None:
        return JENSEN_SHANNON, jensen_shannon(ref_cats, cur_cats)
    return None, None


def wasserstein(
    ref_quantiles: list[float], cur_quantiles: list[float], ref_std: float
) -> float | None:
    """Return Wasserstein-1 of two quantile functions over max(ref_std, 0.001); None past floats."""
    with np.errstate(over="ignore", invalid="ignore"):
        gap = np.abs(np.asarray(ref_quantiles, float) - np.asarray(cur_quantiles, float))
        # Trapezoid rule over p: the extremes p0 and p100 get half weight.
        area = (gap.sum() - (gap[0] + gap[-1]) / 2) / (gap.size - 1)
        score = float(area / max(ref_std, MIN_STD))
    return score if np.isfinite(score) else None


def jensen_shannon(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> float | None:
    """Return the Jensen-Shannon distance (base 2) of two count tables; None if one is empty."""
    keys = sorted(ref_counts.keys() | cur_counts.keys())
    p = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    q = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
    if not p.sum() or not q.sum():
        return None
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (_kl(p, m) + _kl(q, m)) / 2
    return float(min(np.sqrt(max(divergence, 0.0)), 1.0))


def _kl(p: Any, m: Any) -> float:
    held = p > 0
    return float(np.sum(p[held] * np.log2(p[held] / m[held])))

"""Permutation importance: how much a score drops when one feature's values are shuffled.

Every shuffled copy of the sample is predicted in one call (in chunks), so a model pays its
per-call cost a handful of times rather than once per feature and repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 500
REPEATS = 5
CHUNK_ROWS = 200_000  # rows per predict call, bounding memory


def permutation_importance(
    predict: Callable[[pd.DataFrame], Any],
    frame: pd.DataFrame,
    y_true: np.ndarray[Any, Any],
    score: Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], float],
    *,
    repeats: int = REPEATS,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Return each column's mean score drop (and its spread) over `repeats` shuffles, largest
    first, measured on at most `sample_rows` rows of `frame`."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(len(frame))[:sample_rows])
    sample = frame.iloc[rows].reset_index(drop=True)
    truth = np.asarray(y_true)[rows]
    baseline = score(truth, np.asarray(predict(sample)))
    copies = []
    for column in sample.columns:
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[column] = sample[column].to_numpy()[rng.permutation(len(sample))]
            copies.append(shuffled)
    predictions = _predict_in_chunks(predict, copies)
    drops = np.array(
        [baseline - score(truth, p) for p in np.split(predictions, len(copies))]
    ).reshape(len(sample.columns), repeats)
    found = [
        {"feature": str(column), "importance": float(d.mean()), "std": float(d.std())}
        for column, d in zip(sample.columns, drops, strict=True)
    ]
    return sorted(found, key=lambda row: -row["importance"])


def _predict_in_chunks(
    predict: Callable[[pd.DataFrame], Any], copies: list[pd.DataFrame]
) -> np.ndarray[Any, Any]:
    per_call = max(1, CHUNK_ROWS // max(1, len(copies[0])))
    parts = [
        np.asarray(predict(pd.concat(copies[i : i + per_call], ignore_index=True)))
        for i in range(0, len(copies), per_call)
    ]
    return np.concatenate(parts)


def shap_importance(
    model: Any, frame: pd.DataFrame, *, sample_rows: int = SAMPLE_ROWS, seed: int = 0
) -> dict[str, Any] | None:
    """Return the mean |SHAP value| of each column over at most `sample_rows` rows, largest
    first, for a model SHAP explains exactly and fast (trees, linear models); None when SHAP
    is not installed. A model it cannot explain so is recorded with the reason."""
    try:
        import shap
    except ImportError:
        return None
    rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[:sample_rows])
    sample = frame.iloc[rows]
    try:
        if hasattr(model, "coef_"):
            explainer = shap.LinearExplainer(model, sample)
        else:
            explainer = shap.TreeExplainer(model)
        values = np.asarray(explainer(sample).values, dtype=float)
    except Exception as exc:  # noqa: BLE001 - SHAP refuses models in many ways; say which
        return {"explainer": None, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    if values.ndim == 3:  # one slice per class: explain the positive (last) class
        values = values[:, :, -1]
    mean = np.abs(values).mean(axis=0)
    found = [
        {"feature": str(column), "mean_abs_shap": float(m)}
        for column, m in zip(sample.columns, mean, strict=True)
    ]
    return {
        "explainer": type(explainer).__name__,
        "rows": len(sample),
        "features": sorted(found, key=lambda row: -row["mean_abs_shap"]),
    }

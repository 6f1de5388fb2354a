"""Model metrics: classification and regression scores, per-slice scores, the data for plots.

Every metric is a number a gate can name; `LOWER_IS_BETTER` says which way is better.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

Task = Literal["classification", "regression"]

# Metrics where a smaller value is the better model; every other metric grows with quality.
LOWER_IS_BETTER = frozenset(
    {
        "log_loss",
        "rmse",
        "mae",
        "max_error",
        "p50_ms",
        "p99_ms",
        "demographic_parity_difference",
        "equalized_odds_difference",
    }
)
MAX_SLICE_VALUES = 20  # a column with more distinct values is cut into quantile bins
SLICE_BINS = 4
OTHER = "(other)"  # the slice of the values outside the most common ones
RESIDUAL_POINTS = 2000  # residual plots show a sample; the metrics use every row
CALIBRATION_BINS = 10


def lower_is_better(metric: str) -> bool:
    """Return True if a smaller `metric` means a better model."""
    return metric in LOWER_IS_BETTER or metric.endswith(".log_loss")


def classification(
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: list[Any],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Return the scores (accuracy, precision, recall, F1, ROC AUC, log loss) and the plot data
    (confusion matrix, calibration curve) of a classifier's predictions.

    Binary scores are for the positive class, the last of `classes`; with more classes,
    precision, recall and F1 are macro averages and ROC AUC is one-vs-rest.
    """
    from sklearn import metrics as skm

    binary = len(classes) == 2
    scores: dict[str, float] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    average: Literal["binary", "macro"] = "binary" if binary else "macro"
    options: dict[str, Any] = {"average": average, "zero_division": 0}
    if binary:
        options["pos_label"] = classes[-1]
    else:
        options["labels"] = classes
    scores["precision"] = float(skm.precision_score(y_true, y_pred, **options))
    scores["recall"] = float(skm.recall_score(y_true, y_pred, **options))
    scores["f1"] = float(skm.f1_score(y_true, y_pred, **options))
    plots: dict[str, Any] = {
        "classes": [plain(c) for c in classes],
        "positive_class": plain(classes[-1]) if binary else None,
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if proba is not None and len(np.unique(y_true)) > 1:
        if binary:
            scores["roc_auc"] = float(skm.roc_auc_score(y_true == classes[-1], proba[:, 1]))
            fpr, tpr, _ = skm.roc_curve(y_true == classes[-1], proba[:, 1])
            plots["roc_curve"] = {"fpr": _rounded(fpr), "tpr": _rounded(tpr)}
            plots["calibration"] = _calibration(y_true == classes[-1], proba[:, 1])
        elif set(np.unique(y_true)) <= set(classes):
            scores["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
            )
        scores["log_loss"] = float(skm.log_loss(y_true, proba, labels=classes))
    return scores, plots


def regression(
    y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Return the scores (RMSE, MAE, R2, max error) and a residual sample for a residual plot."""
    from sklearn import metrics as skm

    truth = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float).reshape(len(truth), -1)[:, 0]
    scores = {
        "rmse": float(np.sqrt(skm.mean_squared_error(truth, pred))),
        "mae": float(skm.mean_absolute_error(truth, pred)),
        "r2": float(skm.r2_score(truth, pred)) if len(truth) > 1 else float("nan"),
        "max_error": float(np.max(np.abs(truth - pred))) if len(truth) else 0.0,
    }
    rows = np.random.default_rng(0).permutation(len(truth))[:RESIDUAL_POINTS]
    rows.sort()
    plots = {
        "residuals": {
            "predicted": _rounded(pred[rows]),
            "residual": _rounded(truth[rows] - pred[rows]),
        }
    }
    return scores, plots


def slices(
    column: pd.Series[Any],
    score: Callable[[np.ndarray[Any, Any]], dict[str, float]],
) -> list[dict[str, Any]]:
    """Return one row per slice of `column` (its values, or quantile bins when there are
    many): the slice's label, row count and the scores `score` gives for those rows."""
    groups = _slice_labels(column)
    rows = []
    for label in sorted(groups.dropna().unique(), key=_sort_key):
        mask = (groups == label).to_numpy()
        rows.append({"slice": plain(label), "rows": int(mask.sum()), **score(mask)})
    missing = groups.isna().to_numpy()
    if missing.any():
        rows.append({"slice": None, "rows": int(missing.sum()), **score(missing)})
    return rows


def task_of(model: Any, target: pd.Series[Any], task: str | None) -> Task:
    """Return the task: as given, else classification for a model with classes or a
    non-numeric target, else regression."""
    if task is not None:
        if task not in ("classification", "regression"):
            raise InvalidInput(f"task must be 'classification' or 'regression', not {task!r}")
        return task  # type: ignore[return-value]
    if hasattr(model, "classes_") or callable(getattr(model, "predict_proba", None)):
        return "classification"
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        return "classification"
    return "regression"


def headline(task: Task) -> str:
    """Return the metric a task's importance and slice tables rank by."""
    return "accuracy" if task == "classification" else "r2"


def headline_score(task: Task, truth: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    """Return the headline metric of `task` (accuracy, or R2) of predictions."""
    from sklearn.metrics import accuracy_score, r2_score

    if task == "classification":
        return float(accuracy_score(truth, pred))
    return float(r2_score(np.asarray(truth, dtype=float), np.asarray(pred, dtype=float)))


def _slice_labels(column: pd.Series[Any]) -> pd.Series[Any]:
    """Return each row's slice: its value; a quartile for numbers and times with many values;
    for other columns with many values, one of the most common or "(other)"."""
    if column.nunique() <= MAX_SLICE_VALUES:
        return column.astype(object).where(column.notna(), None)
    ordered = (
        pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)
    ) and not pd.api.types.is_bool_dtype(column)
    if ordered:
        binned = pd.qcut(column, SLICE_BINS, duplicates="drop")
        return binned.astype("string").astype(object).where(binned.notna(), None)
    common = column.value_counts().index[: MAX_SLICE_VALUES - 1]
    labels = column.astype(object).where(column.isin(common), OTHER)
    return labels.where(column.notna(), None)


def _calibration(positive: np.ndarray[Any, Any], proba: np.ndarray[Any, Any]) -> dict[str, Any]:
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(positive, proba, n_bins=CALIBRATION_BINS)
    return {"predicted": _rounded(prob_pred), "observed": _rounded(prob_true)}


def _rounded(values: np.ndarray[Any, Any]) -> list[float]:
    return [round(float(v), 6) for v in values]


def plain(value: Any) -> Any:
    """Return `value` as a JSON scalar (NumPy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))

"""Fairness across the groups of a sensitive feature: demographic parity and equalized odds.

The definitions are fairlearn's (a test checks the numbers agree): demographic parity compares
how often each group is predicted positive; equalized odds compares true and false positive
rates, and its difference is the larger of the two gaps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

MAX_GROUPS = 20
MISSING = "(missing)"  # the group of rows without a value
METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)


def fairness(
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
    groups: pd.Series[Any],
    positive: Any,
) -> dict[str, Any]:
    """Return the fairness metrics of binary predictions across the values of `groups`, and
    each group's rows, selection rate, true and false positive rates."""
    label = groups.astype(object).where(groups.notna(), MISSING).astype(str).to_numpy()
    if len(distinct := set(label)) > MAX_GROUPS:
        raise InvalidInput(
            f"sensitive feature {groups.name!r} has {len(distinct)} groups; fairness compares a "
            f"few groups (at most {MAX_GROUPS}): bin it into ranges first"
        )
    selected = np.asarray(y_pred) == positive
    actual = np.asarray(y_true) == positive
    rows = []
    for group in sorted(set(label)):
        mask = label == group
        positives, negatives = actual & mask, ~actual & mask
        rows.append(
            {
                "group": group,
                "rows": int(mask.sum()),
                "selection_rate": float(selected[mask].mean()),
                "true_positive_rate": _rate(selected, positives),
                "false_positive_rate": _rate(selected, negatives),
            }
        )
    if len(rows) < 2:
        raise InvalidInput(
            f"sensitive feature {groups.name!r} has {len(rows)} group(s) in this data; fairness "
            "compares two or more"
        )
    selection = [r["selection_rate"] for r in rows]
    gaps = [_gap([r[k] for r in rows]) for k in ("true_positive_rate", "false_positive_rate")]
    return {
        "demographic_parity_difference": max(selection) - min(selection),
        "demographic_parity_ratio": min(selection) / max(selection) if max(selection) else 1.0,
        "equalized_odds_difference": max(gaps),
        "groups": rows,
    }


def _rate(selected: np.ndarray[Any, Any], among: np.ndarray[Any, Any]) -> float | None:
    count = int(among.sum())
    return float(selected[among].sum() / count) if count else None


def _gap(rates: list[float | None]) -> float:
    """Return the spread of the rates a group has rows for (0 when fewer than two have)."""
    known = [r for r in rates if r is not None]
    return max(known) - min(known) if len(known) > 1 else 0.0

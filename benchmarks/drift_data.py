"""Generate the drift benchmark's frames: a reference, a drifted current and a fresh sample.

Only numpy and pandas are used, so that every contender's interpreter can import this file by
path and build the same frames from the same seed. Twenty numeric columns mix normal,
lognormal, uniform, exponential, count and bimodal distributions; five categorical columns hold
3 to 30 string categories with skewed shares. The drifted frame moves five numeric columns and
one categorical column by moderate amounts; the fresh frame is a new draw with no drift.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

SEED = 20_240_601
# The columns the drifted frame moves, and how.
DRIFTED = {
    "normal_shift": "mean + 0.3 std",
    "normal_scale": "std x 1.4",
    "normal_new_mode": "new mode with 15 % of rows",
    "lognormal_tail": "sigma 0.6 -> 0.8 (thicker tail)",
    "counts_rate": "rate + 20 %",
    "cat_channel": "one category +10 points",
}
CATEGORIES = {"cat_region": 3, "cat_plan": 5, "cat_channel": 8, "cat_device": 15, "cat_city": 30}
GAINER = 4  # the rank of cat_channel's category that gains 10 points (share 0.06 -> 0.16)


def _shares(count: int) -> np.ndarray:
    """Return Zipf-like shares for `count` categories, the first the most frequent."""
    weights = 1.0 / np.arange(1, count + 1) ** 1.1
    return weights / weights.sum()


def _numeric(rng: np.random.Generator, rows: int, drift: bool) -> dict[str, np.ndarray]:
    """Return the twenty numeric columns, drifted where `drift` says."""
    cols: dict[str, np.ndarray] = {}
    cols["normal_shift"] = rng.normal(100.0 + (3.0 if drift else 0.0), 10.0, rows)
    cols["normal_scale"] = rng.normal(0.0, 1.4 if drift else 1.0, rows)
    base = rng.normal(50.0, 10.0, rows)
    if drift:  # a new segment: 15 % of rows around 72, well off the old body
        moved = rng.random(rows) < 0.15
        base[moved] = rng.normal(72.0, 3.0, int(moved.sum()))
    cols["normal_new_mode"] = base
    cols["normal_plain"] = rng.normal(-20.0, 5.0, rows)
    cols["lognormal_tail"] = rng.lognormal(3.0, 0.8 if drift else 0.6, rows)
    cols["lognormal_income"] = rng.lognormal(10.5, 0.9, rows)
    cols["lognormal_small"] = rng.lognormal(0.0, 0.3, rows)
    cols["uniform_unit"] = rng.random(rows)
    cols["uniform_age"] = rng.uniform(18.0, 90.0, rows)
    cols["uniform_score"] = rng.uniform(-5.0, 5.0, rows)
    cols["exponential_wait"] = rng.exponential(30.0, rows)
    cols["exponential_gap"] = rng.exponential(0.5, rows)
    cols["exponential_size"] = rng.exponential(1_000.0, rows) + 10.0
    # Overdispersed counts (negative binomial, mean 50, std about 33): many distinct values.
    rate = 50.0 * (1.2 if drift else 1.0)
    cols["counts_rate"] = rng.negative_binomial(2.5, 2.5 / (2.5 + rate), rows).astype(np.int64)
    cols["counts_visits"] = rng.poisson(200.0, rows).astype(np.int64)
    cols["counts_items"] = rng.negative_binomial(1.5, 1.5 / 21.5, rows).astype(np.int64)
    cols["counts_zero_heavy"] = (rng.poisson(8.0, rows) * (rng.random(rows) < 0.6)).astype(np.int64)
    for name, (low, high, spread, share) in {
        "bimodal_latency": (20.0, 80.0, 8.0, 0.7),
        "bimodal_price": (10.0, 25.0, 2.0, 0.5),
        "bimodal_temp": (-5.0, 25.0, 4.0, 0.35),
    }.items():
        first = rng.random(rows) < share
        cols[name] = np.where(first, rng.normal(low, spread, rows), rng.normal(high, spread, rows))
    return cols


def _categorical(rng: np.random.Generator, rows: int, drift: bool) -> dict[str, np.ndarray]:
    """Return the five categorical columns as strings, drifted where `drift` says."""
    cols: dict[str, np.ndarray] = {}
    for name, count in CATEGORIES.items():
        shares = _shares(count)
        if drift and name == "cat_channel":
            # Ten points more for one mid-sized category, taken evenly in proportion elsewhere.
            others = np.arange(count) != GAINER
            shares = shares.copy()
            shares[others] *= (1.0 - shares[GAINER] - 0.10) / shares[others].sum()
            shares[GAINER] += 0.10
        labels = np.array([f"{name[4:]}_{i:02d}" for i in range(count)], dtype=object)
        cols[name] = labels[rng.choice(count, size=rows, p=shares)]
    return cols


def frame(kind: str, rows: int) -> pd.DataFrame:
    """Return the `kind` frame ("reference", "drifted" or "fresh") of `rows` rows."""
    stream = {"reference": 0, "drifted": 1, "fresh": 2}[kind]
    rng = np.random.default_rng([SEED, stream])
    drift = kind == "drifted"
    return pd.DataFrame({**_numeric(rng, rows, drift), **_categorical(rng, rows, drift)})


def frames(rows: int) -> dict[str, pd.DataFrame]:
    """Return the three frames by kind."""
    return {kind: frame(kind, rows) for kind in ("reference", "drifted", "fresh")}


def columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Return the numeric and the categorical column names of a generated frame."""
    categorical = [c for c in df.columns if c.startswith("cat_")]
    return [c for c in df.columns if c not in categorical], categorical


def checksum(frames_by_kind: dict[str, Any]) -> str:
    """Return a digest of the frames' values that ignores dtypes (object or string columns)."""
    digest = hashlib.sha256()
    for kind in sorted(frames_by_kind):
        df = frames_by_kind[kind]
        for name in df.columns:
            values = df[name].to_numpy()
            if name.startswith("cat_"):
                digest.update("\n".join(map(str, values)).encode())
            else:
                digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:16]

"""Bounded summaries of one column, built chunk by chunk: what the drift detectors compare.

A numeric reference fixes a grid of its own quantiles (`GRID` bins); every later sample of that
column is counted on the same grid, with the mass beyond either end kept as a count and a sum
of distances, so Kolmogorov-Smirnov, Wasserstein and PSI all come from two arrays of counts.
The reference's CDF is exact at each grid point; a window of millions of rows costs one
`searchsorted` per chunk and `GRID + 1` integers of memory. Categories are counted by name,
at most `MAX_CATEGORIES` of them; the rest share one `OTHER` count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"
GRID = 500  # quantile bins of a numeric reference: KS is exact to 1/GRID of its mass
MAX_CATEGORIES = 1000
OTHER = "(other)"


def column_kind(column: pd.Series) -> str | None:
    """Return NUMERIC, CATEGORICAL, or None for a column no detector compares (dates, times)."""
    from pandas.api import types

    dtype = column.dtype
    if types.is_bool_dtype(dtype):
        return CATEGORICAL
    if types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        return NUMERIC
    inferred = types.infer_dtype(column, skipna=True) if types.is_object_dtype(dtype) else ""
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return NUMERIC
    timely = ("datetime", "datetime64", "date", "timedelta", "time", "period")
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        return None
    # ISO dates as text (a CSV's) too: every new day would be a new category.
    return None if inferred in timely or _dates(column) else CATEGORICAL


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")


def _dates(column: pd.Series) -> bool:
    """Return True if the column's first values are all ISO 8601 dates or times, as text."""
    sample = column.dropna().head(100)
    return bool(len(sample)) and all(
        isinstance(v, str) and _ISO_DATE.fullmatch(v.strip()) for v in sample
    )


def numbers(column: pd.Series) -> np.ndarray[Any, Any]:
    """Return a column as float64 (nulls as NaN); InvalidInput if it holds more than numbers."""
    import pandas as pd

    try:
        return np.asarray(pd.to_numeric(column, errors="raise"), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"column {column.name!r} holds values that are not numbers") from exc


@dataclass
class NumericSketch:
    """Counts of a numeric sample on a fixed grid, plus what lies beyond its two ends."""

    edges: np.ndarray[Any, Any]
    counts: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The sum of the values in each slot: with the counts, the exact integral of the sample's
    # CDF over each bin, and the exact distance of the mass beyond the grid's ends.
    sums: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0))
    # Values equal to each edge: the CDF just below an edge, where an atom makes KS jump.
    ties: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nulls: int = 0
    infinite: int = 0
    average: float = 0.0
    spread: float = 0.0  # sum of squared distances from the average, merged chunk by chunk
    low: float = float("inf")
    high: float = float("-inf")
    distinct: int = 0  # known for a reference only

    def __post_init__(self) -> None:
        if self.counts.size != self.edges.size + 1:
            self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        if self.sums.size != self.edges.size + 1:
            self.sums = np.zeros(len(self.edges) + 1, dtype=np.float64)
        if self.ties.size != self.edges.size:
            self.ties = np.zeros(len(self.edges), dtype=np.int64)

    @classmethod
    def of_reference(cls, values: np.ndarray[Any, Any], grid: int = GRID) -> Self:
        """Return the sketch of a reference sample on a grid of its own quantiles."""
        finite = values[np.isfinite(values)]
        ordered = np.sort(finite)
        if ordered.size:
            position = np.linspace(0.0, ordered.size - 1, grid + 1)
            below = np.floor(position).astype(np.intp)
            above = np.minimum(below + 1, ordered.size - 1)
            frac = position - below
            edges = np.unique(ordered[below] + (ordered[above] - ordered[below]) * frac)
        else:
            edges = np.zeros(1)
        sketch = cls(edges)
        sketch._count(ordered)
        sketch.nulls = int(np.count_nonzero(np.isnan(values)))
        sketch.infinite = values.size - ordered.size - sketch.nulls
        if ordered.size:
            sketch.distinct = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
        return sketch

    @property
    def n(self) -> int:
        """Return the count of finite values."""
        return int(self.counts.sum())

    def update(self, values: np.ndarray[Any, Any]) -> None:
        """Count more values (float64; NaN is null, infinities are counted apart)."""
        finite = values[np.isfinite(values)]
        nan = int(np.count_nonzero(np.isnan(values)))
        self.nulls += nan
        self.infinite += values.size - finite.size - nan
        if not finite.size:
            return
        self._count(np.sort(finite))

    def _count(self, ordered: np.ndarray[Any, Any]) -> None:
        """Count sorted finite values: one search per edge, not one per value."""
        if not ordered.size:
            return
        at_or_below = np.searchsorted(ordered, self.edges, side="right")
        bounds = np.concatenate(([0], at_or_below, [ordered.size]))
        counts = np.diff(bounds)
        held = counts > 0
        sums = np.zeros(counts.size)
        sums[held] = np.add.reduceat(ordered, bounds[:-1][held])
        before, size = self.n, ordered.size
        # Chan's merge of (count, mean, squared deviations): exact far from zero, where
        # sum(x^2)/n - mean^2 would cancel to nothing (timestamps, large ids).
        average = float(ordered.mean())
        spread = float(np.sum((ordered - average) ** 2))
        delta = average - self.average
        self.average += delta * size / (before + size)
        self.spread += spread + delta * delta * before * size / (before + size)
        self.counts += counts
        self.sums += sums
        self.ties += at_or_below - np.searchsorted(ordered, self.edges, side="left")
        self.low = min(self.low, float(ordered[0]))
        self.high = max(self.high, float(ordered[-1]))

    @property
    def below(self) -> float:
        """Return the sum of (edges[0] - x) over the values at or below edges[0]."""
        return float(self.edges[0] * self.counts[0] - self.sums[0])

    @property
    def above(self) -> float:
        """Return the sum of (x - edges[-1]) over the values above edges[-1]."""
        return float(self.sums[-1] - self.edges[-1] * self.counts[-1])

    def areas(self) -> np.ndarray[Any, Any]:
        """Return the integral of the CDF over each bin between two edges (exact)."""
        n = self.n
        if not n:
            return np.zeros(self.edges.size - 1)
        start = self.cdf()[:-1]
        inner_counts, inner_sums = self.counts[1:-1], self.sums[1:-1]
        areas: np.ndarray[Any, Any] = start * np.diff(self.edges)
        areas += (inner_counts * self.edges[1:] - inner_sums) / n
        return areas

    def empty_like(self) -> NumericSketch:
        """Return an empty sketch on the same grid."""
        return NumericSketch(self.edges)

    def cdf(self) -> np.ndarray[Any, Any]:
        """Return the share of values at or below each edge."""
        n = self.n
        cumulative = np.cumsum(self.counts[:-1])
        return cumulative / n if n else cumulative.astype(float)

    def cdf_below(self) -> np.ndarray[Any, Any]:
        """Return the share of values strictly below each edge."""
        n = self.n
        cumulative: np.ndarray[Any, Any] = np.cumsum(self.counts[:-1]) - self.ties
        return cumulative / n if n else cumulative.astype(float)

    def mean(self) -> float | None:
        """Return the mean of the finite values."""
        return self.average if self.n else None

    def std(self) -> float | None:
        """Return the population standard deviation of the finite values."""
        n = self.n
        return float(np.sqrt(max(self.spread / n, 0.0))) if n else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (read back by `from_dict`)."""
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "ties": self.ties.tolist(),
            "nulls": self.nulls,
            "infinite": self.infinite,
            "average": self.average,
            "spread": self.spread,
            "low": self.low if np.isfinite(self.low) else None,
            "high": self.high if np.isfinite(self.high) else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSketch:
        """Return the sketch `to_dict` wrote."""
        low, high = data.get("low"), data.get("high")
        return cls(
            np.asarray(data["edges"], dtype=np.float64),
            np.asarray(data["counts"], dtype=np.int64),
            sums=np.asarray(data["sums"], dtype=np.float64),
            ties=np.asarray(data["ties"], dtype=np.int64),
            nulls=int(data["nulls"]),
            infinite=int(data["infinite"]),
            average=float(data["average"]),
            spread=float(data["spread"]),
            low=float("inf") if low is None else float(low),
            high=float("-inf") if high is None else float(high),
        )


@dataclass
class CategoricalSketch:
    """Counts of a sample's values by label, at most MAX_CATEGORIES of them by name.

    A reference keeps its most common labels; a sample compared with it counts the labels the
    reference kept, and, when the reference had to lump the rest into OTHER, lumps every other
    label there too, so both sides always share their buckets.
    """

    counts: dict[str, int] = field(default_factory=dict)
    nulls: int = 0
    known: frozenset[str] = frozenset()  # the reference's labels, for a sample compared with it
    lumped: bool = False  # the reference counted labels past the limit as OTHER

    @property
    def n(self) -> int:
        """Return the count of non-null values."""
        return sum(self.counts.values())

    def update(self, column: pd.Series) -> None:
        """Count more values; nulls apart, labels past the limit as OTHER."""
        present = column.dropna()
        self.nulls += len(column) - len(present)
        found = labels(present)
        extra = sum(1 for k in self.counts if k not in self.known and k != OTHER)
        # The most common first, so that the labels kept by name are the ones that matter.
        for label in sorted(found, key=found.__getitem__, reverse=True):
            key = label
            if label not in self.counts and label not in self.known:
                if self.lumped or extra >= MAX_CATEGORIES:
                    key = OTHER
                else:
                    extra += 1
            self.counts[key] = self.counts.get(key, 0) + found[label]

    def empty_like(self) -> CategoricalSketch:
        """Return an empty sketch of a sample to compare with this one."""
        return CategoricalSketch(
            known=frozenset(self.counts) - {OTHER}, lumped=OTHER in self.counts
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (read back by `from_dict`)."""
        return {"counts": self.counts, "nulls": self.nulls}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalSketch:
        """Return the sketch `to_dict` wrote."""
        return cls({str(k): int(v) for k, v in data["counts"].items()}, int(data["nulls"]))


Sketch = NumericSketch | CategoricalSketch


def labels(present: pd.Series) -> dict[str, int]:
    """Return how often each value occurs, by a label that reads the same whatever the dtype:
    1, 1.0 and True are "1"."""
    from pandas.api import types

    if types.is_bool_dtype(present.dtype):
        trues = int(np.count_nonzero(present.to_numpy(dtype=bool)))
        return {k: n for k, n in (("1", trues), ("0", len(present) - trues)) if n}
    counts = present.value_counts(sort=False)
    found: dict[str, int] = {}
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        label = _label(value)
        found[label] = found.get(label, 0) + int(count)
    return found


def _label(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"  # True and 1 are one label, as True == 1 in Python
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)

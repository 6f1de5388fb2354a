"""Drift detectors: one contract, `fit(reference)` then `score(current)`, over column sketches.

Numeric: Kolmogorov-Smirnov (a p-value test), normalised Wasserstein and PSI (distances).
Categorical: chi-squared (a p-value test) and Jensen-Shannon (a distance). A p-value test flags
drift only when its effect is also at least `min_effect` (the KS statistic, Cramér's V): with a
million rows every column differs "significantly", and a column that moved by a hair is not
news. Each detector takes its settings in `__init__`, learns the reference in `fit` and gives
them back from `get_params`, so a stored result can be re-created.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any, ClassVar, Self

import numpy as np

from loopml.core import plugins
from loopml.errors import InvalidInput, InvalidState
from loopml.monitoring.sketch import (
    CATEGORICAL,
    NUMERIC,
    CategoricalSketch,
    NumericSketch,
    Sketch,
    numbers,
)

MIN_STD = 0.001  # Wasserstein is divided by max(reference std, MIN_STD)
MIN_ROWS = 30  # fewer current values than this give no verdict
# The 95th percentile of the normalised Wasserstein distance between two samples of one
# distribution is about 2.2 * sqrt(1/n + 1/m) (simulated: normal, lognormal, uniform).
CHANCE_WASSERSTEIN = 2.2
ENTRY_POINT_GROUP = "loopml.detectors"
BUILT_IN: dict[str, str] = {
    "ks": "loopml.monitoring.detectors:KolmogorovSmirnov",
    "wasserstein": "loopml.monitoring.detectors:Wasserstein",
    "psi": "loopml.monitoring.detectors:PopulationStability",
    "chisquare": "loopml.monitoring.detectors:ChiSquared",
    "jensenshannon": "loopml.monitoring.detectors:JensenShannon",
}


@dataclass(frozen=True)
class Score:
    """One column's verdict: the statistic, its p-value for a test, and whether it drifted.

    `drift` is None when there is no verdict (too few values); `note` says why.
    """

    method: str
    statistic: float | None
    threshold: float
    drift: bool | None
    p_value: float | None = None
    effect: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


class Detector:
    """Compare a column against its reference: `fit(reference)`, then `score(current)`."""

    name: ClassVar[str]
    kind: ClassVar[str]  # NUMERIC or CATEGORICAL: what it reads
    default_threshold: ClassVar[float]

    def __init__(self, threshold: float | None = None, *, min_rows: int = MIN_ROWS) -> None:
        if threshold is not None and not _positive(threshold):
            raise InvalidInput(f"{self.name} threshold must be a number above 0, not {threshold!r}")
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise InvalidInput(f"min_rows must be an integer of 1 or more, not {min_rows!r}")
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        self.min_rows = min_rows

    def get_params(self) -> dict[str, Any]:
        """Return the settings this detector was made with."""
        return {"threshold": self.threshold, "min_rows": self.min_rows}

    def fit(self, reference: Any) -> Self:
        """Learn the reference: a sketch, or a column (Series or array) to sketch."""
        self.reference_ = self._sketch(reference, None)
        return self

    def sketch(self, current: Any) -> Sketch:
        """Return `current` (a column) as a sketch this detector scores."""
        sketch: Sketch = self._sketch(current, self._fitted())
        return sketch

    def score(self, current: Any) -> Score:
        """Return the verdict on `current`: a sketch from `sketch`, or a column."""
        reference = self._fitted()
        sketch = self._sketch(current, reference)
        if not reference.n:
            return Score(self.name, None, self.threshold, None, note="reference has no values")
        if sketch.n < self.min_rows:
            note = f"too few values to judge ({sketch.n} < {self.min_rows})"
            if getattr(sketch, "infinite", 0):
                note += f"; {sketch.infinite} infinite value(s) left out"
            return Score(self.name, None, self.threshold, None, note=note)
        found = self._score(reference, sketch)
        chance = self.chance(reference, sketch.n)
        if not found.drift or found.statistic is None or found.statistic >= chance:
            return found
        # Over the threshold, but no further than chance alone takes a sample this small.
        note = (
            f"no verdict: {found.statistic:.3g} is within what chance gives {sketch.n} values "
            f"one time in 20 ({chance:.3g}); more values will tell"
        )
        return replace(found, drift=None, note=note)

    def chance(self, reference: Any, n: int) -> float:
        """Return the statistic that chance alone exceeds one time in 20 between `reference`
        and `n` values of its own distribution. A distance between two samples of one
        distribution shrinks with their sizes but is never zero; a p-value test accounts for
        its sample sizes itself (0)."""
        return 0.0

    def _fitted(self) -> Any:
        try:
            return self.reference_
        except AttributeError:
            raise InvalidState(
                f"{type(self).__name__} is not fitted; call fit(reference) first"
            ) from None

    def _sketch(self, data: Any, reference: Any) -> Any:
        raise NotImplementedError

    def _score(self, reference: Any, current: Any) -> Score:
        raise NotImplementedError


class _Numeric(Detector):
    kind = NUMERIC

    def _sketch(self, data: Any, reference: NumericSketch | None) -> NumericSketch:
        if isinstance(data, NumericSketch):
            if reference is not None and not np.array_equal(data.edges, reference.edges):
                raise InvalidInput("the sketch was not made on this reference's grid; use sketch()")
            return data
        if isinstance(data, CategoricalSketch):
            raise InvalidInput(f"{self.name} compares numbers, not categories")
        values = _as_numbers(data)
        if reference is None:
            return NumericSketch.of_reference(values)
        sketch = reference.empty_like()
        sketch.update(values)
        return sketch


class _Categorical(Detector):
    kind = CATEGORICAL

    def _sketch(self, data: Any, reference: CategoricalSketch | None) -> CategoricalSketch:
        import pandas as pd

        if isinstance(data, CategoricalSketch):
            return data
        if isinstance(data, NumericSketch):
            raise InvalidInput(f"{self.name} compares categories, not a numeric sketch")
        sketch = CategoricalSketch()
        sketch.update(data if isinstance(data, pd.Series) else pd.Series(np.asarray(data)))
        return sketch


class _EffectFloor(Detector):
    """A p-value test: drift when p < threshold and the effect is at least `min_effect`."""

    default_threshold = 0.05

    def __init__(
        self, threshold: float | None = None, *, min_effect: float = 0.05, min_rows: int = MIN_ROWS
    ) -> None:
        super().__init__(threshold, min_rows=min_rows)
        self.min_effect = _effect(min_effect)

    def get_params(self) -> dict[str, Any]:
        """Return the settings this detector was made with."""
        return {**super().get_params(), "min_effect": self.min_effect}


class KolmogorovSmirnov(_EffectFloor, _Numeric):
    """Two-sample Kolmogorov-Smirnov: drift when p <= threshold and D >= min_effect."""

    name = "ks"

    def _score(self, reference: NumericSketch, current: NumericSketch) -> Score:
        from scipy.stats import kstwobign

        # The sup of |F - G| is reached at an edge or just below one (where an atom jumps).
        at = np.abs(reference.cdf() - current.cdf())
        below = np.abs(reference.cdf_below() - current.cdf_below())
        d = float(max(np.max(at, initial=0.0), np.max(below, initial=0.0)))
        n, m = reference.n, current.n
        p = float(kstwobign.sf(d * np.sqrt(n * m / (n + m))))
        drift = p <= self.threshold and d >= self.min_effect
        return Score(self.name, d, self.threshold, drift, p_value=p, effect=d)


class Wasserstein(_Numeric):
    """Wasserstein-1 distance over max(reference std, 0.001): drift when >= threshold."""

    name = "wasserstein"
    default_threshold = 0.1

    def chance(self, reference: NumericSketch, n: int) -> float:
        """Return about 2.2 * sqrt(1/n + 1/m) (0 for a constant reference: a sample of it is
        the same constant)."""
        if reference.edges.size == 1:
            return 0.0
        return CHANCE_WASSERSTEIN * math.sqrt(1 / n + 1 / reference.n)

    def _score(self, reference: NumericSketch, current: NumericSketch) -> Score:
        distance = wasserstein(reference, current) / max(reference.std() or 0.0, MIN_STD)
        return Score(self.name, distance, self.threshold, distance >= self.threshold)


class PopulationStability(_Numeric):
    """Population stability index over the reference's deciles: drift when >= threshold."""

    name = "psi"
    default_threshold = 0.1

    def __init__(
        self, threshold: float | None = None, *, buckets: int = 10, min_rows: int = MIN_ROWS
    ) -> None:
        super().__init__(threshold, min_rows=min_rows)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 2:
            raise InvalidInput(f"psi buckets must be an integer of 2 or more, not {buckets!r}")
        self.buckets = buckets

    def get_params(self) -> dict[str, Any]:
        """Return the settings this detector was made with."""
        return {**super().get_params(), "buckets": self.buckets}

    def chance(self, reference: NumericSketch, n: int) -> float:
        """Return about chi2_95(buckets - 1) * (1/n + 1/m)."""
        return _chi2_95(self.buckets - 1) * (1 / n + 1 / reference.n)

    def _score(self, reference: NumericSketch, current: NumericSketch) -> Score:
        ref_cdf, cur_cdf = reference.cdf(), current.cdf()
        # Bucket edges: the grid points nearest the reference's deciles.
        cuts = np.unique(np.searchsorted(ref_cdf, np.arange(1, self.buckets) / self.buckets))
        cuts = cuts[cuts < ref_cdf.size]
        ref_share = np.diff(np.concatenate(([0.0], ref_cdf[cuts], [1.0])))
        cur_share = np.diff(np.concatenate(([0.0], cur_cdf[cuts], [1.0])))
        index = psi(ref_share, cur_share)
        return Score(self.name, index, self.threshold, index >= self.threshold)


class ChiSquared(_EffectFloor, _Categorical):
    """Chi-squared test of the two samples' counts: drift when p < threshold and Cramér's V
    >= min_effect. With two categories it is the two-proportion z-test (z squared = chi2)."""

    name = "chisquare"

    def _score(self, reference: CategoricalSketch, current: CategoricalSketch) -> Score:
        from scipy.stats import chi2

        ref, cur = _aligned(reference, current)
        table = np.vstack([ref, cur])
        keep = table.sum(axis=0) > 0
        table = table[:, keep]
        if table.shape[1] < 2:
            return Score(self.name, 0.0, self.threshold, False, p_value=1.0, effect=0.0)
        total = table.sum()
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
        statistic = float(np.sum((table - expected) ** 2 / expected))
        p = float(chi2.sf(statistic, table.shape[1] - 1))
        v = float(np.sqrt(statistic / total))  # Cramér's V of a 2-row table
        drift = p < self.threshold and v >= self.min_effect
        return Score(self.name, statistic, self.threshold, drift, p_value=p, effect=v)


class JensenShannon(_Categorical):
    """Jensen-Shannon distance (base 2, 0..1) of the category shares: drift when >= threshold."""

    name = "jensenshannon"
    default_threshold = 0.1

    def chance(self, reference: CategoricalSketch, n: int) -> float:
        """Return about sqrt(chi2_95(k - 1) * (1/n + 1/m) / (8 ln 2)) for k categories."""
        spread = _chi2_95(max(len(reference.counts), 2) - 1) * (1 / n + 1 / reference.n)
        return math.sqrt(spread / (8 * math.log(2)))

    def _score(self, reference: CategoricalSketch, current: CategoricalSketch) -> Score:
        ref, cur = _aligned(reference, current)
        distance = jensen_shannon(ref / ref.sum(), cur / cur.sum())
        return Score(self.name, distance, self.threshold, distance >= self.threshold)


def wasserstein(reference: NumericSketch, current: NumericSketch) -> float:
    """Return the Wasserstein-1 distance of two sketches on one grid.

    Each sample's CDF integrates exactly over each bin (from its counts and sums), so the
    distance is exact over every bin where the two CDFs do not cross; in the few where they
    do, both are taken as linear. Beyond the grid only the current sample has mass, and its
    distance to the grid's ends is exact too.
    """
    gap = reference.cdf() - current.cdf()
    a, b = gap[:-1], gap[1:]
    width = np.diff(reference.edges)
    exact = np.abs(reference.areas() - current.areas())
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = width * (a * a + b * b) / (2 * (np.abs(a) + np.abs(b)))
    inside = float(np.sum(np.where(a * b >= 0, exact, np.nan_to_num(crossing))))
    return inside + (current.below + current.above) / current.n


def psi(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> float:
    """Return the population stability index of two share vectors (empty shares as 0.0001)."""
    ref, cur = np.clip(reference, 1e-4, None), np.clip(current, 1e-4, None)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def jensen_shannon(p: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> float:
    """Return the Jensen-Shannon distance (base 2) of two share vectors."""
    m = (p + q) / 2
    divergence = (_kl(p, m) + _kl(q, m)) / 2
    return float(min(np.sqrt(max(divergence, 0.0)), 1.0))


def detector(method: str, **params: Any) -> Detector:
    """Return a new detector by its name (built-in or from a `loopml.detectors` entry point)."""
    known = available(method)
    if method not in known:
        raise InvalidInput(f"unknown drift method {method!r}; methods: {', '.join(sorted(known))}")
    cls = plugins.resolve(known[method])
    try:
        made: Detector = cls(**params)
    except TypeError as exc:
        raise InvalidInput(f"drift method {method!r} does not take {sorted(params)}: {exc}") from (
            None
        )
    return made


def available(method: str | None = None) -> dict[str, str]:
    """Return every detector name and where it lives, built-ins first (entry points are read
    only when `method` is not a built-in)."""
    found = dict(BUILT_IN)
    if method in found:
        return found
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point.value)
    return found


def default_method(kind: str, distinct: int, reference_rows: int) -> str:
    """Return the method for a column: p-value tests up to 1,000 reference rows, distances
    above; numbers with at most 5 distinct values are compared as categories."""
    small = reference_rows <= 1000
    if kind == NUMERIC and distinct > 5:
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def _chi2_95(dof: int) -> float:
    """Return the 95th percentile of chi-squared with `dof` degrees (Wilson-Hilferty: within
    a few percent, and no SciPy import where none is needed)."""
    k = max(dof, 1)
    return float(k * (1 - 2 / (9 * k) + 1.645 * math.sqrt(2 / (9 * k))) ** 3)


def _aligned(
    reference: CategoricalSketch, current: CategoricalSketch
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    keys = sorted(reference.counts.keys() | current.counts.keys())
    ref = np.array([reference.counts.get(k, 0) for k in keys], dtype=float)
    cur = np.array([current.counts.get(k, 0) for k in keys], dtype=float)
    return ref, cur


def _kl(p: np.ndarray[Any, Any], m: np.ndarray[Any, Any]) -> float:
    held = p > 0
    return float(np.sum(p[held] * np.log2(p[held] / m[held])))


def _as_numbers(data: Any) -> np.ndarray[Any, Any]:
    import pandas as pd

    if isinstance(data, pd.Series):
        return numbers(data)
    array = np.asarray(data)
    if array.dtype.kind not in "iufb":
        return numbers(pd.Series(array))
    return array.astype(np.float64, copy=False).ravel()


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and value > 0
    )


def _effect(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidInput(f"min_effect must be a number from 0 to 1, not {value!r}")
    return float(value)

"""A/B statistics for deployments: which arm is better on a metric, by how much, how surely."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats  # scipy ships no stubs

from loopml.errors import InvalidInput

# Per arm: the shift's pairwise differences stay at 2,000 x 2,000 floats (32 MB) at most.
PAIRWISE_CAP = 2_000
_SUBSAMPLE_SEED = 1729  # fixed so the same data always gives the same verdict
# Conventional cut-offs of |effect_size| for small, medium and large: Cohen's for h, and his
# correlation cut-offs for the rank-biserial r. Below the first the effect is negligible.
H_CUTOFFS = (0.2, 0.5, 0.8)
R_CUTOFFS = (0.1, 0.3, 0.5)
_EFFECTS = ("negligible", "small", "medium", "large")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Comparison:
    """The verdict on one metric of an A/B test; difference and effect size are signed b - a."""

    metric: str
    test: str
    a: float
    b: float
    n_a: int
    n_b: int
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    effect_size: float
    effect: str
    winner: str | None
    reason: str
    dropped: int = 0  # NaN or infinite values left out of the arms before testing

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain JSON-serialisable values."""
        return asdict(self)


def compare_rates(
    metric: str,
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    min_samples: int = 30,
) -> Comparison:
    """Compare two rates by pooled z-test, Newcombe hybrid score interval and Cohen's h."""
    _check_settings(metric, higher_is_better, confidence, min_samples)
    s_a, n_a = _counts("a", successes_a, n_a)
    s_b, n_b = _counts("b", successes_b, n_b)
    rate_a = s_a / n_a if n_a else 0.0
    rate_b = s_b / n_b if n_b else 0.0
    # With an empty arm there is nothing to compare: the difference may lie anywhere in [-1, 1].
    difference, ci, p_value, h = 0.0, (-1.0, 1.0), 1.0, 0.0
    if n_a and n_b:
        pooled = (s_a + s_b) / (n_a + n_b)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        # All successes or none in both arms: no variation, so no evidence of a difference.
        p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(rate_b - rate_a) / se))
        low_a, high_a = _wilson(rate_a, n_a, _z(confidence))
        low_b, high_b = _wilson(rate_b, n_b, _z(confidence))
        difference = rate_b - rate_a
        ci = (
            difference - math.hypot(rate_b - low_b, high_a - rate_a),
            difference + math.hypot(high_b - rate_b, rate_a - low_a),
        )
        h = 2 * math.asin(math.sqrt(rate_b)) - 2 * math.asin(math.sqrt(rate_a))
    found = Comparison(
        metric=metric, test="two-proportion z", a=rate_a, b=rate_b, n_a=n_a, n_b=n_b,
        difference=difference, ci_low=ci[0], ci_high=ci[1], confidence=float(confidence),
        p_value=p_value, effect_size=h, effect=_effect(h, H_CUTOFFS), winner=None, reason="",
    )  # fmt: skip
    return _judged(found, higher_is_better, min_samples)


def compare_values(
    metric: str,
    values_a: npt.ArrayLike,
    values_b: npt.ArrayLike,
    *,
    higher_is_better: bool = False,
    confidence: float = 0.95,
    min_samples: int = 30,
) -> Comparison:
    """Compare two samples by Mann-Whitney U, rank-biserial r and Hodges-Lehmann shift b - a."""
    _check_settings(metric, higher_is_better, confidence, min_samples)
    a, dropped_a = _finite("values_a", values_a)
    b, dropped_b = _finite("values_b", values_b)
    p_value, r, shift, ci = 1.0, 0.0, 0.0, (0.0, 0.0)
    # An empty arm, or one value everywhere, leaves nothing to rank: no evidence either way.
    if a.size and b.size and np.ptp(np.concatenate([a, b])) > 0:
        result = stats.mannwhitneyu(a, b, alternative="two-sided")
        p_value = float(result.pvalue)
        r = 1 - 2 * float(result.statistic) / (a.size * b.size)
        shift, ci = _hodges_lehmann(a, b, confidence)
    found = Comparison(
        metric=metric, test="mann-whitney u", a=_median(a), b=_median(b), n_a=a.size,
        n_b=b.size, difference=shift, ci_low=ci[0], ci_high=ci[1], confidence=float(confidence),
        p_value=p_value, effect_size=r, effect=_effect(r, R_CUTOFFS), winner=None, reason="",
        dropped=dropped_a + dropped_b,
    )  # fmt: skip
    return _judged(found, higher_is_better, min_samples)


def _judged(found: Comparison, higher_is_better: bool, min_samples: int) -> Comparison:
    """Return the comparison with a winner only on enough samples, a small p and a clear CI."""
    level = f"{found.confidence * 100:g}% CI {found.ci_low:+.3g} to {found.ci_high:+.3g}"
    p = f"p = {found.p_value:.2g}"
    winner: str | None = None
    if min(found.n_a, found.n_b) < min_samples:
        reason = (
            f"no winner yet: {found.n_a} and {found.n_b} samples, "
            f"at least {min_samples} per arm needed"
        )
    elif found.p_value >= 1 - found.confidence:
        reason = f"no significant difference ({p})"
    elif found.ci_low <= 0 <= found.ci_high:
        reason = f"no significant difference: {p} but the {level} includes 0"
    else:
        winner = "b" if (found.ci_low > 0) == higher_is_better else "a"
        loser = "a" if winner == "b" else "b"
        value = {"a": found.a, "b": found.b}
        word = "median " if found.test == "mann-whitney u" else ""
        reason = (
            f"{winner} is better: {found.metric} {word}{value[winner]:.3g} for {winner} vs "
            f"{value[loser]:.3g} for {loser} (difference b-a {found.difference:+.3g}, "
            f"{level}, {p})"
        )
    if found.dropped:
        reason += f"; {found.dropped} NaN or infinite values dropped"
    return replace(found, winner=winner, reason=reason)


def _effect(size: float, cutoffs: tuple[float, float, float]) -> str:
    """Return the conventional name of an effect size's magnitude."""
    return _EFFECTS[sum(abs(size) >= cut for cut in cutoffs)]


def _median(values: FloatArray) -> float:
    """Return the median, or 0.0 for an arm with no values."""
    return float(np.median(values)) if values.size else 0.0


def _hodges_lehmann(
    a: FloatArray, b: FloatArray, confidence: float
) -> tuple[float, tuple[float, float]]:
    """Return the median pairwise difference b - a and its order-statistic interval."""
    a, b = _capped(a), _capped(b)
    m, n = a.size, b.size
    total = m * n
    diffs = (b[None, :] - a[:, None]).ravel()
    # The interval's ends are the k-th smallest and k-th largest differences, with k from the
    # normal approximation to U's null distribution (continuity-corrected, no tie correction).
    spread = math.sqrt(m * n * (m + n + 1) / 12)
    k = min(max(math.floor(total / 2 + 0.5 - _z(confidence) * spread), 1), (total + 1) // 2)
    middle = ((total - 1) // 2, total // 2)
    ordered = np.partition(diffs, sorted({k - 1, total - k, *middle}))
    shift = (float(ordered[middle[0]]) + float(ordered[middle[1]])) / 2
    return shift, (float(ordered[k - 1]), float(ordered[total - k]))


def _capped(values: FloatArray) -> FloatArray:
    """Return the values, or a seeded random PAIRWISE_CAP of them when there are more."""
    if values.size <= PAIRWISE_CAP:
        return values
    # The shift's interval then reflects the subsample, so it is wider than all the values
    # would give: a cautious verdict. The p-value and effect size still use every value.
    return np.random.default_rng(_SUBSAMPLE_SEED).choice(values, PAIRWISE_CAP, replace=False)


def _wilson(rate: float, n: int, z: float) -> tuple[float, float]:
    """Return the Wilson score interval of a rate observed over n trials."""
    z2n = z * z / n
    centre = (rate + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(rate * (1 - rate) / n + z2n / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _z(confidence: float) -> float:
    """Return the two-sided standard normal quantile for a confidence level."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _finite(name: str, values: npt.ArrayLike) -> tuple[FloatArray, int]:
    """Return the finite values as a float array and how many others were dropped."""
    message = f"{name} must be a list or array of numbers; got {type(values).__name__}"
    try:
        raw = np.asarray(values)
        # Booleans, integers, floats, and objects such as None (read as NaN, then dropped).
        numeric = raw.dtype.kind in "biufO"
        array = raw.astype(np.float64) if numeric else raw
    except (TypeError, ValueError) as exc:
        raise InvalidInput(message) from exc
    if not numeric:
        raise InvalidInput(message)
    if array.ndim != 1:
        raise InvalidInput(
            f"{name} must be one-dimensional (one value per request); got shape {array.shape}"
        )
    keep = np.isfinite(array)
    return array[keep], int(array.size - np.count_nonzero(keep))


def _counts(arm: str, successes: int, n: int) -> tuple[int, int]:
    """Return validated (successes, n) for one arm."""
    for name, value in ((f"successes_{arm}", successes), (f"n_{arm}", n)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidInput(f"{name} must be a whole number (an int); got {value!r}")
        if value < 0:
            raise InvalidInput(f"{name} must be 0 or more; got {value}")
    if successes > n:
        raise InvalidInput(
            f"successes_{arm} ({successes}) is more than n_{arm} ({n}); "
            f"pass the successes out of n_{arm} trials"
        )
    return int(successes), int(n)


def _check_settings(
    metric: str, higher_is_better: bool, confidence: float, min_samples: int
) -> None:
    """Raise InvalidInput naming the first unusable setting."""
    if not isinstance(metric, str) or not metric:
        raise InvalidInput(f"metric must be a non-empty name such as 'accuracy'; got {metric!r}")
    if not isinstance(higher_is_better, bool):
        raise InvalidInput(f"higher_is_better must be True or False; got {higher_is_better!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise InvalidInput(f"confidence must be a number such as 0.95; got {confidence!r}")
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1 (such as 0.95); got {confidence}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InvalidInput(f"min_samples must be a whole number of 1 or more; got {min_samples!r}")

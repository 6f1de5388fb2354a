"""Drift detectors: statistics checked against SciPy, the verdict rules and bad settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml.errors import InvalidInput, InvalidState
from loopml.monitoring.detectors import (
    BUILT_IN,
    ChiSquared,
    Detector,
    JensenShannon,
    KolmogorovSmirnov,
    PopulationStability,
    Wasserstein,
    available,
    detector,
)
from loopml.monitoring.sketch import GRID, CategoricalSketch, NumericSketch

ALL = [KolmogorovSmirnov, Wasserstein, PopulationStability, ChiSquared, JensenShannon]


def _samples(name: str, n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "normal":
        return rng.normal(0.0, 1.0, n), rng.normal(0.15, 1.0, m)
    if name == "lognormal":
        return rng.lognormal(0.0, 1.0, n), rng.lognormal(0.3, 1.0, m)
    if name == "uniform":
        return rng.uniform(0.0, 1.0, n), rng.uniform(0.05, 1.05, m)
    if name == "shifted":
        return rng.normal(5.0, 2.0, n), rng.normal(6.0, 2.0, m)
    if name == "scaled":
        return rng.normal(0.0, 1.0, n), rng.normal(0.0, 2.5, m)
    if name == "beyond":  # most of the current lies outside the reference's range
        return rng.uniform(0.0, 1.0, n), rng.uniform(-3.0, 4.0, m)
    raise AssertionError(name)


def _categories(shares: list[float], n: int, seed: int) -> pd.Series:
    labels = [f"plan{i}" for i in range(len(shares))]
    return pd.Series(np.random.default_rng(seed).choice(labels, n, p=shares))


# --- accuracy against SciPy -------------------------------------------------------------


@pytest.mark.parametrize("name", ["normal", "lognormal", "uniform", "shifted", "scaled"])
@pytest.mark.parametrize(("n", "m"), [(800, 600), (5_000, 3_000)])
def test_ks_statistic_and_p_value_match_scipy(name: str, n: int, m: int) -> None:
    reference, current = _samples(name, n, m, seed=n + m)
    score = KolmogorovSmirnov().fit(reference).score(current)
    exact = stats.ks_2samp(reference, current)

    # The grid holds the reference's CDF exactly at GRID points: D is off by at most a cell.
    assert score.statistic == pytest.approx(exact.statistic, abs=1 / GRID + 1 / n)
    assert score.effect == score.statistic
    assert score.p_value is not None and 0 <= score.p_value <= 1
    if exact.pvalue > 1e-12:  # below that both are "zero" for any use
        assert abs(math.log10(score.p_value) - math.log10(exact.pvalue)) < 1.0


def test_ks_sees_mass_moved_below_an_atom_at_the_reference_minimum() -> None:
    # A zero-inflated feature (days since last order, 30 % zeros) whose zeros turn into -1.
    rng = np.random.default_rng(5)

    def days(sentinel: float) -> np.ndarray:
        values = rng.uniform(1.0, 50.0, 800)
        values[rng.random(800) < 0.3] = sentinel
        return values

    reference, current = days(0.0), days(-1.0)
    score = KolmogorovSmirnov().fit(reference).score(current)
    exact = stats.ks_2samp(reference, current)

    assert exact.statistic > 0.25
    assert score.statistic == pytest.approx(exact.statistic, abs=1 / GRID + 1 / 800)
    assert score.drift is True


@pytest.mark.parametrize("name", ["normal", "uniform", "shifted", "scaled", "beyond"])
def test_wasserstein_matches_scipy_over_the_reference_std(name: str) -> None:
    reference, current = _samples(name, 20_000, 20_000, seed=11)
    score = Wasserstein().fit(reference).score(current)
    exact = stats.wasserstein_distance(reference, current) / reference.std()

    assert score.statistic == pytest.approx(exact, rel=0.03)
    assert score.drift is bool(exact >= 0.1)


def test_wasserstein_matches_scipy_on_a_heavy_tail() -> None:
    # Amounts, prices and durations are lognormal-like; the top grid cell is very wide there.
    reference, current = _samples("lognormal", 100_000, 100_000, seed=0)
    score = Wasserstein().fit(reference).score(current)
    exact = stats.wasserstein_distance(reference, current) / reference.std()

    assert score.statistic == pytest.approx(exact, rel=0.05)


def test_wasserstein_counts_mass_far_beyond_the_reference_range() -> None:
    rng = np.random.default_rng(12)
    reference = rng.normal(0.0, 1.0, 10_000)
    current = np.concatenate([rng.normal(0.0, 1.0, 9_000), rng.normal(40.0, 1.0, 1_000)])
    score = Wasserstein().fit(reference).score(current)
    exact = stats.wasserstein_distance(reference, current) / reference.std()

    assert exact > 3.0
    assert score.statistic == pytest.approx(exact, rel=0.01)
    assert score.drift is True


def test_wasserstein_of_a_constant_reference_is_over_the_minimum_std() -> None:
    fitted = Wasserstein().fit(np.full(500, 2.0))

    assert fitted.score(np.full(100, 2.0)).statistic == 0.0
    moved = fitted.score(np.full(100, 2.01))
    assert moved.statistic == pytest.approx(0.01 / 0.001)
    assert moved.drift is True


@pytest.mark.parametrize("name", ["normal", "lognormal", "shifted", "scaled"])
def test_psi_matches_a_hand_computation_on_the_reference_deciles(name: str) -> None:
    reference, current = _samples(name, 20_000, 10_000, seed=13)
    score = PopulationStability().fit(reference).score(current)

    deciles = np.quantile(reference, np.arange(1, 10) / 10)

    def shares(sample: np.ndarray) -> np.ndarray:
        at_or_below = np.searchsorted(np.sort(sample), deciles, side="right")
        return np.diff(np.concatenate(([0], at_or_below, [sample.size]))) / sample.size

    ref, cur = shares(reference), shares(current)
    expected = float(np.sum((ref - cur) * np.log(ref / cur)))
    assert score.statistic == pytest.approx(expected, rel=0.01, abs=1e-4)
    assert score.drift is bool(score.statistic >= 0.1)


def test_psi_gives_empty_buckets_a_small_share_not_infinity() -> None:
    reference = np.random.default_rng(14).uniform(0.0, 1.0, 5_000)
    score = PopulationStability().fit(reference).score(np.full(100, 0.05))

    assert math.isfinite(score.statistic) and score.drift is True


@pytest.mark.parametrize(
    ("ref_shares", "cur_shares"),
    [
        ([0.5, 0.3, 0.2], [0.45, 0.33, 0.22]),
        ([0.7, 0.3], [0.6, 0.4]),
        ([0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_chi_squared_matches_scipy_contingency(ref_shares, cur_shares) -> None:
    reference, current = _categories(ref_shares, 900, 1), _categories(cur_shares, 700, 2)
    score = ChiSquared().fit(reference).score(current)

    labels = sorted(set(reference) | set(current))
    table = np.array(
        [[(reference == k).sum() for k in labels], [(current == k).sum() for k in labels]]
    )
    expected = stats.chi2_contingency(table, correction=False)
    assert score.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert score.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert score.effect == pytest.approx(math.sqrt(expected.statistic / table.sum()))


def test_chi_squared_counts_a_category_new_in_the_current_sample() -> None:
    reference = pd.Series(["a"] * 60 + ["b"] * 40)
    current = pd.Series(["a"] * 30 + ["b"] * 20 + ["c"] * 50)
    score = ChiSquared().fit(reference).score(current)
    expected = stats.chi2_contingency(np.array([[60, 40, 0], [30, 20, 50]]), correction=False)

    assert score.statistic == pytest.approx(expected.statistic)
    assert score.p_value == pytest.approx(expected.pvalue)
    assert score.drift is True


def test_chi_squared_of_one_shared_category_is_no_drift() -> None:
    score = ChiSquared().fit(pd.Series(["a"] * 50)).score(pd.Series(["a"] * 40 + [None] * 5))

    assert (score.statistic, score.p_value, score.drift) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    ("ref_shares", "cur_shares"),
    [([0.5, 0.3, 0.2], [0.4, 0.35, 0.25]), ([0.9, 0.1], [0.5, 0.5]), ([0.2] * 5, [0.2] * 5)],
)
def test_jensen_shannon_matches_scipy(ref_shares, cur_shares) -> None:
    reference, current = _categories(ref_shares, 2_000, 3), _categories(cur_shares, 1_500, 4)
    score = JensenShannon().fit(reference).score(current)

    labels = sorted(set(reference) | set(current))
    p = np.array([(reference == k).mean() for k in labels])
    q = np.array([(current == k).mean() for k in labels])
    expected = jensenshannon(p, q, base=2)
    assert score.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert score.drift is bool(expected >= 0.1)


def test_jensen_shannon_of_disjoint_categories_is_one() -> None:
    score = JensenShannon().fit(pd.Series(["a", "b"] * 50)).score(pd.Series(["c", "d"] * 50))

    assert score.statistic == pytest.approx(1.0)
    assert score.drift is True


# --- the verdict: p-value and effect size ----------------------------------------------


def test_ks_ignores_a_significant_but_tiny_shift_of_millions_of_rows() -> None:
    rng = np.random.default_rng(21)
    reference = rng.normal(0.0, 1.0, 2_000_000)
    fitted = KolmogorovSmirnov().fit(reference)

    tiny = fitted.score(rng.normal(0.01, 1.0, 2_000_000))
    assert tiny.p_value < 1e-6  # "significant" ...
    assert tiny.effect < 0.05  # ... but it moved by a hair
    assert tiny.drift is False

    real = fitted.score(rng.normal(0.3, 1.0, 2_000_000))
    assert real.p_value < 1e-6 and real.effect > 0.05
    assert real.drift is True


def test_chi_squared_ignores_a_significant_but_tiny_share_change() -> None:
    reference = _categories([0.5, 0.3, 0.2], 300_000, 22)
    fitted = ChiSquared().fit(reference)

    tiny = fitted.score(_categories([0.49, 0.305, 0.205], 300_000, 23))
    assert tiny.p_value < 1e-6 and tiny.effect < 0.05
    assert tiny.drift is False

    real = fitted.score(_categories([0.4, 0.35, 0.25], 300_000, 24))
    assert real.p_value < 1e-6 and real.effect > 0.05
    assert real.drift is True


def test_min_effect_zero_lets_the_p_value_decide_alone() -> None:
    rng = np.random.default_rng(25)
    fitted = KolmogorovSmirnov(min_effect=0.0).fit(rng.normal(0.0, 1.0, 200_000))

    assert fitted.score(rng.normal(0.03, 1.0, 200_000)).drift is True
    assert fitted.get_params() == {"threshold": 0.05, "min_rows": 30, "min_effect": 0.0}


def test_a_same_distribution_sample_does_not_drift_under_any_method() -> None:
    rng = np.random.default_rng(26)
    numeric_ref, numeric_cur = rng.normal(size=5_000), rng.normal(size=5_000)
    labels = ["a", "b", "c", "d"]
    cat_ref = pd.Series(rng.choice(labels, 5_000))
    cat_cur = pd.Series(rng.choice(labels, 5_000))

    for cls in (KolmogorovSmirnov, Wasserstein, PopulationStability):
        assert cls().fit(numeric_ref).score(numeric_cur).drift is False, cls.name
    for cls in (ChiSquared, JensenShannon):
        assert cls().fit(cat_ref).score(cat_cur).drift is False, cls.name


def test_too_few_current_values_give_no_verdict_and_say_why() -> None:
    fitted = KolmogorovSmirnov().fit(np.random.default_rng(27).normal(size=500))

    score = fitted.score(np.array([5.0] * 29 + [np.nan] * 10))
    assert score.drift is None and score.statistic is None
    assert "too few values" in score.note and "29 < 30" in score.note
    assert KolmogorovSmirnov(min_rows=5).fit(np.arange(500.0)).score(np.full(5, 900.0)).drift


def test_an_empty_reference_gives_no_verdict() -> None:
    score = Wasserstein().fit(np.array([np.nan] * 10)).score(np.arange(100.0))

    assert score.drift is None and score.note == "reference has no values"


# --- sketches in, scores out ------------------------------------------------------------


def test_scoring_a_sketch_equals_scoring_the_column() -> None:
    rng = np.random.default_rng(28)
    fitted = Wasserstein().fit(pd.Series(rng.normal(size=3_000)))
    current = rng.normal(0.2, 1.1, 4_000)

    sketch = fitted.sketch(current[:1_000])
    assert isinstance(sketch, NumericSketch)
    sketch.update(current[1_000:])
    assert fitted.score(sketch) == fitted.score(current)
    assert fitted.score(pd.Series(current)) == fitted.score(current)


def test_a_sketch_from_another_reference_is_refused() -> None:
    rng = np.random.default_rng(29)
    one = KolmogorovSmirnov().fit(rng.normal(size=100))
    other = KolmogorovSmirnov().fit(rng.normal(size=100))

    with pytest.raises(InvalidInput, match="grid"):
        one.score(other.sketch(rng.normal(size=100)))
    with pytest.raises(InvalidInput, match="not categories"):
        one.score(CategoricalSketch({"a": 40}))
    with pytest.raises(InvalidInput, match="not a numeric sketch"):
        ChiSquared().fit(pd.Series(["a"] * 40)).score(one.reference_)


def test_text_given_to_a_numeric_detector_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not numbers"):
        Wasserstein().fit(np.array(["a", "b"], dtype=object))


@pytest.mark.parametrize("cls", ALL)
def test_scoring_before_fit_is_an_invalid_state(cls: type[Detector]) -> None:
    with pytest.raises(InvalidState, match="fit"):
        cls().score(np.arange(100.0))
    with pytest.raises(InvalidState, match="fit"):
        cls().sketch(np.arange(100.0))


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("threshold", [0, -0.1, math.nan, math.inf, True, "0.1"])
def test_a_threshold_must_be_a_number_above_zero(cls: type[Detector], threshold) -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        cls(threshold)


@pytest.mark.parametrize("min_rows", [0, -1, 2.5, True])
def test_min_rows_must_be_a_positive_integer(min_rows) -> None:
    with pytest.raises(InvalidInput, match="min_rows"):
        Wasserstein(min_rows=min_rows)


@pytest.mark.parametrize("cls", [KolmogorovSmirnov, ChiSquared])
@pytest.mark.parametrize("min_effect", [-0.1, 1.5, math.nan, "0.1"])
def test_min_effect_must_lie_between_zero_and_one(cls: type[Detector], min_effect) -> None:
    with pytest.raises(InvalidInput, match="min_effect"):
        cls(min_effect=min_effect)


@pytest.mark.parametrize("buckets", [1, 0, 2.0])
def test_psi_needs_two_buckets_or_more(buckets) -> None:
    with pytest.raises(InvalidInput, match="buckets"):
        PopulationStability(buckets=buckets)


def test_defaults_are_the_documented_thresholds() -> None:
    assert KolmogorovSmirnov().threshold == 0.05 and ChiSquared().threshold == 0.05
    assert Wasserstein().threshold == 0.1 and JensenShannon().threshold == 0.1
    assert PopulationStability().threshold == 0.1
    assert KolmogorovSmirnov().min_effect == 0.05 and ChiSquared().min_effect == 0.05


def test_a_higher_threshold_flags_more() -> None:
    rng = np.random.default_rng(30)
    reference, current = rng.normal(size=5_000), rng.normal(0.07, 1.0, 5_000)

    assert Wasserstein().fit(reference).score(current).drift is False
    assert Wasserstein(0.05).fit(reference).score(current).drift is True


@pytest.mark.parametrize("cls", ALL)
def test_a_detector_is_re_created_from_its_name_and_params(cls: type[Detector]) -> None:
    made = cls(0.2, min_rows=7)
    again = detector(cls.name, **made.get_params())

    assert type(again) is cls
    assert again.get_params() == made.get_params()
    json.dumps(again.get_params(), allow_nan=False)


def test_an_unknown_method_is_refused_with_the_list_of_methods() -> None:
    with pytest.raises(InvalidInput, match="'kolmogorov'") as raised:
        detector("kolmogorov")
    for name in BUILT_IN:
        assert name in str(raised.value)


def test_a_setting_a_method_does_not_take_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'wasserstein' does not take"):
        detector("wasserstein", min_effect=0.1)


def test_available_lists_every_built_in() -> None:
    assert set(BUILT_IN) <= set(available())
    assert set(BUILT_IN) == {"ks", "wasserstein", "psi", "chisquare", "jensenshannon"}


def test_a_score_is_strict_json() -> None:
    fitted = ChiSquared().fit(pd.Series(["a", "b"] * 50))

    for score in (fitted.score(pd.Series(["a"] * 100)), fitted.score(pd.Series(["a"]))):
        data = json.loads(json.dumps(score.to_dict(), allow_nan=False))
        assert data["method"] == "chisquare"
        assert set(data) == {
            "method",
            "statistic",
            "threshold",
            "drift",
            "p_value",
            "effect",
            "note",
        }

"""A/B significance: p-values, intervals and winners checked against textbooks and scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopml.deploy.significance import Comparison, compare_rates, compare_values
from loopml.errors import InvalidInput

SWAPPED = {"a": "b", "b": "a", None: None}


def _textbook_z_p(s_a: int, n_a: int, s_b: int, n_b: int) -> float:
    pooled = (s_a + s_b) / (n_a + n_b)
    z = (s_b / n_b - s_a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return 2 * (1 - stats.norm.cdf(abs(z)))


def _assert_finite_and_serialisable(result: Comparison) -> dict[str, object]:
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # strict JSON: a NaN or infinity fails here
    return data


# --- rates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b"),
    [(860, 1000, 910, 1000), (45, 100, 52, 100), (30, 200, 12, 150), (1, 40, 39, 40)],
)
def test_rate_p_value_matches_the_textbook_pooled_z_test(s_a, n_a, s_b, n_b):
    result = compare_rates("accuracy", s_a, n_a, s_b, n_b)
    assert result.test == "two-proportion z"
    assert result.p_value == pytest.approx(_textbook_z_p(s_a, n_a, s_b, n_b), rel=1e-6, abs=1e-12)
    assert (result.a, result.b) == (s_a / n_a, s_b / n_b)
    assert result.difference == pytest.approx(s_b / n_b - s_a / n_a)
    expected_h = 2 * math.asin(math.sqrt(s_b / n_b)) - 2 * math.asin(math.sqrt(s_a / n_a))
    assert result.effect_size == pytest.approx(expected_h)


def test_rate_interval_is_newcombes_hybrid_score_interval():
    # Newcombe (1998), example (a): 56/70 against 48/80, method 10 gives 0.0524 to 0.3339.
    result = compare_rates("accuracy", 48, 80, 56, 70)
    assert result.difference == pytest.approx(0.2)
    assert result.ci_low == pytest.approx(0.0524, abs=1e-4)
    assert result.ci_high == pytest.approx(0.3339, abs=1e-4)


def test_higher_accuracy_wins_with_a_sentence_that_says_why():
    result = compare_rates("accuracy", 860, 1000, 910, 1000)
    assert result.winner == "b"
    assert result.effect == "negligible"  # significant, yet Cohen's h = 0.16 is under 0.2
    assert result.reason == (
        "b is better: accuracy 0.91 for b vs 0.86 for a "
        "(difference b-a +0.05, 95% CI +0.0221 to +0.078, p = 0.00046)"
    )


def test_a_higher_confidence_widens_the_interval_and_says_so():
    at_95 = compare_rates("accuracy", 860, 1000, 910, 1000)
    at_99 = compare_rates("accuracy", 860, 1000, 910, 1000, confidence=0.99)
    assert at_99.ci_low < at_95.ci_low < at_95.ci_high < at_99.ci_high
    assert at_99.p_value == at_95.p_value
    assert at_99.winner == "b"
    assert "99% CI" in at_99.reason


def test_lower_error_rate_wins_when_lower_is_better():
    result = compare_rates("error_rate", 50, 1000, 80, 1000, higher_is_better=False)
    assert result.winner == "a"
    assert result.difference == pytest.approx(0.03)
    assert result.ci_low > 0
    assert result.reason.startswith("a is better: error_rate 0.05 for a vs 0.08 for b")
    # The same counts read as successes: b is better.
    assert compare_rates("conversion", 50, 1000, 80, 1000).winner == "b"


def test_too_few_samples_give_no_winner_however_large_the_gap():
    result = compare_rates("accuracy", 0, 12, 15, 15)
    assert result.p_value < 1e-6
    assert result.winner is None
    assert result.reason == "no winner yet: 12 and 15 samples, at least 30 per arm needed"
    assert compare_rates("accuracy", 0, 12, 15, 15, min_samples=10).winner == "b"


def test_a_small_gap_is_no_significant_difference():
    result = compare_rates("accuracy", 430, 500, 438, 500)
    assert result.winner is None
    assert result.reason == "no significant difference (p = 0.45)"
    assert result.ci_low < 0 < result.ci_high
    assert result.effect == "negligible"


def test_a_small_p_with_an_interval_across_zero_names_no_winner():
    # At 0 of 30 against 4 of 30 the z-test's p is under 0.05 but the score interval is not
    # clear of 0: the two disagree near the boundary, and a winner needs both.
    result = compare_rates("accuracy", 0, 30, 4, 30)
    assert result.p_value < 0.05
    assert result.winner is None
    assert result.reason == (
        "no significant difference: p = 0.038 but the 95% CI -0.00567 to +0.297 includes 0"
    )


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b"),
    [(0, 0, 0, 0), (0, 0, 40, 50), (40, 50, 0, 0), (50, 50, 80, 80), (0, 50, 0, 80)],
)
def test_empty_or_unvarying_arms_give_p_one_and_no_nan(s_a, n_a, s_b, n_b):
    result = compare_rates("accuracy", s_a, n_a, s_b, n_b, min_samples=1)
    data = _assert_finite_and_serialisable(result)
    assert result.p_value == 1.0
    assert result.winner is None
    assert result.difference == 0.0
    assert result.effect_size == 0.0
    assert result.ci_low <= 0 <= result.ci_high
    assert all(not isinstance(v, float) or math.isfinite(v) for v in data.values())


@pytest.mark.parametrize(
    ("args", "kwargs", "names"),
    [
        (("accuracy", 11, 10, 5, 10), {}, "successes_a .*n_a"),
        (("accuracy", 5, 10, 5, -1), {}, "n_b must be 0 or more"),
        (("accuracy", -1, 10, 5, 10), {}, "successes_a must be 0 or more"),
        (("accuracy", 5.0, 10, 5, 10), {}, "successes_a must be a whole number"),
        (("accuracy", 5, 10, True, 10), {}, "successes_b must be a whole number"),
        (("", 5, 10, 5, 10), {}, "metric"),
        (("accuracy", 5, 10, 5, 10), {"confidence": 1.0}, "confidence"),
        (("accuracy", 5, 10, 5, 10), {"confidence": float("nan")}, "confidence"),
        (("accuracy", 5, 10, 5, 10), {"confidence": "0.95"}, "confidence"),
        (("accuracy", 5, 10, 5, 10), {"min_samples": 0}, "min_samples"),
        (("accuracy", 5, 10, 5, 10), {"min_samples": 2.5}, "min_samples"),
        (("accuracy", 5, 10, 5, 10), {"higher_is_better": "yes"}, "higher_is_better"),
    ],
)
def test_unusable_rate_inputs_are_named(args, kwargs, names):
    with pytest.raises(InvalidInput, match=names):
        compare_rates(*args, **kwargs)


def test_numpy_counts_are_accepted():
    result = compare_rates("accuracy", np.int64(40), np.int64(50), np.int32(45), np.int32(50))
    assert (result.n_a, result.n_b) == (50, 50)
    assert type(result.n_a) is int
    _assert_finite_and_serialisable(result)


def test_equal_rates_rarely_name_a_winner():
    rng = np.random.default_rng(11)
    n = 400
    results = [
        compare_rates("accuracy", int(rng.binomial(n, 0.3)), n, int(rng.binomial(n, 0.3)), n)
        for _ in range(300)
    ]
    false_winners = sum(r.winner is not None for r in results)
    covered = sum(r.ci_low <= 0 <= r.ci_high for r in results)
    assert false_winners <= 30  # 5% expected; 10% is a loose bound
    assert covered >= 270


@st.composite
def _arm(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(0, 300))
    return draw(st.integers(0, n)), n


@settings(deadline=None)
@given(_arm(), _arm(), st.booleans())
def test_swapping_rate_arms_mirrors_the_verdict(arm_a, arm_b, higher_is_better):
    kwargs = {"higher_is_better": higher_is_better, "min_samples": 1}
    forward = compare_rates("accuracy", *arm_a, *arm_b, **kwargs)
    back = compare_rates("accuracy", *arm_b, *arm_a, **kwargs)
    _assert_mirrored(forward, back)


# --- continuous values -------------------------------------------------------------------


def _assert_mirrored(forward: Comparison, back: Comparison) -> None:
    assert back.difference == pytest.approx(-forward.difference, abs=1e-12)
    assert back.effect_size == pytest.approx(-forward.effect_size, abs=1e-12)
    assert back.ci_low == pytest.approx(-forward.ci_high, abs=1e-12)
    assert back.ci_high == pytest.approx(-forward.ci_low, abs=1e-12)
    assert back.p_value == pytest.approx(forward.p_value, rel=1e-9)
    assert back.winner == SWAPPED[forward.winner]
    assert (back.a, back.b, back.n_a, back.n_b) == (forward.b, forward.a, forward.n_b, forward.n_a)


def test_values_match_scipy_mann_whitney_and_the_rank_biserial_definition():
    rng = np.random.default_rng(3)
    a, b = rng.normal(100, 15, 80), rng.normal(92, 15, 60)
    result = compare_values("latency_ms", a, b)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert result.test == "mann-whitney u"
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.effect_size == pytest.approx(1 - 2 * expected.statistic / (80 * 60))
    assert result.effect_size < 0  # b is smaller, so r is negative
    assert (result.a, result.b) == (np.median(a), np.median(b))
    assert result.difference == pytest.approx(np.median(np.subtract.outer(b, a)))


def test_values_known_answer_for_fully_separated_arms():
    result = compare_values("score", [1, 2, 3], [4, 5, 6], min_samples=1)
    assert result.p_value == pytest.approx(0.1)  # exact: 2 of the 20 orderings are as extreme
    assert result.effect_size == 1.0
    assert result.effect == "large"
    assert result.difference == 3.0  # median of 3 4 5 2 3 4 1 2 3
    assert result.winner is None  # p = 0.1 is not under 0.05


def test_shift_interval_uses_the_tabulated_order_statistics():
    # For 10 against 10 at 95% the U table's critical value is 23: the interval runs from
    # the 24th smallest to the 24th largest of the 100 pairwise differences.
    a = np.arange(10) * 1.1
    b = np.arange(10) * 1.3 + 2
    ordered = np.sort(np.subtract.outer(b, a).ravel())
    result = compare_values("score", a, b, min_samples=1)
    assert (result.ci_low, result.ci_high) == (ordered[23], ordered[76])


def test_faster_arm_wins_latency_and_larger_arm_wins_throughput():
    rng = np.random.default_rng(5)
    slow, fast = rng.lognormal(4.6, 0.3, 200), rng.lognormal(4.4, 0.3, 200)
    latency = compare_values("latency_ms", slow, fast)
    assert latency.winner == "b"
    assert latency.ci_high < 0
    assert latency.reason.startswith("b is better: latency_ms median ")
    throughput = compare_values("rows_per_s", slow, fast, higher_is_better=True)
    assert throughput.winner == "a"
    assert throughput.reason.startswith("a is better: rows_per_s median ")


def test_non_finite_values_are_dropped_and_reported():
    rng = np.random.default_rng(8)
    a = [*rng.normal(0, 1, 40), float("nan"), float("inf")]
    b = [*rng.normal(0, 1, 35), -float("inf")]
    result = compare_values("abs_error", a, b)
    assert (result.n_a, result.n_b, result.dropped) == (40, 35, 3)
    assert result.reason.endswith("; 3 NaN or infinite values dropped")
    _assert_finite_and_serialisable(result)


@pytest.mark.parametrize(
    ("a", "b"),
    [([5.0] * 40, [5.0] * 40), (list(range(40)), list(range(40))), ([], [1.0] * 40), ([], [])],
)
def test_identical_constant_or_empty_samples_give_p_one(a, b):
    result = compare_values("latency_ms", a, b, min_samples=1)
    _assert_finite_and_serialisable(result)
    assert result.p_value == 1.0
    assert result.winner is None
    assert result.difference == 0.0


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"values_a": ["fast", "slow"]}, "values_a"),
        ({"values_b": [[1.0, 2.0], [3.0, 4.0]]}, "values_b must be one-dimensional"),
        ({"values_b": 3.0}, "values_b must be one-dimensional"),
        ({"confidence": 0}, "confidence"),
        ({"min_samples": True}, "min_samples"),
    ],
)
def test_unusable_values_are_named(kwargs, names):
    arguments = {"values_a": [1.0, 2.0], "values_b": [3.0, 4.0], **kwargs}
    with pytest.raises(InvalidInput, match=names):
        compare_values("latency_ms", **arguments)


def test_equal_distributions_rarely_name_a_winner():
    rng = np.random.default_rng(13)
    results = [
        compare_values("latency_ms", rng.gamma(2, 20, 40), rng.gamma(2, 20, 50)) for _ in range(300)
    ]
    assert sum(r.winner is not None for r in results) <= 30  # 5% expected
    assert sum(r.ci_low <= 0 <= r.ci_high for r in results) >= 270


def test_large_samples_take_the_capped_path_and_stay_deterministic():
    rng = np.random.default_rng(21)
    a, b = rng.normal(100, 10, 100_000), rng.normal(99, 10, 100_000)
    result = compare_values("latency_ms", a, b)
    data = _assert_finite_and_serialisable(result)
    assert (result.n_a, result.n_b) == (100_000, 100_000)
    assert result.ci_low < -1 < result.ci_high
    assert result.winner == "b"
    assert compare_values("latency_ms", a, b).to_dict() == data


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(-50, 50).map(float), max_size=25),
    st.lists(st.integers(-50, 50).map(float), max_size=25),
    st.booleans(),
)
def test_swapping_value_arms_mirrors_the_verdict(a, b, higher_is_better):
    kwargs = {"higher_is_better": higher_is_better, "min_samples": 1}
    _assert_mirrored(
        compare_values("latency_ms", a, b, **kwargs), compare_values("latency_ms", b, a, **kwargs)
    )

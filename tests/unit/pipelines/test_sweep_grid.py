"""The combinations a sweep runs: the whole grid in order, or a reproducible random sample."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines.sweep import MAX_TRIALS, combinations

GRID = {"alpha": [0.1, 1.0, 10.0], "penalty": ["l1", "l2"]}


def test_the_grid_runs_every_combination_the_first_param_slowest():
    assert combinations(GRID) == [
        {"alpha": 0.1, "penalty": "l1"},
        {"alpha": 0.1, "penalty": "l2"},
        {"alpha": 1.0, "penalty": "l1"},
        {"alpha": 1.0, "penalty": "l2"},
        {"alpha": 10.0, "penalty": "l1"},
        {"alpha": 10.0, "penalty": "l2"},
    ]


def test_a_one_param_grid_and_a_range_of_values():
    assert combinations({"k": range(3)}) == [{"k": 0}, {"k": 1}, {"k": 2}]


def test_a_random_sample_has_no_repeats_and_the_same_seed_gives_the_same_sample():
    grid = {"a": list(range(10)), "b": list(range(10)), "c": ["x", "y"]}
    sample = combinations(grid, random=25, seed=3)
    assert len(sample) == 25
    assert len({tuple(c.items()) for c in sample}) == 25
    assert all(list(c) == ["a", "b", "c"] for c in sample)
    assert all(c in combinations(grid) for c in sample)
    assert combinations(grid, random=25, seed=3) == sample
    assert combinations(grid, random=25, seed=4) != sample


def test_asking_for_more_random_trials_than_the_grid_has_runs_the_grid_once():
    sample = combinations(GRID, random=100)
    assert len(sample) == 6
    assert sorted(sample, key=repr) == sorted(combinations(GRID), key=repr)


def test_a_grid_too_large_to_run_whole_says_to_sample_it():
    grid = {"a": range(MAX_TRIALS), "b": [1, 2]}
    with pytest.raises(InvalidInput, match=f"the grid has {2 * MAX_TRIALS} combinations; sample"):
        combinations(grid)
    assert len(combinations(grid, random=5)) == 5


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "a sweep needs at least one param with values: -p name=a,b,c"),
        ({"alpha": []}, "sweep param 'alpha' needs a non-empty list of values"),
        ({"alpha": [1], "penalty": []}, "sweep param 'penalty' needs a non-empty list of values"),
        ({"alpha": "abc"}, "sweep param 'alpha' needs a non-empty list of values"),
        ({"alpha": 3}, "sweep param 'alpha' needs a non-empty list of values"),
        ([("alpha", [1])], "a sweep needs at least one param with values: -p name=a,b,c"),
    ],
)
def test_empty_or_malformed_grids_are_refused(grid: Any, message: str):
    with pytest.raises(InvalidInput) as caught:
        combinations(grid)
    assert str(caught.value) == message


@pytest.mark.parametrize("random", [0, -1, True, 2.5, "3"])
def test_a_random_count_must_be_a_whole_number_of_trials(random: Any):
    with pytest.raises(InvalidInput, match="--random takes a number of trials from 1"):
        combinations(GRID, random=random)


def test_repeated_values_make_one_trial_each() -> None:
    assert combinations({"a": [1, 1, 2], "b": ["x", "x"]}) == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "x"},
    ]


def test_a_random_count_past_the_cap_is_refused() -> None:
    with pytest.raises(InvalidInput, match="from 1 to 10000"):
        combinations({"a": list(range(1000)), "b": list(range(1000))}, random=10**6)

"""`@step`: what a step's outputs are, which options it takes, and what it refuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines.step import Output, step


def names_of(outputs: tuple[Output, ...]) -> list[tuple[str, bool]]:
    return [(o.name, o.optional) for o in outputs]


def test_the_return_annotation_says_how_many_outputs_a_step_has():
    @step
    def one() -> int:
        return 1

    @step
    def two() -> tuple[int, str | None]:
        return 1, None

    @step
    def one_tuple() -> tuple[int, ...]:
        return (1, 2, 3)

    @step
    def none() -> None:
        pass

    @step
    def maybe() -> int | None:
        return None

    @step
    def unannotated():
        return 1

    assert names_of(one.outputs) == [("output", False)]
    assert names_of(two.outputs) == [("output_0", False), ("output_1", True)]
    assert names_of(one_tuple.outputs) == [("output", False)]
    assert names_of(none.outputs) == []
    assert names_of(maybe.outputs) == [("output", True)]
    assert names_of(unannotated.outputs) == [("output", True)]  # nothing says it is not None


def test_outputs_can_be_counted_or_named():
    @step(outputs=2)
    def counted():
        return 1, 2

    @step(outputs=["model", "score"])
    def named() -> tuple[object, float]:
        return object(), 1.0

    @step(outputs=0)
    def silent():
        pass

    assert names_of(counted.outputs) == [("output_0", True), ("output_1", True)]
    assert names_of(named.outputs) == [("model", False), ("score", False)]
    assert silent.outputs == ()


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ("model", "takes a count or a list of names"),
        (True, "takes a count or a list of names"),
        (1.5, "takes a count or a list of names"),
        (-1, "must be 0 or more"),
        (["a", "a"], "repeat"),
        (["a", "two words"], "is not an identifier"),
        ([1, 2], "is not an identifier"),
    ],
)
def test_bad_outputs_are_refused_at_decoration(outputs: Any, message: str):
    with pytest.raises(InvalidInput, match=message):
        step(outputs=outputs)(lambda: None)


def test_named_outputs_must_agree_with_a_tuple_annotation():
    def split() -> tuple[list[int], list[int]]:
        return [], []

    with pytest.raises(InvalidInput, match="names 3 outputs but its return annotation has 2"):
        step(outputs=["a", "b", "c"])(split)


def test_options_are_kept_on_the_step():
    @step(
        resources={"cpu": 2, "gpu": 0.5, "memory": 4e9},
        retries=3,
        retry_on=ConnectionError,
        backoff=0,
        timeout=30,
        cache=False,
    )
    def fetch() -> bytes:
        return b""

    options = fetch.options
    assert (options.cpus, options.gpus, options.resources["memory"]) == (2.0, 0.5, 4e9)
    assert (options.retries, options.retry_on, options.backoff) == (3, (ConnectionError,), 0.0)
    assert (options.timeout, options.cache) == (30.0, False)


def test_a_step_asks_for_one_cpu_and_no_gpu_unless_told():
    @step
    def plain() -> int:
        return 1

    assert (plain.options.cpus, plain.options.gpus, plain.options.timeout) == (1.0, 0.0, None)
    assert (plain.options.retries, plain.options.cache) == (0, True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resources": {"tpu": 1}}, "unknown resource 'tpu'; use cpu, gpu, memory"),
        ({"resources": {"cpu": -1}}, "resource cpu must be a number >= 0"),
        ({"resources": {"gpu": True}}, "resource gpu must be a number >= 0"),
        ({"resources": {"gpu": float("nan")}}, "resource gpu must be a number >= 0"),
        ({"resources": ["cpu"]}, "resources must be a mapping"),
        ({"retries": -1}, "retries must be a whole number >= 0, not -1"),
        ({"retries": 1.5}, "retries must be a whole number >= 0, not 1.5"),
        ({"retries": True}, "retries must be a whole number >= 0, not True"),
        ({"backoff": -1}, "backoff must be a positive number of seconds"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"timeout": -5}, "timeout must be a positive number of seconds"),
        ({"timeout": float("inf")}, "timeout must be a positive number of seconds"),
        ({"timeout": "10"}, "timeout must be a positive number of seconds"),
        ({"retry_on": "ValueError"}, "retry_on takes exception classes, not 'ValueError'"),
        ({"retry_on": (ValueError, int)}, "retry_on takes exception classes"),
        ({"materializers": [object()]}, "is not a materializer"),
    ],
)
def test_bad_options_are_refused_naming_the_step(options: dict[str, Any], message: str):
    def train() -> int:
        return 1

    with pytest.raises(InvalidInput, match="step 'train'") as caught:
        step(**options)(train)
    assert message in str(caught.value)


def test_a_step_is_decorated_once():
    @step
    def once() -> int:
        return 1

    with pytest.raises(InvalidInput, match="'once' is already a step; decorate it once"):
        step(once)


@pytest.mark.parametrize("target", [len, int, object(), print])
def test_only_functions_become_steps(target: Any):
    with pytest.raises(InvalidInput, match="@step decorates a function"):
        step(target)


def test_async_and_generator_functions_are_refused_with_the_way_out():
    async def fetch() -> int:
        return 1

    def rows() -> Iterator[int]:
        yield 1

    with pytest.raises(InvalidInput, match=r"is async; .*asyncio\.run"):
        step(fetch)
    with pytest.raises(InvalidInput, match=r"is a generator; .*return a list"):
        step(rows)


def test_outside_a_pipeline_a_step_is_just_its_function():
    @step(retries=2)
    def add(a: int, b: int = 10) -> int:
        """Add two numbers."""
        return a + b

    assert add(1) == 11
    assert add(1, b=2) == 3
    assert add.__doc__ == "Add two numbers."
    assert add.name == "add"
    assert add.reference.endswith(
        ":test_outside_a_pipeline_a_step_is_just_its_function.<locals>.add"
    )

"""Cache keys: equal exactly when a step would compute the same thing, in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines.cache import cache_key, canonical
from loopml.pipelines.fingerprint import CodeFingerprint
from loopml.pipelines.step import Output, Step, step


@step
def train(rows: list[int], lr: float = 0.1) -> float:
    return sum(rows) * lr


CODE = CodeFingerprint("blake3:" + "a" * 64, {}, {"numpy": "2.0.0"})
PARAMS = {"lr": 0.1, "layers": [64, 32]}
INPUTS = {"rows": "blake3:" + "1" * 64}


def key(
    node: str = "train",
    the_step: Step[Any, Any] = train,
    code: CodeFingerprint = CODE,
    params: dict[str, Any] = PARAMS,
    inputs: dict[str, str | None] = INPUTS,
) -> str:
    return cache_key(node, the_step, code, params, inputs)


def test_the_key_is_stable_and_does_not_depend_on_the_node_name():
    first = key()
    assert len(first) == 64
    assert all(c in "0123456789abcdef" for c in first)
    assert key() == first
    # The same call in another place (train_2, a sweep's other trial) reuses the result.
    assert key(node="train_2") == first


@pytest.mark.parametrize(
    "change",
    [
        {"params": {**PARAMS, "lr": 0.2}},
        {"params": {**PARAMS, "layers": [64, 16]}},
        {"params": {"lr": 0.1}},
        {"inputs": {"rows": "blake3:" + "2" * 64}},
        {"inputs": {"rows": None}},
        {"code": CodeFingerprint("blake3:" + "b" * 64, {}, {"numpy": "2.0.0"})},
        {"code": CodeFingerprint(CODE.digest, {}, {"numpy": "2.0.1"})},
        {"code": CodeFingerprint(CODE.digest, {}, {"numpy": "2.0.0", "pandas": "2.2.0"})},
        {"the_step": Step(train.fn, train.options, (Output("score"),))},
        {"the_step": step(outputs=["a", "b"])(train.fn)},
    ],
    ids=[
        "param",
        "nested-param",
        "param-left-out",
        "input",
        "input-none",
        "code",
        "library-version",
        "library-added",
        "output-name",
        "output-count",
    ],
)
def test_each_ingredient_changes_the_key(change: dict[str, Any]):
    assert key(**change) != key()


def test_a_steps_own_materializers_are_part_of_the_key():
    class Text:
        name = "text"

        def handles(self, value: object) -> bool:
            return isinstance(value, str)

        def dump(self, value: Any) -> bytes:
            return str(value).encode()

        def load(self, data: bytes) -> Any:
            return data.decode()

    assert key(the_step=step(materializers=[Text()])(train.fn)) != key()


def test_values_python_tells_apart_have_different_keys():
    # 1 and 1.0 are equal in Python but are different params: a step can tell them apart
    # (1 / 2 is fine either way, but type(x), repr(x) and f"{x}" differ). Pipeline params
    # hinted float are made floats before they get here, so `-p lr=1` and lr=1 share a key.
    assert key(params={"x": 1}) != key(params={"x": 1.0})
    assert key(params={"x": True}) != key(params={"x": 1})
    assert key(params={"x": 0.0}) != key(params={"x": -0.0})
    assert key(params={"x": (1, 2)}) != key(params={"x": [1, 2]})
    assert key(params={"x": "1"}) != key(params={"x": 1})


def test_values_that_are_the_same_have_one_key():
    assert key(params={"x": float("nan")}) == key(params={"x": float("nan")})
    assert key(params={"x": {"a": 1, "b": 2}}) == key(params={"x": {"b": 2, "a": 1}})
    assert key(params={"a": 1, "b": 2}) == key(params={"b": 2, "a": 1})
    assert key(params={"x": {3, 1, 2}}) == key(params={"x": {1, 2, 3}})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        ("s", "s"),
        (0.5, {"float": "0x1.0000000000000p-1"}),
        (float("inf"), {"float": "inf"}),
        ([1, (2,)], {"list": [1, {"tuple": [2]}]}),
        ({"b": 1, "a": None}, {"dict": [["a", None], ["b", 1]]}),
        (frozenset({"y", "x"}), {"frozenset": ["x", "y"]}),
    ],
)
def test_canonical_forms(value: Any, expected: Any):
    assert canonical("train", "x", value) == expected


def test_sets_have_one_key_in_every_process():
    # Pickled, a set of strings is in hash order, which PYTHONHASHSEED changes per process.
    script = (
        "import json; from loopml.pipelines.cache import canonical; "
        "print(json.dumps(canonical('n', 'p', {'features': set('abcdefghijklmnop')})))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == canonical("n", "p", {"features": set("ponmlkjihgfedcba")})


def test_other_values_are_keyed_by_their_pickle():
    from pathlib import Path

    assert key(params={"x": Path("a")}) == key(params={"x": Path("a")})
    assert key(params={"x": Path("a")}) != key(params={"x": Path("b")})


@pytest.mark.parametrize("value", [lambda x: x, threading.Lock()], ids=["lambda", "lock"])
def test_a_param_that_cannot_be_pickled_is_named_with_its_step(value: Any):
    with pytest.raises(InvalidInput) as caught:
        key(node="train_2", params={"lr": 0.1, "callback": value})
    message = str(caught.value)
    assert message.startswith(f"step 'train_2': param 'callback' ({type(value).__name__})")
    assert "cannot be pickled, so it cannot be part of the cache key" in message

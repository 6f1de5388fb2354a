"""Pipeline params: checked by type from Python, parsed by type from `-p name=value` text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines.graph import pipeline
from loopml.pipelines.params import bind_params


@pipeline
def train(
    epochs: int,
    lr: float = 0.1,
    shuffle: bool = True,
    name: str = "model",
    limit: int | None = None,
    note: str | None = None,
    momentum: float | None = None,
    layers: list[int] = [64],  # noqa: B006 - never mutated, a default like the CLI's
    weights: dict[str, float] = {},  # noqa: B006
    mode: Literal["fast", "exact"] = "fast",
    out: Path = Path("model.bin"),
    extra=None,  # untyped on purpose
    seed=42,  # untyped, but its default says int
) -> None: ...


def test_defaults_fill_in_what_is_not_given():
    bound = bind_params(train, {"epochs": 3})
    assert bound["epochs"] == 3
    assert (bound["lr"], bound["shuffle"], bound["limit"], bound["extra"]) == (
        0.1,
        True,
        None,
        None,
    )


def test_an_unknown_param_lists_the_known_ones():
    with pytest.raises(InvalidInput) as caught:
        bind_params(train, {"epochs": 1, "epoch": 2})
    assert str(caught.value) == (
        "pipeline 'train' has no param 'epoch'; its params are epochs, lr, shuffle, name, "
        "limit, note, momentum, layers, weights, mode, out, extra, seed"
    )


def test_a_missing_required_param_says_how_to_pass_it():
    with pytest.raises(
        InvalidInput, match="'train' needs param 'epochs'; pass it: -p epochs=VALUE"
    ):
        bind_params(train, {})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", "3", "param 'epochs' must be int, not str '3'"),
        ("epochs", True, "param 'epochs' must be int, not bool True"),
        ("epochs", 3.0, "param 'epochs' must be int, not float 3.0"),
        ("lr", True, "param 'lr' must be float, not bool True"),
        ("lr", "0.1", "param 'lr' must be float, not str '0.1'"),
        ("shuffle", 1, "param 'shuffle' must be bool, not int 1"),
        ("limit", 2.5, "param 'limit' must be int | None, not float 2.5"),
        ("layers", ["64"], "param 'layers' must be list[int], not list ['64']"),
        ("layers", (64,), "param 'layers' must be list[int], not tuple (64,)"),
        ("weights", {"a": "x"}, "param 'weights' must be dict[str, float]"),
        ("mode", "slow", "param 'mode' must be Literal['fast', 'exact'], not str 'slow'"),
        ("seed", "42", "param 'seed' must be int, not str '42'"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(name: str, value: Any, message: str):
    with pytest.raises(InvalidInput) as caught:
        bind_params(train, {"epochs": 1, name: value})
    assert message in str(caught.value)


def test_an_int_is_a_fine_float_and_becomes_one():
    bound = bind_params(train, {"epochs": 1, "lr": 1, "momentum": 0})
    # As `-p lr=1` parses to 1.0, so both give the same cache key.
    assert (bound["lr"], type(bound["lr"])) == (1.0, float)
    assert (bound["momentum"], type(bound["momentum"])) == (0.0, float)


def test_untyped_params_take_anything():
    assert bind_params(train, {"epochs": 1, "extra": {"k": [1]}})["extra"] == {"k": [1]}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("epochs", "3", 3),
        ("epochs", "-3", -3),
        ("lr", "1e-3", 0.001),
        ("lr", "2", 2.0),
        ("shuffle", "yes", True),
        ("shuffle", "False", False),
        ("shuffle", "1", True),
        ("shuffle", "off", False),
        ("name", "42", "42"),
        ("name", "", ""),
        ("limit", "none", None),
        ("limit", "5", 5),
        ("note", "none", None),  # None before str: `-p note=none` means None
        ("note", "hello", "hello"),
        ("momentum", "1", 1.0),
        ("layers", "[128, 64]", [128, 64]),
        ("weights", '{"a": 0.5}', {"a": 0.5}),
        ("mode", "exact", "exact"),
        ("out", "runs/m.bin", Path("runs/m.bin")),
        ("extra", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("extra", "7", 7),
        ("extra", "plain words", "plain words"),
        ("seed", "7", 7),
    ],
)
def test_text_is_parsed_by_the_param_type(name: str, text: str, value: Any):
    bound = bind_params(train, {"epochs": "1", name: text}, from_text=True)
    assert bound[name] == value
    assert type(bound[name]) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("epochs", "1.5", "param 'epochs' must be int, not '1.5'"),
        ("epochs", "ten", "param 'epochs' must be int, not 'ten'"),
        ("lr", "fast", "param 'lr' must be float, not 'fast'"),
        ("shuffle", "maybe", "param 'shuffle' must be bool, not 'maybe'"),
        ("limit", "lots", "param 'limit' must be int | None, not 'lots'"),
        ("layers", "64", "param 'layers' must be list[int], not '64'"),
        ("layers", '["a"]', "param 'layers' must be list[int], not '[\"a\"]'"),
        ("layers", "[1,", "param 'layers' must be list[int], not '[1,'"),
        ("mode", "slow", "param 'mode' must be Literal['fast', 'exact'], not 'slow'"),
        ("seed", "x", "param 'seed' must be int, not 'x'"),
    ],
)
def test_text_that_does_not_parse_names_the_type_it_needs(name: str, text: str, message: str):
    with pytest.raises(InvalidInput) as caught:
        bind_params(train, {"epochs": "1", name: text}, from_text=True)
    assert message in str(caught.value)


def test_text_parsing_leaves_values_that_are_not_text_to_the_type_check():
    assert bind_params(train, {"epochs": 4}, from_text=True)["epochs"] == 4
    with pytest.raises(InvalidInput, match=r"must be int, not float 4\.5"):
        bind_params(train, {"epochs": 4.5}, from_text=True)


def test_params_must_be_a_mapping_and_pipelines_name_each_param():
    with pytest.raises(InvalidInput, match="params must be a mapping"):
        bind_params(train, [("epochs", 1)])  # type: ignore[arg-type]

    @pipeline
    def loose(**params: Any) -> None: ...

    with pytest.raises(InvalidInput, match="takes \\*args or \\*\\*kwargs; name each param"):
        bind_params(loose, {})

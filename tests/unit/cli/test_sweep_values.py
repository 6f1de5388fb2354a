"""How `loopml sweep -p NAME=V1,V2` splits its values."""

from __future__ import annotations

import pytest

from loopml.cli.pipelines import _split_values
from loopml.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1,2,3", ["1", "2", "3"]),
        ("[1,2],[3]", ["[1,2]", "[3]"]),
        ('"a,b",c', ["a,b", "c"]),
        ("'x, y',\"z\"", ["x, y", "z"]),
        ('{"a": 1, "b": [2, 3]}', ['{"a": 1, "b": [2, 3]}']),
        ("one", ["one"]),
    ],
)
def test_values_split_on_commas_outside_brackets_and_quotes(text: str, values: list[str]):
    assert _split_values(text) == values


@pytest.mark.parametrize("text", ["1),2", '"open,2', "[1,2"])
def test_an_unbalanced_value_is_refused(text: str):
    with pytest.raises(InvalidInput, match=r"-p value"):
        _split_values(text)

"""Durations as people write them on the command line: read into seconds, or refused."""

from __future__ import annotations

import pytest

from loopml.core.durations import seconds
from loopml.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("45s", 45.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172_800.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (" 5M ", 300.0),
        (12, 12.0),
        (0.5, 0.5),
    ],
)
def test_a_duration_is_read_into_seconds(text: str | float, expected: float) -> None:
    assert seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "5x", "m5", "5 m", "1h 30m", "h", "-1", "0", "0s", "inf", "nan", "-5m"],
)
def test_text_that_is_not_a_positive_duration_is_refused_with_examples(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        seconds(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "duration" in message


@pytest.mark.parametrize("value", [None, True, False, 0, -3, float("inf"), float("nan"), [5]])
def test_a_value_that_is_not_a_positive_number_or_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        seconds(value)  # type: ignore[arg-type]

"""Gates as settings: checks refuse bad settings, record them, and round-trip through YAML."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.evaluation.checks import (
    BeatsChampion,
    Check,
    CheckResult,
    Fairness,
    LatencyBudget,
    Threshold,
)
from loopml.evaluation.gates import Gate, GateContext


class NoNegativePredictions(Check):
    """A custom check, as a user writes one."""

    def __init__(self, floor: float = 0.0) -> None:
        self.floor = floor

    def check(self, context: GateContext) -> CheckResult:
        return self.result("floor", self.floor, ">= 0", True, "ok")


GATE_YAML = """\
target: churned
checks:
  - threshold: {metric: f1, min: 0.8}
  - beats_champion: {metric: rmse, min_delta: 0.05, relative: true}
  - fairness: {metric: equalized_odds_difference, max: 0.1, sensitive: gender}
  - latency: {max_ms: 50, calls: 50}
"""


def test_yaml_gate_builds_the_checks_it_names(tmp_path: Path):
    path = tmp_path / "gate.yaml"
    path.write_text(GATE_YAML)
    gate = Gate.load(path)
    assert gate.target == "churned"
    assert [type(c) for c in gate.checks] == [Threshold, BeatsChampion, Fairness, LatencyBudget]
    champion = gate.checks[1]
    assert isinstance(champion, BeatsChampion)
    assert (champion.metric, champion.min_delta, champion.relative) == ("rmse", 0.05, True)
    # get_params is the YAML's shape: the gate re-created from it has the same settings.
    again = Gate.from_dict(gate.get_params())
    assert again.get_params() == gate.get_params()
    assert gate.get_params()["checks"][3] == {
        "latency": {"max_ms": 50.0, "quantile": 0.99, "calls": 50}
    }


def test_custom_check_is_named_by_module_and_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "mychecks.py").write_text(
        textwrap.dedent(
            """
            from loopml.evaluation.checks import Check

            class Floor(Check):
                def __init__(self, floor=0.0):
                    self.floor = floor

                def check(self, context):
                    return self.result("floor", self.floor, ">= 0", self.floor >= 0, "ok")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    gate = Gate.from_dict({"checks": [{"mychecks:Floor": {"floor": 2.5}}]})
    assert repr(gate.checks[0]) == "Floor(floor=2.5)"
    assert gate.get_params()["checks"] == [{"mychecks:Floor": {"floor": 2.5}}]
    sys.modules.pop("mychecks", None)


def test_python_custom_check_records_its_class():
    gate = Gate([NoNegativePredictions(floor=1.0)])
    assert gate.get_params()["checks"] == [{f"{__name__}:NoNegativePredictions": {"floor": 1.0}}]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Threshold("f1"), "needs min=, max= or both"),
        (lambda: Threshold("f1", min="high"), "min must be a finite number"),
        (lambda: Threshold("", min=1), "a metric is named"),
        (lambda: BeatsChampion("f1", relative="yes"), "relative must be true or false"),
        (lambda: Fairness("accuracy", max=0.1, sensitive="g"), "fairness metric 'accuracy'"),
        (lambda: Fairness(max=0.1), "needs sensitive="),
        (lambda: LatencyBudget(max_ms=10, quantile=1.5), "quantile must be in"),
        (lambda: LatencyBudget(max_ms=10, calls=3), "calls must be"),
        (lambda: Gate([]), "at least one check"),
        (lambda: Gate(Threshold("f1", min=1)), "takes a list of checks"),
        (lambda: Gate([object()]), "is not a gate check"),
    ],
)
def test_bad_settings_are_refused_when_the_gate_is_made(make, message: str):
    with pytest.raises(InvalidInput, match=message):
        make()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: {threshold: 1}\n", "a 'checks' list"),
        ("- threshold: {metric: f1}\n", "a 'checks' list"),
        ("checks:\n  - threshold: {metric: f1, min: 1}\nextra: 1\n", "not \\['extra'\\]"),
        ("checks:\n  - accuracy: {min: 1}\n", "unknown check 'accuracy'"),
        ("checks:\n  - threshold: {metric: f1, minimum: 1}\n", "unexpected keyword"),
        ("checks:\n  - threshold: 0.8\n", "settings must be a mapping"),
        ("checks:\n  - no.such.module:Check: {}\n", "cannot import"),
        ("checks: [\n", "not valid YAML"),
    ],
)
def test_bad_gate_files_name_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as caught:
        Gate.load(path)
    assert str(path) in str(caught.value)


def test_missing_gate_file(tmp_path: Path):
    with pytest.raises(NotFound, match="does not exist"):
        Gate.load(tmp_path / "nope.yaml")


def test_a_gate_file_never_calls_what_is_not_a_check_class(tmp_path: Path):
    marker = tmp_path / "called"
    path = tmp_path / "gate.yaml"
    path.write_text(f'checks:\n  - os:system: {{command: "touch {marker}"}}\n')
    with pytest.raises(InvalidInput, match="is not a check class"):
        Gate.load(path)
    assert not marker.exists()


def test_more_bad_settings():
    with pytest.raises(InvalidInput, match=r"min 0.9 is above max 0.1"):
        Threshold("f1", min=0.9, max=0.1)
    with pytest.raises(InvalidInput, match="finite number"):
        Threshold("f1", min=float("inf"))
    with pytest.raises(InvalidInput, match="alias 'bad alias!'"):
        BeatsChampion("f1", alias="bad alias!")
    with pytest.raises(InvalidInput, match="'latest' is not an alias"):
        BeatsChampion("f1", alias="latest")
    with pytest.raises(InvalidInput, match="needs sensitive="):
        BeatsChampion("demographic_parity_difference")
    with pytest.raises(InvalidInput, match=r"not 42"):
        Gate.from_dict({"checks": [42]})


def test_a_check_that_hides_its_settings_is_told_how_to_keep_them():
    class Hidden(Check):
        def __init__(self, floor: float = 0.0) -> None:
            self._floor = floor

    with pytest.raises(InvalidInput, match=r"store each setting as self.<name>"):
        Gate([Hidden()]).get_params()


def test_a_gate_is_made_from_what_promote_accepts(tmp_path: Path):
    path = tmp_path / "gate.yaml"
    path.write_text(GATE_YAML)
    from_file = Gate.of(path)
    assert Gate.of(from_file) is from_file
    assert Gate.of(from_file.get_params()).get_params() == from_file.get_params()
    assert Gate.of([Threshold("f1", min=0.5)]).checks[0].get_params()["min"] == 0.5

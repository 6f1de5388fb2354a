"""Validation gates: the checks a model must pass before an alias (`champion`) points at it.

A check is any object with `check(context) -> CheckResult` and `get_params()` (the built-ins
are in `checks.py`); a gate's `get_params` holds every check's, so every result records the
exact gate that produced it and `Gate.from_dict(result.gate)` re-creates it. Gates are
written in Python or YAML:

    target: churned
    checks:
      - threshold: {metric: f1, min: 0.80}
      - beats_champion: {metric: f1, min_delta: 0.01}
      - fairness: {metric: demographic_parity_difference, max: 0.10, sensitive: gender}
      - latency: {max_ms: 50}
      - mypackage.checks:NoNegativePrices: {column: price}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from loopml.core import plugins
from loopml.core.store import now_ms
from loopml.core.workspace import Workspace, workspace
from loopml.errors import InvalidInput, LoopMLError, NotFound
from loopml.evaluation.checks import CheckResult, GateCheck
from loopml.evaluation.records import Evaluation, find
from loopml.evaluation.scoring import (
    DataLike,
    Model,
    Table,
    features,
    load_model,
    read_table,
    score,
    stored,
    stored_or_new,
)
from loopml.registry import models

# The names YAML gates use for the built-in checks.
BUILTIN: dict[str, str] = {
    "threshold": "loopml.evaluation.checks:Threshold",
    "beats_champion": "loopml.evaluation.checks:BeatsChampion",
    "fairness": "loopml.evaluation.checks:Fairness",
    "latency": "loopml.evaluation.checks:LatencyBudget",
}


class GateContext:
    """What checks read: the candidate, its evaluation on the gate's rows, and champions."""

    def __init__(
        self, ws: Workspace, model: Model, table: Table, target: str, sensitive: Sequence[str]
    ) -> None:
        self.ws = ws
        self.model = model
        self.table = table
        self.target = target
        self._sensitive = list(dict.fromkeys(sensitive))
        self._champions: dict[str, tuple[models.ModelVersionRecord, Evaluation] | None] = {}

    @cached_property
    def evaluation(self) -> Evaluation:
        """Return the candidate's evaluation on the gate's rows (a stored one when it exists)."""
        return stored_or_new(
            self.ws, self.model, self.table, self.target, sensitive_features=self._sensitive
        )

    @cached_property
    def inputs(self) -> Any:
        """Return the columns of the gate's rows that the candidate reads."""
        return features(self.model.loaded, self.table.frame, self.target)

    def champion(self, alias: str) -> tuple[models.ModelVersionRecord, Evaluation] | None:
        """Return the version under `alias` of the candidate's model and its evaluation on
        the same rows, or None when the alias is not set."""
        if self.model.name is None:
            raise InvalidInput(
                f"{self.model.uri} is not a registered version, so it has no {alias}; register "
                "it (loopml.register_model) and gate models:/NAME/N"
            )
        if alias not in self._champions:
            try:
                record = models.resolve(self.ws, f"models:/{self.model.name}@{alias}")
            except NotFound:
                self._champions[alias] = None
            else:
                scored = (
                    self.evaluation
                    if record.version == self.model.version
                    else self._score_champion(record, alias)
                )
                self._champions[alias] = (record, scored)
        return self._champions[alias]

    def _score_champion(self, record: models.ModelVersionRecord, alias: str) -> Evaluation:
        """Return the champion's stored score on these rows, else load and score it."""
        found = stored(self.ws, record.package_digest, self.table, self.target, self._sensitive)
        if found is not None:
            return found
        try:
            champion = load_model(self.ws, record.uri)
            return score(
                self.ws,
                champion,
                self.table,
                self.target,
                sensitive_features=self._sensitive,
                importance=False,
            )
        except LoopMLError as exc:
            raise InvalidInput(
                f"the {alias} to beat, {record.uri} ({self.model.name}@{alias}), cannot be "
                f"scored on {self.table.label}: {exc}. Move the alias, or promote with "
                "force=True and a reason"
            ) from exc


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict on a model: passed only if every check passed."""

    passed: bool
    model: str
    dataset: str
    target: str
    evaluation_id: str
    checks: list[CheckResult]
    gate: dict[str, Any]
    created_at: int

    @property
    def failures(self) -> list[CheckResult]:
        """Return the checks that failed."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Return one line: the verdict and each failed check's message."""
        if self.passed:
            return f"gate passed for {self.model} on {self.dataset} ({len(self.checks)} checks)"
        reasons = "; ".join(f"{c.check} {c.metric}: {c.message}" for c in self.failures)
        return f"gate failed for {self.model} on {self.dataset}: {reasons}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what alias history keeps)."""
        return {
            "passed": self.passed,
            "model": self.model,
            "dataset": self.dataset,
            "target": self.target,
            "evaluation_id": self.evaluation_id,
            "checks": [c.to_dict() for c in self.checks],
            "gate": self.gate,
            "created_at": self.created_at,
        }


class Gate:
    """A list of checks a model must all pass on some data before it is promoted."""

    def __init__(self, checks: Sequence[GateCheck], target: str | None = None) -> None:
        if isinstance(checks, GateCheck) or not isinstance(checks, Sequence):
            raise InvalidInput("Gate takes a list of checks: Gate([Threshold('f1', min=0.8)])")
        for item in checks:
            if not isinstance(item, GateCheck):
                raise InvalidInput(
                    f"{item!r} is not a gate check: a check has check(context) and get_params(); "
                    "subclass loopml.evaluation.checks.Check"
                )
        if not checks:
            raise InvalidInput("a gate needs at least one check")
        self.checks = list(checks)
        self.target = target

    def get_params(self) -> dict[str, Any]:
        """Return the gate's settings: its target and every check's name and settings."""
        return {"target": self.target, "checks": [_check_entry(c) for c in self.checks]}

    def check(
        self, model: str, data: DataLike, *, target: str | None = None, file: str | None = None
    ) -> GateResult:
        """Return the verdict of every check on model `model` (a URI) scored on `data`."""
        ws = workspace()
        candidate = load_model(ws, model)
        table = read_table(ws, data, file=file)
        column = target or self.target or _stored_target(ws, candidate, table)
        sensitive = [s for c in self.checks if isinstance(s := getattr(c, "sensitive", None), str)]
        context = GateContext(ws, candidate, table, column, sensitive)
        results = [_run(c, context) for c in self.checks]
        return GateResult(
            passed=all(r.passed for r in results),
            model=candidate.uri,
            dataset=table.label,
            target=column,
            evaluation_id=context.evaluation.id,
            checks=results,
            gate=self.get_params(),
            created_at=now_ms(),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        """Return the gate a dict describes (the shape of `get_params()` and of gate YAML)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("checks"), list):
            raise InvalidInput(
                "a gate is a mapping with a 'checks' list, e.g. "
                "{'checks': [{'threshold': {'metric': 'f1', 'min': 0.8}}]}"
            )
        unknown = set(data) - {"checks", "target"}
        if unknown:
            raise InvalidInput(f"a gate has 'checks' and 'target', not {sorted(unknown)}")
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise InvalidInput(f"a gate's target is a column name, not {target!r}")
        return cls([_make_check(entry, i) for i, entry in enumerate(data["checks"])], target)

    @classmethod
    def of(cls, gate: Gate | Mapping[str, Any] | Sequence[GateCheck] | str | Path) -> Gate:
        """Return `gate` as a Gate: itself, a dict like get_params(), a list of checks, or the
        path of a gate file."""
        if isinstance(gate, Gate):
            return gate
        if isinstance(gate, Mapping):
            return cls.from_dict(gate)
        if isinstance(gate, str | Path):
            return cls.load(gate)
        return cls(gate)

    @classmethod
    def load(cls, path: str | Path) -> Gate:
        """Return the gate written in the YAML (or JSON) file at `path`."""
        import yaml

        file = Path(path)
        if not file.is_file():
            raise NotFound(f"gate file {file} does not exist")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"gate file {file} is not valid YAML: {exc}") from None
        try:
            return cls.from_dict(data)
        except InvalidInput as exc:
            raise InvalidInput(f"gate file {file}: {exc}") from None

    def __repr__(self) -> str:
        return f"Gate({self.checks!r}, target={self.target!r})"


def _run(item: GateCheck, context: GateContext) -> CheckResult:
    """Return a check's result; a custom check that crashes is an error that names it."""
    try:
        return item.check(context)
    except LoopMLError:
        raise
    except Exception as exc:
        raise InvalidInput(f"gate check {item!r} raised {type(exc).__name__}: {exc}") from exc


def _check_entry(item: GateCheck) -> dict[str, Any]:
    """Return `{name: settings}`: a built-in's YAML name, else `module:Class`."""
    reference = f"{type(item).__module__}:{type(item).__qualname__}"
    builtin = {path: name for name, path in BUILTIN.items()}
    return {builtin.get(reference, reference): item.get_params()}


def _make_check(entry: object, index: int) -> GateCheck:
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise InvalidInput(
            f"check {index + 1} must be one 'name: {{settings}}' pair, like "
            f"'threshold: {{metric: f1, min: 0.8}}', not {entry!r}"
        )
    ((name, settings),) = entry.items()
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise InvalidInput(f"check {index + 1} ({name}): settings must be a mapping")
    if name in BUILTIN:
        kind = plugins.resolve(BUILTIN[name])
    elif isinstance(name, str) and ":" in name:
        try:
            kind = plugins.resolve(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InvalidInput(f"check {index + 1}: cannot import {name!r} ({exc})") from None
    else:
        raise InvalidInput(
            f"check {index + 1}: unknown check {name!r}; use {', '.join(BUILTIN)} or "
            "'module:Class' for a custom check"
        )
    if not (
        isinstance(kind, type)
        and callable(getattr(kind, "check", None))
        and callable(getattr(kind, "get_params", None))
    ):
        # Checked before anything is called: a gate file names classes, never functions.
        raise InvalidInput(
            f"check {index + 1}: {name} is not a check class (one with check(context) and "
            "get_params(); subclass loopml.evaluation.checks.Check)"
        )
    try:
        made = kind(**settings)
    except TypeError as exc:
        raise InvalidInput(f"check {index + 1} ({name}): {exc}") from None
    return made  # type: ignore[no-any-return]


def _stored_target(ws: Workspace, model: Model, table: Table) -> str:
    """Return the target of the latest stored evaluation of this package on these rows."""
    targets = {e.target for e in find(ws, model.loaded.package.digest, table.digest)}
    if len(targets) == 1:
        return targets.pop()
    raise InvalidInput(
        f"which column is the target? pass target= (or set it in the gate); {model.uri} has "
        f"{'no stored evaluation' if not targets else 'evaluations of several targets'} on "
        f"{table.label}"
    )

"""`loopml check`: one verdict for CI on a candidate model and the data it is checked on.

The data is validated against a reference version (schema and distribution skew), then the
model must pass the gate on it; either failing fails the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.core.store import now_ms
from loopml.core.workspace import workspace
from loopml.errors import LoopMLError
from loopml.evaluation.checks import CheckResult
from loopml.evaluation.gates import Gate, GateResult
from loopml.evaluation.records import Evaluation, get


@dataclass(frozen=True)
class ReleaseCheck:
    """The verdict of `loopml check`: data validation (when asked) and the gate's result."""

    gate: GateResult
    evaluation: Evaluation | None  # None when the gate could not score the model
    validation: dict[str, dict[str, Any]]  # table path -> ValidationReport.to_dict()

    @property
    def passed(self) -> bool:
        """Return True if the gate passed and no table of the data has a validation error."""
        return self.gate.passed and all(v["ok"] for v in self.validation.values())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "passed": self.passed,
            "gate": self.gate.to_dict(),
            "evaluation": self.evaluation.to_dict() if self.evaluation is not None else None,
            "validation": self.validation,
        }


def check_release(
    model: str,
    data: str,
    gate: Gate | str | Path,
    *,
    against: str | None = None,
    target: str | None = None,
    file: str | None = None,
    skew_threshold: float = 0.1,
) -> ReleaseCheck:
    """Validate `data` against `against` (when given), then check `model` with `gate` on it."""
    from loopml.data.compare import check

    ws = workspace()
    chosen = Gate.of(gate)
    validation = {}
    if against is not None:
        tables = check(ws, data, against=against, skew_threshold=skew_threshold)
        validation = {t.path: t.report.to_dict() for t in tables}
    try:
        result = chosen.check(model, data, target=target, file=file)
    except LoopMLError as exc:
        # The data report is what explains most such errors (a column gone): keep it, and
        # fail the check with the error as its one failed check.
        failed = CheckResult("error", "", None, "", False, str(exc))
        result = GateResult(
            False, model, data, target or "", "", [failed], chosen.get_params(), now_ms()
        )
        return ReleaseCheck(result, None, validation)
    return ReleaseCheck(result, get(ws, result.evaluation_id), validation)

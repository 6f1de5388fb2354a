"""Data drift of a table: one fitted detector per column, and the share of columns that moved.

`Reference(...).fit(frame)` learns the reference; `reference.sample()` starts an empty current
sample that takes chunks (`update`) and is judged by `reference.score(sample)`. `drift(a, b)`
does the three at once. Every column gets a row in the result whatever is wrong with it: a
column missing from the current data, one with no values, one whose values changed type are
each reported with a note, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInput, InvalidState
from loopml.monitoring.detectors import MIN_ROWS, Detector, Score, default_method, detector
from loopml.monitoring.sketch import (
    CATEGORICAL,
    NUMERIC,
    CategoricalSketch,
    NumericSketch,
    Sketch,
    column_kind,
    numbers,
)

if TYPE_CHECKING:
    import pandas as pd

MIN_IDENTIFIER_ROWS = 100  # from this many rows, mostly distinct categories are an identifier
DRIFT_SHARE = 0.5  # the dataset drifted when at least this share of its columns did
TYPE_CHANGED = "type"  # the method reported for a column whose values changed kind


@dataclass(frozen=True)
class ColumnDrift:
    """One column's result: its detector's score, its sample sizes and null shares."""

    column: str
    kind: str
    score: Score
    reference_rows: int
    current_rows: int
    reference_null_share: float
    current_null_share: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a flat JSON-able dict (NaN-free)."""
        return {
            "column": self.column,
            "kind": self.kind,
            **{k: _finite(v) for k, v in self.score.to_dict().items()},
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_null_share": self.reference_null_share,
            "current_null_share": self.current_null_share,
        }


@dataclass
class DriftReport:
    """Every column's drift, the share of columns that drifted, and the dataset verdict."""

    columns: list[ColumnDrift]
    drift_share: float  # the share at which the dataset counts as drifted
    rows: int  # current rows
    reference_rows: int
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def judged(self) -> list[ColumnDrift]:
        """Return the columns with a verdict."""
        return [c for c in self.columns if c.score.drift is not None]

    @property
    def drifted(self) -> list[str]:
        """Return the names of the columns that drifted."""
        return [c.column for c in self.columns if c.score.drift]

    @property
    def share(self) -> float | None:
        """Return drifted columns over columns with a verdict (None when none has one)."""
        judged = self.judged
        return len(self.drifted) / len(judged) if judged else None

    @property
    def dataset_drift(self) -> bool | None:
        """Return whether the share reached `drift_share` (None when no column was judged)."""
        share = self.share
        return None if share is None else share >= self.drift_share

    @property
    def table(self) -> pd.DataFrame:
        """Return one row per column: column, kind, method, statistic, p_value, effect,
        threshold, drift, note, row counts and null shares."""
        import pandas as pd

        order = [
            "column", "kind", "method", "statistic", "p_value", "effect", "threshold", "drift",
            "note", "reference_rows", "current_rows", "reference_null_share", "current_null_share",
        ]  # fmt: skip
        return pd.DataFrame([c.to_dict() for c in self.columns], columns=order)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of the summary and every column."""
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drift_share": self.drift_share,
            "share": self.share,
            "dataset_drift": self.dataset_drift,
            "drifted": self.drifted,
            "columns": [c.to_dict() for c in self.columns],
        }


class Sample:
    """A current sample being counted on a reference's grids, chunk by chunk."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self.sketches: dict[str, Sketch] = {
            name: column.detector.reference_.empty_like()
            for name, column in reference.columns_.items()
        }
        self.notes: dict[str, str] = {}  # column -> why it has no verdict, or a type change
        self.changed: set[str] = set()  # columns whose values changed kind

    def update(self, chunk: pd.DataFrame) -> None:
        """Count one chunk of current rows."""
        self.rows += len(chunk)
        labels = _labels(chunk)
        for name in self.reference.columns_:
            if name in self.changed:
                continue
            found = labels.get(name)
            if found is None:
                self.notes.setdefault(name, "missing from the current data")
                continue
            if len(found) > 1:
                self.notes[name] = "appears more than once in the current data"
                continue
            values, sketch = chunk[found[0]], self.sketches[name]
            if isinstance(sketch, NumericSketch):
                try:
                    sketch.update(numbers(values))
                except InvalidInput:
                    self.changed.add(name)
                    self.notes[name] = "numbers in the reference, text in the current data"
            else:
                sketch.update(values)


class Reference:
    """The reference side of drift: which columns, by which method, fitted on a table."""

    def __init__(
        self,
        *,
        columns: list[str] | None = None,
        num_method: str | None = None,
        cat_method: str | None = None,
        methods: dict[str, str] | None = None,
        threshold: float | None = None,
        drift_share: float = DRIFT_SHARE,
        min_rows: int = MIN_ROWS,
    ) -> None:
        if columns is not None and (
            isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
        ):
            raise InvalidInput(f"columns must be a list of column names, not {columns!r}")
        if not isinstance(drift_share, int | float) or not 0 < drift_share <= 1:
            raise InvalidInput(f"drift_share must be above 0 and at most 1, not {drift_share!r}")
        self.columns = None if columns is None else list(columns)
        self.num_method, self.cat_method = num_method, cat_method
        self.methods = dict(methods or {})
        self.threshold = threshold
        self.drift_share = float(drift_share)
        self.min_rows = min_rows
        # Fail now, not after reading a table, on a method or threshold that cannot work.
        if not isinstance(self.methods, dict):
            raise InvalidInput(f"methods must map column names to methods, not {methods!r}")
        for method, kind in ((num_method, NUMERIC), (cat_method, CATEGORICAL)):
            if method is not None and detector(method, **self._params()).kind != kind:
                raise InvalidInput(f"drift method {method!r} does not compare {kind} columns")
        for method in self.methods.values():
            detector(method, **self._params())

    def get_params(self) -> dict[str, Any]:
        """Return the settings this reference was made with."""
        return {
            "columns": self.columns,
            "num_method": self.num_method,
            "cat_method": self.cat_method,
            "methods": self.methods,
            "threshold": self.threshold,
            "drift_share": self.drift_share,
            "min_rows": self.min_rows,
        }

    def fit(self, frame: pd.DataFrame) -> Reference:
        """Learn each column of `frame` (or of `columns`) with its detector."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            kind = type(frame).__name__
            raise InvalidInput(f"the reference must be a pandas DataFrame, not {kind}")
        names = [str(c) for c in frame.columns]
        wanted = names if self.columns is None else self.columns
        unknown = [c for c in [*wanted, *self.methods] if c not in names]
        if unknown:
            raise InvalidInput(
                f"column(s) {', '.join(map(repr, unknown))} are not in the reference; "
                f"it has {', '.join(names) or 'no columns'}"
            )
        self.columns_: dict[str, _Column] = {}
        self.skipped_: dict[str, str] = {}
        self.rows_ = len(frame)
        for name in wanted:
            if len(_labels(frame)[name]) > 1:
                raise InvalidInput(f"column {name!r} appears more than once in the reference")
            values = frame[_original(frame, name)]
            fitted = self._fit_column(name, values)
            if isinstance(fitted, str):
                self.skipped_[name] = fitted
            else:
                self.columns_[name] = fitted
        return self

    def sample(self) -> Sample:
        """Return an empty current sample to `update` with chunks."""
        self._fitted()
        return Sample(self)

    def score(self, sample: Sample | pd.DataFrame) -> DriftReport:
        """Return the drift of a current sample (or a whole table) against this reference."""
        import pandas as pd

        if isinstance(sample, pd.DataFrame):
            frame, sample = sample, self.sample()
            sample.update(frame)
        elif not isinstance(sample, Sample):
            raise InvalidInput(
                f"current data must be a pandas DataFrame or a Sample, not {type(sample).__name__}"
            )
        results, distributions = [], {}
        for name, column in self.columns_.items():
            sketch = sample.sketches[name]
            reference = column.detector.reference_
            note = sample.notes.get(name)
            if name in sample.changed:
                score = Score(TYPE_CHANGED, None, 0.0, True, note=note or "")
            elif note or (not sketch.n and sketch.nulls):
                why = note or "no values in the current data (all null)"
                score = Score(column.detector.name, None, column.detector.threshold, None, note=why)
            else:
                score = column.detector.score(sketch)
            results.append(
                ColumnDrift(
                    name,
                    column.kind,
                    score,
                    reference.n,
                    sketch.n,
                    _share(reference.nulls, reference.n + reference.nulls),
                    _share(sketch.nulls, sketch.n + sketch.nulls),
                )
            )
            distributions[name] = distribution(reference, sketch)
        results = _false_discoveries(results)
        for name, why in self.skipped_.items():
            score = Score("none", None, 0.0, None, note=why)
            results.append(ColumnDrift(name, "other", score, 0, 0, 0.0, None))
        return DriftReport(results, self.drift_share, sample.rows, self.rows_, distributions)

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted reference as a JSON-able dict (read back by `from_dict`)."""
        self._fitted()
        return {
            "params": self.get_params(),
            "rows": self.rows_,
            "skipped": self.skipped_,
            "columns": {
                name: {
                    "kind": c.kind,
                    "method": c.detector.name,
                    "detector": c.detector.get_params(),
                    "sketch": c.detector.reference_.to_dict(),
                }
                for name, c in self.columns_.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        """Return the fitted reference `to_dict` wrote."""
        made = cls(**data["params"])
        made.rows_ = int(data["rows"])
        made.skipped_ = dict(data["skipped"])
        made.columns_ = {}
        for name, column in data["columns"].items():
            found = detector(column["method"], **column["detector"])
            sketch_type = NumericSketch if found.kind == NUMERIC else CategoricalSketch
            found.reference_ = sketch_type.from_dict(column["sketch"])
            made.columns_[name] = _Column(column["kind"], found)
        return made

    def _fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise InvalidState("the drift reference is not fitted; call fit(reference_frame)")

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"min_rows": self.min_rows}
        if self.threshold is not None:
            params["threshold"] = self.threshold
        return params

    def _fit_column(self, name: str, values: pd.Series) -> _Column | str:
        kind = column_kind(values)
        if kind is None:
            return f"not compared: dates or times ({values.dtype}); numbers and categories are"
        numeric: NumericSketch | None = None
        if kind == NUMERIC:
            try:
                numeric = NumericSketch.of_reference(numbers(values))
            except InvalidInput:
                kind = CATEGORICAL
        chosen = self.methods.get(name) or (self.num_method if kind == NUMERIC else self.cat_method)
        method = chosen or default_method(kind, numeric.distinct if numeric else 0, len(values))
        found = detector(method, **self._params())
        if found.kind == NUMERIC and numeric is None:
            raise InvalidInput(
                f"drift method {method!r} compares numbers; column {name!r} holds categories "
                "(use chisquare or jensenshannon)"
            )
        if found.kind == NUMERIC and numeric is not None:
            found.reference_ = numeric
        else:  # categories, or few distinct numbers compared as categories
            kind, found.reference_ = CATEGORICAL, CategoricalSketch()
            found.reference_.update(values)
            distinct, rows = len(found.reference_.counts), found.reference_.n
            if chosen is None and rows >= MIN_IDENTIFIER_ROWS and distinct > rows / 2:
                return (
                    f"not compared: {distinct} distinct values in {rows} rows, an identifier "
                    f"(name a method for it in methods= to compare it anyway)"
                )
        return _Column(kind, found)


@dataclass(frozen=True)
class _Column:
    kind: str  # what the detector compares: NUMERIC or CATEGORICAL
    detector: Detector


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    num_method: str | None = None,
    cat_method: str | None = None,
    methods: dict[str, str] | None = None,
    threshold: float | None = None,
    drift_share: float = DRIFT_SHARE,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    """Return the drift of `current` against `reference`, one row per column in `.table`."""
    fitted = Reference(
        columns=columns,
        num_method=num_method,
        cat_method=cat_method,
        methods=methods,
        threshold=threshold,
        drift_share=drift_share,
        min_rows=min_rows,
    ).fit(reference)
    return fitted.score(current)


def _false_discoveries(results: list[ColumnDrift]) -> list[ColumnDrift]:
    """Return the results with the p-value tests' verdicts held to Benjamini-Hochberg across
    the columns tested: with twenty columns, one p below 0.05 is what chance gives.

    The tests are ranked by p-value; the largest rank k whose p is at most k / m times its
    threshold passes with every test ranked before it (the step-up rule). A drifted column
    ranked after k is not drift."""
    tests = sorted(
        (
            i
            for i, c in enumerate(results)
            if c.score.p_value is not None and c.score.drift is not None
        ),
        key=lambda i: results[i].score.p_value or 0.0,
    )
    count = len(tests)
    if count <= 1:
        return results
    passed = 0
    for rank, i in enumerate(tests, start=1):
        score = results[i].score
        if (score.p_value or 0.0) <= rank / count * score.threshold:
            passed = rank
    out = list(results)
    for i in tests[passed:]:
        score = results[i].score
        if score.drift:
            note = (
                f"p = {score.p_value:.3g} is under {score.threshold:g} alone, not with {count} "
                "columns tested (Benjamini-Hochberg)"
            )
            out[i] = replace(results[i], score=replace(score, drift=False, note=note))
    return out


def distribution(reference: Sketch, current: Sketch, *, bins: int = 40) -> dict[str, Any]:
    """Return both samples' shares on shared bins, for a chart: numeric on bins of the
    reference's quantiles (as densities), categories by label (the 20 largest)."""
    if isinstance(reference, NumericSketch) and isinstance(current, NumericSketch):
        edges = reference.edges
        picks = np.unique(np.linspace(0, edges.size - 1, bins + 1).round().astype(int))
        cuts = edges[picks]
        ref_cdf = np.concatenate(([0.0], reference.cdf()))[picks + 1] if edges.size else []
        cur_cdf = np.concatenate(([0.0], current.cdf()))[picks + 1] if edges.size else []
        width = np.diff(cuts)
        with np.errstate(divide="ignore", invalid="ignore"):
            ref_density = np.where(width > 0, np.diff(ref_cdf) / width, 0.0)
            cur_density = np.where(width > 0, np.diff(cur_cdf) / width, 0.0)
        n = current.n
        return {
            "kind": NUMERIC,
            "edges": [float(x) for x in cuts],
            "reference": [float(x) for x in ref_density],
            "current": [float(x) for x in cur_density],
            "current_low": current.low if n else None,
            "current_high": current.high if n else None,
        }
    ref_counts = reference.counts if isinstance(reference, CategoricalSketch) else {}
    cur_counts = current.counts if isinstance(current, CategoricalSketch) else {}
    ref_total, cur_total = sum(ref_counts.values()) or 1, sum(cur_counts.values()) or 1
    keys = sorted(
        ref_counts.keys() | cur_counts.keys(),
        key=lambda k: -(ref_counts.get(k, 0) / ref_total + cur_counts.get(k, 0) / cur_total),
    )[:20]
    return {
        "kind": CATEGORICAL,
        "labels": keys,
        "reference": [ref_counts.get(k, 0) / ref_total for k in keys],
        "current": [cur_counts.get(k, 0) / cur_total for k in keys],
    }


def _original(frame: pd.DataFrame, name: str) -> Any:
    """Return the column label of `frame` whose text is `name` (labels may be ints)."""
    return _labels(frame)[name][0]


def _labels(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Return each column's name as text and the labels of `frame` that read so."""
    found: dict[str, list[Any]] = {}
    for label in frame.columns:
        found.setdefault(str(label), []).append(label)
    return found


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

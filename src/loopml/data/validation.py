"""Validate a table's profile against a schema or a reference profile, column by column.

Severity rule: an error is what a consumer of the table breaks on, or a breach of a bound a
person wrote down; a warning is a change worth a look that code usually survives.

    check               severity                     fires when
    empty_table         error                        0 rows, and min_rows >= 1
    row_count           error                        fewer rows than min_rows
    missing_column      error                        a schema column is absent
    type_change         error; integer->float warns  the type differs
    nulls               error                        nulls in a non-nullable column, or a null
                                                     share above max_null_share (+ tolerance)
    out_of_range        error vs a schema,           values below min or above max (vs a
                        warning vs a reference       reference: beyond its range +- 10%)
    unseen_categories   error vs a schema,           values not in categories
                        warning vs a reference
    new_column          warning                      a column the schema does not know
    distribution_skew   warning (reference only)     distance >= skew_threshold

Ranges and categories taken from a reference are what one sample happened to hold (a
resample of the same data has a slightly new maximum), so breaking them only warns, and
ranges get a margin of 10% of their width; the same bounds written in a schema file are a
contract, so breaking them is an error. integer -> float only warns because pandas turns
an integer column that gains nulls into float64. Distances are in loopml.data.skew.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from loopml.data.profile import NUMERIC_TYPES, Profile, check_profile
from loopml.data.schema import Schema, check_schema, infer_schema
from loopml.data.skew import WASSERSTEIN, skew
from loopml.errors import InvalidInput

Severity = Literal["error", "warning"]
REFERENCE_RANGE_MARGIN = 0.1  # of the reference's range, on each side
LISTED = 5  # unseen categories named in a message


@dataclass(frozen=True)
class Issue:
    """One finding about a column (or the table, when `column` is None)."""

    column: str | None
    check: str
    severity: Severity
    message: str
    observed: Any = None
    expected: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "observed": self.observed,
            "expected": self.expected,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Issues found in a table, errors first, and one status row per column."""

    issues: list[Issue]
    columns: list[dict[str, Any]]
    rows: int
    against: Literal["schema", "reference"]
    skew_threshold: float
    table: str | None = None
    reference_rows: int | None = field(default=None)

    @property
    def ok(self) -> bool:
        """Return True if no issue is an error (warnings pass)."""
        return not self.errors

    @property
    def errors(self) -> list[Issue]:
        """Return the issues of severity error."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Return the issues of severity warning."""
        return [i for i in self.issues if i.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "table": self.table,
            "ok": self.ok,
            "against": self.against,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "skew_threshold": self.skew_threshold,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "issues": [i.to_dict() for i in self.issues],
            "columns": self.columns,
        }


def validate(
    current_profile: Profile,
    *,
    schema: Schema | None = None,
    reference: Profile | None = None,
    skew_threshold: float = 0.1,
    null_tolerance: float = 0.05,
    label: str | None = None,
) -> ValidationReport:
    """Return the report of checking a profile against a schema or a reference profile.

    With a reference, its inferred schema is checked and distributions are compared; the null
    share may then exceed the reference's by `null_tolerance`. A schema is taken as written.
    """
    current = check_profile(current_profile, what="current profile")
    if (schema is None) == (reference is None):
        raise InvalidInput("validate needs exactly one of schema= or reference=")
    if not skew_threshold > 0:
        raise InvalidInput(f"skew_threshold must be above 0, not {skew_threshold}")
    if not 0 <= null_tolerance <= 1:
        raise InvalidInput(f"null_tolerance must be from 0 to 1, not {null_tolerance}")
    ref = check_profile(reference, what="reference profile") if reference is not None else None
    contract = infer_schema(ref) if ref is not None else check_schema(schema)
    check = (
        _Checker(severity="warning", tolerance=null_tolerance, margin=REFERENCE_RANGE_MARGIN)
        if ref is not None
        else _Checker(severity="error", tolerance=0.0, margin=0.0)
    )
    check.table(current["rows"], contract["min_rows"], label)
    expected_columns: dict[str, Any] = contract["columns"]
    rows: list[dict[str, Any]] = []
    for name, rules in expected_columns.items():
        col = current["columns"].get(name)
        if col is None:
            check.missing(name, rules)
            rows.append(_row(name, rules["type"], status=check.status(name)))
            continue
        comparable = check.column(name, col, rules, current["rows"])
        method, score = None, None
        if ref is not None and comparable:
            method, score = check.skew(name, ref["columns"][name], col, skew_threshold)
        status = check.status(name)
        rows.append(_row(name, col["type"], col["null_share"], method, score, status=status))
    for name, col in current["columns"].items():
        if name not in expected_columns:
            check.new(name, col)
            rows.append(_row(name, col["type"], col["null_share"], status="warning"))
    return ValidationReport(
        issues=sorted(check.issues, key=lambda i: i.severity != "error"),
        columns=rows,
        rows=current["rows"],
        against="reference" if ref is not None else "schema",
        skew_threshold=skew_threshold,
        table=label,
        reference_rows=ref["rows"] if ref is not None else None,
    )


def _row(
    name: str,
    kind: str | None,
    null_share: float | None = None,
    method: str | None = None,
    score: float | None = None,
    *,
    status: str,
) -> dict[str, Any]:
    return {
        "column": name,
        "type": kind,
        "null_share": null_share,
        "method": method,
        "score": score,
        "status": status,
    }


class _Checker:
    """Collects issues; bounds from a reference get warnings and margins, a schema's errors."""

    def __init__(self, *, severity: Severity, tolerance: float, margin: float) -> None:
        self.bound_severity = severity  # of out_of_range and unseen_categories
        self.tolerance = tolerance
        self.margin = margin
        self.issues: list[Issue] = []

    def add(
        self,
        column: str | None,
        check: str,
        severity: Severity,
        message: str,
        *,
        observed: Any = None,
        expected: Any = None,
    ) -> None:
        self.issues.append(Issue(column, check, severity, message, observed, expected))

    def status(self, name: str) -> str:
        severities = {i.severity for i in self.issues if i.column == name}
        return "error" if "error" in severities else "warning" if severities else "ok"

    def table(self, rows: int, min_rows: int, label: str | None) -> None:
        what = f"table {label}" if label else "the table"
        if rows == 0 and min_rows > 0:
            self.add(
                None,
                "empty_table",
                "error",
                f"{what} has no rows; check the job that wrote it",
                observed=0,
                expected=min_rows,
            )
        elif rows < min_rows:
            self.add(
                None,
                "row_count",
                "error",
                f"{what} has {rows} rows, fewer than min_rows {min_rows}; check the job "
                "that wrote it or lower min_rows",
                observed=rows,
                expected=min_rows,
            )

    def missing(self, name: str, rules: dict[str, Any]) -> None:
        self.add(
            name,
            "missing_column",
            "error",
            f"column {name!r} is missing; restore it upstream, or remove it from the "
            "schema if it was dropped on purpose",
            expected=rules["type"],
        )

    def new(self, name: str, col: dict[str, Any]) -> None:
        self.add(
            name,
            "new_column",
            "warning",
            f"column {name!r} ({col['type']}) is new; add it to the schema if it is meant to stay",
            observed=col["type"],
        )

    def column(self, name: str, col: dict[str, Any], rules: dict[str, Any], rows: int) -> bool:
        """Check one column; return False if its type no longer matches (nothing else compares)."""
        self._nulls(name, col, rules, rows)
        if not self._type(name, col, rules):
            return False
        if col["type"] in NUMERIC_TYPES:
            self._range(name, col, rules)
        if "categories" in rules:
            self._categories(name, col, rules["categories"])
        return True

    def skew(
        self, name: str, ref: dict[str, Any], col: dict[str, Any], threshold: float
    ) -> tuple[str | None, float | None]:
        """Return the column's (method, score) and warn if the score reaches `threshold`."""
        method, score = skew(ref, col)
        if method is None or score is None or score < threshold:
            return method, score
        if method == WASSERSTEIN:
            detail = (
                f"mean {_fmt(ref.get('mean'))} -> {_fmt(col.get('mean'))}, "
                f"std {_fmt(ref.get('std'))} -> {_fmt(col.get('std'))}"
            )
        else:
            detail = "category shares changed"
        self.add(
            name,
            "distribution_skew",
            "warning",
            f"column {name!r} moved: {method} distance {score:.3f} >= {threshold} ({detail}); "
            "check the source, or retrain if the new data is right",
            observed={"method": method, "score": score},
            expected={"threshold": threshold},
        )
        return method, score

    def _type(self, name: str, col: dict[str, Any], rules: dict[str, Any]) -> bool:
        want, got = rules["type"], col["type"]
        if want is None or got == want or not col["count"] or (want, got) == ("float", "integer"):
            return True
        if (want, got) == ("integer", "float"):
            self.add(
                name,
                "type_change",
                "warning",
                f"column {name!r} was integer and is now float ({col['dtype']}); pandas "
                "does this when an integer column gains nulls: check for fractions",
                observed=got,
                expected=want,
            )
            return True
        self.add(
            name,
            "type_change",
            "error",
            f"column {name!r} should be {want} but holds {got} ({col['dtype']}); fix "
            'the values upstream, or change "type" in the schema',
            observed=got,
            expected=want,
        )
        return False

    def _nulls(self, name: str, col: dict[str, Any], rules: dict[str, Any], rows: int) -> None:
        share, nulls = col["null_share"], rows - col["count"]
        if not rules["nullable"] and nulls > 0:
            self.add(
                name,
                "nulls",
                "error",
                f"column {name!r} has {nulls} nulls ({_pct(share)}) but may not be null; "
                'fill or drop them upstream, or set "nullable": true',
                observed=share,
                expected=0.0,
            )
            return
        allowed = min(rules["max_null_share"] + self.tolerance, 1.0)
        if share > allowed:
            self.add(
                name,
                "nulls",
                "error",
                f"column {name!r} is {_pct(share)} null, above the allowed {_pct(allowed)}; "
                'find where the values went missing, or raise "max_null_share"',
                observed=share,
                expected=allowed,
            )

    def _range(self, name: str, col: dict[str, Any], rules: dict[str, Any]) -> None:
        low, high = rules.get("min"), rules.get("max")
        if low is not None and high is not None and self.margin:
            pad = (high - low) * self.margin
            low, high = low - pad, high + pad
        below = low is not None and (
            col.get("neg_inf", 0) > 0 or (col["min"] is not None and col["min"] < low)
        )
        above = high is not None and (
            col.get("pos_inf", 0) > 0 or (col["max"] is not None and col["max"] > high)
        )
        if not (below or above):
            return
        share = _share_outside(col, low if below else None, high if above else None)
        limits = f"{_fmt(rules.get('min'))}..{_fmt(rules.get('max'))}"
        if self.margin:
            limits = f"the reference range {limits} (+-{self.margin:.0%})"
        reach = [f"down to {_fmt(col['min'])}"] if below else []
        reach += [f"up to {_fmt(col['max'])}"] if above else []
        self.add(
            name,
            "out_of_range",
            self.bound_severity,
            f"column {name!r} has values {' and '.join(reach)}, outside {limits} "
            f"(about {_pct(share)} of values); fix them upstream, or widen "
            '"min"/"max" if they are valid',
            observed={"min": col["min"], "max": col["max"], "share": share},
            expected={"min": low, "max": high},
        )

    def _categories(self, name: str, col: dict[str, Any], allowed: list[str]) -> None:
        known = set(allowed)
        counts: dict[str, int] = col.get("categories") or dict(col.get("top") or [])
        unseen = {value: n for value, n in counts.items() if value not in known}
        beyond = col["distinct"] - len(known) if "categories" not in col else 0
        if not unseen and beyond <= 0:
            return
        count = max(col["count"], 1)
        share = sum(unseen.values()) / count
        listed = ", ".join(f"{v!r} ({_pct(n / count)})" for v, n in list(unseen.items())[:LISTED])
        if "categories" in col:
            what = f"{len(unseen)} value(s) outside its categories ({_pct(share)} of values)"
        else:  # over 100 distinct values: only the top ones are known
            least = max(len(unseen), beyond)
            what = f"at least {least} value(s) outside its categories (at least {_pct(share)})"
        self.add(
            name,
            "unseen_categories",
            self.bound_severity,
            f"column {name!r} has {what}{': ' + listed if listed else ''}; fix them upstream, "
            'or add them to "categories" if they are valid',
            observed={"values": {v: n / count for v, n in unseen.items()}, "share": share},
            expected=allowed,
        )


def _share_outside(col: dict[str, Any], low: float | None, high: float | None) -> float:
    """Return the estimated share of values below `low` or above `high`, from the quantiles."""
    count = col["count"]
    neg, pos = col.get("neg_inf", 0), col.get("pos_inf", 0)
    finite = count - neg - pos
    quantiles = np.asarray(col.get("quantiles") or [], dtype=float)
    p = np.linspace(0.0, 1.0, quantiles.size)
    outside = 0.0
    if low is not None:
        outside += neg + (finite * float(np.interp(low, quantiles, p)) if finite else 0)
    if high is not None:
        outside += pos + (finite * (1 - float(np.interp(high, quantiles, p))) if finite else 0)
    return min(outside / count, 1.0) if count else 0.0


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pct(share: float) -> str:
    return "<0.1%" if 0 < share < 0.001 else f"{share:.1%}"

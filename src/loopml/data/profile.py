"""Column profiles of tables, and the difference between two profiles.

A profile is a JSON-able dict, stored with a dataset version and compared later without
re-reading the data (`json.dumps(profile, allow_nan=False)` always works)::

    {"format": 1, "rows": 1000, "columns": {"age": {...}, "plan": {...}}}

Every column profile holds
    type        "integer" | "float" | "boolean" | "string" | "datetime"
    dtype       the pandas dtype, e.g. "int64", "str", "datetime64[us, UTC]"
    count       non-null values
    null_share  nulls / rows (0.0 for an empty table)
    distinct    distinct non-null values
Numbers (integer, float) add, over their finite values: min, max, mean, std (population,
ddof=0), quantiles (101 values, p0..p100) and histogram {"edges": [21], "counts": [20]};
float columns add neg_inf and pos_inf, the counts of -inf and +inf kept out of those stats.
Datetimes add min and max as ISO 8601 strings. Every column but floats adds top, the 20
most common values as [[value, count], ...]; integer, boolean and string columns with at
most 100 distinct values add categories {value: count} holding every value. Values are
written as strings: "42", "true", "2024-01-31T00:00:00". A statistic with nothing to
describe (the mean of an all-null column) is null.

Object columns take the type of their content: ints -> integer, ints and floats -> float,
bools -> boolean, dates and datetimes -> datetime (in UTC), anything else (text, a mix of
kinds) -> string, since a consumer can only treat a mix as text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

FORMAT = 1
TYPES = ("integer", "float", "boolean", "string", "datetime")
NUMERIC_TYPES = ("integer", "float")
MAX_CATEGORIES = 100
TOP_VALUES = 20
HISTOGRAM_BINS = 20
QUANTILES = 101
DIFF_STATS = ("null_share", "mean", "std", "min", "max", "distinct")

Profile = dict[str, Any]


def profile_table(df: pd.DataFrame) -> Profile:
    """Return the profile of a DataFrame: its row count and one profile per column."""
    names = [str(c) for c in df.columns]
    twice = sorted(name for name, n in Counter(names).items() if n > 1)
    if twice:
        raise InvalidInput(
            f"column name(s) {', '.join(map(repr, twice))} appear more than once; "
            "rename the columns so each name is unique"
        )
    rows = len(df)
    columns = {name: _profile_column(df.iloc[:, i], rows) for i, name in enumerate(names)}
    return {"format": FORMAT, "rows": rows, "columns": columns}


def check_profile(profile: Any, *, what: str = "profile") -> Profile:
    """Return `profile` if it is a profile this LoopML reads, else raise InvalidInput."""
    if not isinstance(profile, dict) or not isinstance(profile.get("columns"), dict):
        raise InvalidInput(f"{what} is not a LoopML table profile; make one with profile_table")
    if profile.get("format") != FORMAT:
        raise InvalidInput(
            f"{what} has format {profile.get('format')!r}; this LoopML reads format {FORMAT}, "
            "so upgrade LoopML or profile the table again"
        )
    return profile


def diff_profiles(old: Profile, new: Profile) -> dict[str, Any]:
    """Return rows, added/removed columns, type changes and changed stats from old to new."""
    before = check_profile(old, what="old profile")["columns"]
    after = check_profile(new, what="new profile")["columns"]
    common = [name for name in after if name in before]
    changed: dict[str, dict[str, dict[str, Any]]] = {}
    for name in common:
        stats = {
            key: {"old": before[name].get(key), "new": after[name].get(key)}
            for key in DIFF_STATS
            if before[name].get(key) != after[name].get(key)
        }
        if stats:
            changed[name] = stats
    return {
        "rows": {"old": old["rows"], "new": new["rows"]},
        "added": [name for name in after if name not in before],
        "removed": [name for name in before if name not in after],
        "type_changes": {
            name: {"old": before[name]["type"], "new": after[name]["type"]}
            for name in common
            if before[name]["type"] != after[name]["type"]
        },
        "changed": changed,
    }


def _profile_column(column: pd.Series, rows: int) -> dict[str, Any]:
    kind, values = _typed(column.dropna())
    out: dict[str, Any] = {"type": kind, "dtype": str(column.dtype)}
    if kind in NUMERIC_TYPES:
        stats = _numbers(values, kind)
    elif kind == "boolean":
        stats = _booleans(values)
    elif kind == "datetime":
        stats = _datetimes(values)
    else:
        stats = _strings(values)
    count = stats.pop("count")
    out.update(count=count, null_share=(rows - count) / rows if rows else 0.0)
    out.update(stats)
    return out


def _typed(present: pd.Series) -> tuple[str, Any]:
    """Return the column's type and its non-null values in the form its stats need."""
    import pandas as pd
    from pandas.api import types

    dtype = present.dtype
    if types.is_object_dtype(dtype):
        return _typed_objects(present)
    if types.is_bool_dtype(dtype):
        return "boolean", present.to_numpy(dtype=bool)
    if types.is_integer_dtype(dtype):
        values = present.to_numpy()
        return "integer", values if values.dtype.kind in "iu" else values.astype(np.int64)
    if types.is_float_dtype(dtype):
        return "float", present.to_numpy(dtype=np.float64)
    if types.is_datetime64_any_dtype(dtype):
        return "datetime", present
    plain = types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    return "string", present if plain else present.astype(str)  # categories, timedeltas, ...


def _typed_objects(present: pd.Series) -> tuple[str, Any]:
    import pandas as pd
    from pandas.api import types

    inferred = types.infer_dtype(present, skipna=True)
    try:
        if inferred == "boolean":
            return "boolean", present.to_numpy(dtype=bool)
        if inferred == "integer":
            return "integer", _int_array(present)
        if inferred in ("floating", "mixed-integer-float", "decimal"):
            return "float", present.to_numpy(dtype=np.float64)
        if inferred in ("datetime", "datetime64", "date"):
            return "datetime", pd.to_datetime(present, utc=True)
    except (OverflowError, ValueError, TypeError):
        pass  # values too large or too odd for a numeric or datetime array: read them as text
    return "string", present.astype(str)


def _int_array(present: pd.Series) -> Any:
    """Return Python ints as int64, else uint64, else float64 (ints past 2**64 lose digits)."""
    for dtype in (np.int64, np.uint64):
        try:
            return present.to_numpy(dtype=dtype)
        except OverflowError:
            continue
    return present.to_numpy(dtype=np.float64)


def _numbers(values: Any, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        neg_inf = int(np.count_nonzero(values == -np.inf))
        pos_inf = int(np.count_nonzero(values == np.inf))
        count = finite.size + neg_inf + pos_inf  # a NaN left after dropna() counts as null
        if kind == "float":
            out.update(neg_inf=neg_inf, pos_inf=pos_inf)
    else:
        finite, neg_inf, pos_inf, count = values, 0, 0, values.size
    ordered = np.sort(finite)
    uniques, counts = _runs(ordered)
    out["distinct"] = uniques.size + (neg_inf > 0) + (pos_inf > 0)
    floats = ordered.astype(np.float64, copy=False)
    as_value: Callable[[Any], int | float | None] = int if kind == "integer" else _finite
    empty = ordered.size == 0
    with np.errstate(over="ignore", invalid="ignore"):
        out.update(
            min=None if empty else as_value(ordered[0]),
            max=None if empty else as_value(ordered[-1]),
            mean=None if empty else _finite(floats.mean()),
            std=None if empty else _finite(floats.std()),
            quantiles=None if empty else [_finite(q) for q in _quantiles(floats)],
            histogram=None if empty else _histogram(floats),
        )
    if kind == "integer":
        out.update(_counted(uniques, counts, _int_text))
    return {"count": count, **out}


def _runs(ordered: Any) -> tuple[Any, Any]:
    """Return the distinct values of a sorted array and how often each occurs."""
    if ordered.size == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.diff(np.append(starts, ordered.size))


def _quantiles(ordered: Any) -> Any:
    """Return p0..p100 of a sorted array by linear interpolation, never out of order."""
    position = np.linspace(0.0, ordered.size - 1, QUANTILES)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ordered.size - 1)
    frac = position - below
    low, high = ordered[below], ordered[above]
    result = low + (high - low) * frac
    overflowed = ~np.isfinite(result)  # (high - low) past the float range
    result[overflowed] = (low * (1 - frac) + high * frac)[overflowed]
    # Each value stays between its neighbours, so the sequence is sorted despite rounding.
    return np.clip(result, low, high)


def _histogram(ordered: Any) -> dict[str, list[Any]]:
    low, high = ordered[0], ordered[-1]
    if low == high:
        return {"edges": [_finite(low), _finite(high)], "counts": [int(ordered.size)]}
    t = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    edges = np.maximum.accumulate(low * (1 - t) + high * t)  # no overflow for huge ranges
    edges[0], edges[-1] = low, high
    bounds = np.searchsorted(ordered, edges, side="left")
    bounds[-1] = ordered.size  # the last bin holds its right edge, as in np.histogram
    return {"edges": [_finite(e) for e in edges], "counts": np.diff(bounds).tolist()}


def _booleans(values: Any) -> dict[str, Any]:
    trues = int(np.count_nonzero(values))
    found = {"true": trues, "false": int(values.size) - trues}
    present = {k: n for k, n in found.items() if n}
    return {
        "count": int(values.size),
        "distinct": len(present),
        **_counted(list(present), np.array(list(present.values()), dtype=np.int64)),
    }


def _strings(values: pd.Series) -> dict[str, Any]:
    counts = values.value_counts(sort=True)
    return {
        "count": int(values.size),
        "distinct": len(counts),
        **_counted(counts.index, counts.to_numpy(dtype=np.int64)),
    }


def _datetimes(values: pd.Series) -> dict[str, Any]:
    counts = values.value_counts(sort=True).head(TOP_VALUES)
    empty = values.size == 0
    return {
        "count": int(values.size),
        "distinct": int(values.nunique()),
        "min": None if empty else values.min().isoformat(),
        "max": None if empty else values.max().isoformat(),
        "top": sorted(
            ([k.isoformat(), int(n)] for k, n in counts.items()), key=lambda p: (-p[1], p[0])
        ),
    }


def _counted(values: Any, counts: Any, fmt: Callable[[Any], str] = str) -> dict[str, Any]:
    """Return top (20 most common) and, for at most 100 values, categories with every value.

    Ties go in the order of the values themselves; only the values kept are formatted.
    """
    size = len(counts)
    if size > TOP_VALUES:
        picked = np.argpartition(-counts, TOP_VALUES - 1)[:TOP_VALUES].tolist()
    else:
        picked = list(range(size))
    ranked = sorted(picked, key=lambda i: (-counts[i], values[i]))
    out: dict[str, Any] = {"top": [[fmt(values[i]), int(counts[i])] for i in ranked]}
    if size <= MAX_CATEGORIES:
        every = sorted(range(size), key=lambda i: (-counts[i], values[i]))
        out["categories"] = {fmt(values[i]): int(counts[i]) for i in every}
    return out


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def _int_text(value: Any) -> str:
    return str(int(value))

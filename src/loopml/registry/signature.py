"""Model signatures: the columns (or array shape) a model takes, inferred from an example.

A signature is what `predict` checks every request against, so `enforce` does one vectorized
check per column and no per-row Python. It casts only where no value can change meaning
(int -> float, float32 -> float64, int64 -> int32 when every value fits, ISO 8601 text ->
datetime) and refuses the rest with a message that names the column, both types and the fix.

Dtype names are numpy's ("float64", "int64", "bool", "datetime64[ns]"), pandas' for its own
types ("Int64", "boolean", "category", "datetime64[ns, UTC]"), "str" for text in any of its
representations (object, pandas' "str" and "string", numpy "<U") and "object" for anything else,
which is passed through unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput

FORMAT = 1
KINDS = ("dataframe", "ndarray")
EXTRA_COLUMNS = ("error", "drop")

# Which kinds of values each kind of column accepts; the cast is done by `_convert`.
_ACCEPTS = {
    "bool": {"bool"},
    "int": {"bool", "int"},
    "float": {"bool", "int", "float"},
    "complex": {"bool", "int", "float", "complex"},
    "str": {"str"},
    "category": {"category", "str", "int", "bool"},
    "datetime": {"datetime", "str"},
    "timedelta": {"timedelta"},
}
_FIXES = {
    "bool": "send true/false values",
    "int": "send whole numbers (floats and text are not cast to integers: that could lose data)",
    "float": "send numbers",
    "complex": "send numbers",
    "str": "send text",
    "category": "send values from the categories the model knows",
    "datetime": "send datetimes or ISO 8601 text",
    "timedelta": "send durations",
}
_NUMPY_KINDS = {
    "b": "bool",
    "i": "int",
    "u": "int",
    "f": "float",
    "c": "complex",
    "M": "datetime",
    "m": "timedelta",
    "U": "str",
    "O": "object",
}
# pandas.api.types.infer_dtype's answer for an object column -> the kind its values are.
_OBJECT_KINDS = {
    "string": "str",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "boolean": "bool",
    "datetime64": "datetime",
    "datetime": "datetime",
    "timedelta64": "timedelta",
    "timedelta": "timedelta",
    "empty": "empty",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One input or output: a named DataFrame column, or an (unnamed) array with its shape.

    `nullable` says whether missing values are allowed (the example had some);
    `categories` are a categorical column's categories in code order, when they are plain
    JSON values, so text can be coded exactly as the model was trained.
    """

    name: str | None
    dtype: str
    shape: tuple[int | None, ...] | None = None
    nullable: bool = True
    categories: tuple[str | int | float | bool, ...] | None = None

    def __post_init__(self) -> None:
        where = f"column {self.name!r}" if self.name is not None else "array"
        if not isinstance(self.dtype, str) or _target_kind(self.dtype) == "unknown":
            raise InvalidInput(
                f"{where}: dtype {self.dtype!r} is not a numpy or pandas dtype name; "
                'use one such as "float64", "int64", "bool", "str", "category", "datetime64[ns]"'
            )
        if self.shape is not None:
            shape = tuple(self.shape)
            if any(d is not None and (not _is_int(d) or d < 0) for d in shape):
                raise InvalidInput(
                    f"{where}: shape {list(shape)} must hold sizes >= 0, or None for any size"
                )
            object.__setattr__(self, "shape", shape)
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(self.categories))

    def to_dict(self) -> dict[str, Any]:
        """Return this spec as a JSON-able dict."""
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "nullable": self.nullable}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        """Return the spec `to_dict` wrote; raise InvalidInput naming what is wrong."""
        if not isinstance(data, Mapping) or "dtype" not in data:
            raise InvalidInput(f'a column spec must be an object with a "dtype", not {data!r}')
        name, shape, categories = data.get("name"), data.get("shape"), data.get("categories")
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"column spec name must be text or null, not {name!r}")
        if shape is not None and not isinstance(shape, list | tuple):
            raise InvalidInput(f"column {name!r}: shape must be a list, not {shape!r}")
        if categories is not None and (
            not isinstance(categories, list | tuple)
            or not all(_plain_category(c) for c in categories)
        ):
            raise InvalidInput(
                f"column {name!r}: categories must be a list of text or numbers, not {categories!r}"
            )
        nullable = data.get("nullable", True)
        if not isinstance(nullable, bool):
            raise InvalidInput(f"column {name!r}: nullable must be true or false")
        return cls(
            name=name,
            dtype=data["dtype"],
            shape=tuple(shape) if shape is not None else None,
            nullable=nullable,
            categories=tuple(categories) if categories is not None else None,
        )


@dataclass(frozen=True)
class Signature:
    """What a model takes ("dataframe": named columns; "ndarray": one array) and returns."""

    kind: str
    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"signature kind {self.kind!r} is unknown; use one of {KINDS}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.kind == "ndarray":
            if len(self.inputs) != 1 or self.inputs[0].shape is None:
                raise InvalidInput(
                    "an ndarray signature takes exactly one input spec, with a shape"
                )
            return
        names = [spec.name for spec in self.inputs]
        if not names or None in names:
            raise InvalidInput("a dataframe signature needs at least one input, every one named")
        dupes = sorted({n for n in names if names.count(n) > 1})  # type: ignore[type-var]
        if dupes:
            raise InvalidInput(f"signature names column {dupes[0]!r} twice; names are unique")

    @property
    def names(self) -> list[str]:
        """Return the input column names, in order (empty for an ndarray signature)."""
        return [s.name for s in self.inputs if s.name is not None]

    def to_dict(self) -> dict[str, Any]:
        """Return this signature as a JSON-able dict; `from_dict` reads it back."""
        return {
            "format": FORMAT,
            "kind": self.kind,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Return the signature `to_dict` wrote; raise InvalidInput naming what is wrong."""
        if not isinstance(data, Mapping) or "kind" not in data or "inputs" not in data:
            raise InvalidInput('a signature must be an object with "kind" and "inputs"')
        if data.get("format", FORMAT) != FORMAT:
            raise InvalidInput(
                f"signature format {data['format']!r} is newer than this LoopML "
                f"(it reads format {FORMAT}); upgrade LoopML"
            )
        for key in ("inputs", "outputs"):
            if not isinstance(data.get(key, []), list | tuple):
                raise InvalidInput(f'signature "{key}" must be a list of column specs')
        return cls(
            kind=data["kind"],
            inputs=tuple(ColumnSpec.from_dict(s) for s in data["inputs"]),
            outputs=tuple(ColumnSpec.from_dict(s) for s in data.get("outputs", [])),
        )


def infer_signature(input_example: Any, output_example: Any = None) -> Signature:
    """Return the signature of a model that takes `input_example` and returns `output_example`.

    A DataFrame (or a dict, or a list of dicts, read as rows) gives a "dataframe" signature;
    an array (or a list of lists) gives an "ndarray" one whose first dimension is any size.
    """
    import numpy as np
    import pandas as pd

    value = _tabular(input_example, "input example")
    if isinstance(value, pd.DataFrame):
        kind, inputs = "dataframe", _frame_specs(value, "input example")
    else:
        kind, inputs = "ndarray", (_array_spec(value),)
    outputs: tuple[ColumnSpec, ...] = ()
    if output_example is not None:
        out = _tabular(output_example, "output example")
        if isinstance(out, pd.DataFrame):
            outputs = _frame_specs(out, "output example")
        elif isinstance(out, pd.Series):
            outputs = (_column_spec(_name(out.name), out),)
        else:
            outputs = (_array_spec(np.asarray(out)),)
    return Signature(kind=kind, inputs=inputs, outputs=outputs)


def enforce(signature: Signature, data: Any, *, extra_columns: str = "error") -> Any:
    """Return `data` checked against the signature's inputs, converted and cast safely.

    For a "dataframe" signature: a DataFrame with the signature's columns in its order (rows of
    dicts and arrays with the right number of columns are converted); extra columns are refused
    or, with extra_columns="drop", dropped. For an "ndarray" one: an array of its dtype (a
    DataFrame with the right number of columns is converted). `data` itself is never changed,
    and is returned as it is when nothing needed changing.
    """
    if extra_columns not in EXTRA_COLUMNS:
        raise InvalidInput(
            f"extra_columns={extra_columns!r} is unknown; use 'error' (refuse them) or 'drop'"
        )
    if signature.kind == "ndarray":
        return _enforce_array(signature.inputs[0], data)
    return _enforce_frame(signature, data, extra_columns)


# Inference


def _tabular(value: Any, what: str) -> Any:
    """Return `value` as a DataFrame, Series or ndarray, converting dicts and lists."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame | pd.Series | np.ndarray):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            raise InvalidInput(f"the {what} is a single value; pass a batch of rows")
        return value
    if isinstance(value, Mapping):
        return _records_frame([value]) if _all_scalars(value) else pd.DataFrame(dict(value))
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidInput(f"the {what} is empty; pass a few rows")
        if all(isinstance(row, Mapping) for row in value):
            return _records_frame(value)
        return np.asarray(value)
    raise InvalidInput(
        f"the {what} is a {type(value).__name__}; pass a pandas DataFrame, a numpy array, "
        "a list of dicts (rows) or a list of lists"
    )


def _records_frame(rows: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(list(rows))


def _all_scalars(value: Mapping[Any, Any]) -> bool:
    import numpy as np
    import pandas as pd

    return not any(isinstance(v, list | tuple | np.ndarray | pd.Series) for v in value.values())


def _frame_specs(frame: Any, what: str) -> tuple[ColumnSpec, ...]:
    _labels(frame, what)  # refuses duplicate names
    return tuple(_column_spec(str(label), frame[label]) for label in frame.columns)


def _column_spec(name: str | None, column: Any) -> ColumnSpec:
    import pandas as pd

    dtype = column.dtype
    kind = _column_kind(column)
    # NaN is an ordinary float value, which a few-row example rarely shows: float columns
    # accept it; others accept missing values only if the example had some.
    nullable = kind == "float" or bool(column.isna().any())
    if kind == "category":
        return ColumnSpec(name, "category", None, nullable, _categories(dtype))
    if kind == "str":
        return ColumnSpec(name, "str", None, nullable)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and kind not in _ACCEPTS:
        return ColumnSpec(name, "object", None, nullable)  # periods, intervals, sparse: unchecked
    return ColumnSpec(name, "object" if kind in ("empty", "object") else str(dtype), None, nullable)


def _array_spec(array: Any) -> ColumnSpec:
    import numpy as np
    import pandas as pd

    if array.ndim == 0:
        raise InvalidInput("an array example must have a batch dimension; got a single value")
    kind = _NUMPY_KINDS.get(array.dtype.kind, "other")
    if kind == "object":
        kind = _OBJECT_KINDS.get(pd.api.types.infer_dtype(array.reshape(-1), skipna=True), "object")
    if kind == "other":
        raise InvalidInput(
            f"arrays of dtype {array.dtype} are not supported in a signature; "
            "pass numbers, booleans, text or datetimes"
        )
    if kind == "str":
        dtype = "str"
    elif array.dtype.kind == "O":
        dtype = "object"
    else:
        dtype = str(array.dtype)
    nullable = kind == "float" or (
        bool(pd.isna(array).any()) if kind in ("object", "str") else False
    )
    if kind == "complex":
        nullable = bool(np.isnan(array).any())
    return ColumnSpec(None, dtype, (None, *array.shape[1:]), nullable)


def _categories(dtype: Any) -> tuple[str | int | float | bool, ...] | None:
    values = dtype.categories.tolist()
    return tuple(values) if all(_plain_category(v) for v in values) else None


def _plain_category(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)


def _name(label: object) -> str | None:
    return None if label is None else str(label)


# Kinds: what sort of values a column or dtype name holds


def _dtype_kind(dtype: Any) -> str:
    import numpy as np
    import pandas as pd

    if isinstance(dtype, np.dtype):
        return _NUMPY_KINDS.get(dtype.kind, "other")
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.StringDtype):
        return "str"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    kind = getattr(dtype, "kind", "")
    return _NUMPY_KINDS[kind] if kind in "biuf" and kind else "other"


def _column_kind(column: Any) -> str:
    """Return the kind of `column`'s values; an object column is looked into (one C scan)."""
    import pandas as pd

    kind = _dtype_kind(column.dtype)
    if kind != "object":
        return kind
    return _OBJECT_KINDS.get(pd.api.types.infer_dtype(column, skipna=True), "object")


def _target_kind(dtype: str) -> str:
    """Return the kind a signature dtype name asks for; "unknown" when it is no dtype."""
    import pandas as pd

    if dtype in ("str", "category", "object"):
        return dtype
    try:
        parsed = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return "unknown"
    kind = _dtype_kind(parsed)
    return "object" if kind == "other" else kind


def _target_dtype(dtype: str) -> Any:
    import pandas as pd

    return pd.api.types.pandas_dtype(dtype)


# Enforcement


def _enforce_frame(signature: Signature, data: Any, extra_columns: str) -> Any:
    import numpy as np
    import pandas as pd

    names = signature.names
    if isinstance(data, pd.DataFrame) and (exact := _exact_dtypes(signature)):
        columns, dtypes = exact
        # Identity first: a server that builds request frames on the signature's own index
        # skips even the comparison of names.
        same = data.columns is columns or data.columns.equals(columns)
        if same and dtypes_of(data) == dtypes:
            return data  # the common case in serving: the model's own columns and dtypes
    frame = data if isinstance(data, pd.DataFrame) else _tabular(data, "input")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if isinstance(frame, np.ndarray):
        if frame.ndim != 2 or frame.shape[1] != len(names):
            raise InvalidInput(
                f"the input is an array of shape {frame.shape}; the model takes a table with "
                f"{len(names)} columns ({', '.join(names)}): send it as a DataFrame, as rows "
                f"of dicts, or as an array of shape (rows, {len(names)}) in that column order"
            )
        frame = pd.DataFrame(frame, columns=names)
    labels = _labels(frame, "input")
    missing = [n for n in names if n not in labels]
    if missing:
        listed = ", ".join(repr(n) for n in missing)
        raise InvalidInput(
            f"column{'s' if len(missing) > 1 else ''} {listed} missing from the input; "
            f"the model expects columns: {', '.join(names)}"
        )
    expected = set(names)
    extra = [n for n in labels if n not in expected]
    if extra and extra_columns == "error":
        raise InvalidInput(
            f"the input has columns the model does not take: {', '.join(map(repr, extra))}; "
            f"the model expects columns: {', '.join(names)}. Drop them, or pass "
            'extra_columns="drop"'
        )
    ordered = [labels[name] for name in names]
    _check_missing(frame, [s for s in signature.inputs if not s.nullable], labels)
    # One look at every dtype; only a column whose dtype differs is looked into further.
    dtypes = frame.dtypes
    converted: dict[Any, Any] = {}
    for spec, label in zip(signature.inputs, ordered, strict=True):
        if spec.dtype == "category" or str(dtypes.iloc[frame.columns.get_loc(label)]) != spec.dtype:
            column = frame[label]
            new = _convert(column, spec, f"column {spec.name!r}", check_missing=False)
            if new is not column:
                converted[label] = new.array
    if not converted and list(frame.columns) == ordered:
        return frame
    if not converted:
        return frame[ordered]
    # A new frame rather than setting columns on a selection: pandas 2 would warn about
    # setting on a copy, and could share blocks with the caller's frame.
    arrays = {label: converted.get(label, frame[label].array) for label in ordered}
    return pd.DataFrame(arrays, index=frame.index, copy=False)


_EXACT_KINDS = {"int", "uint", "float", "bool"}


def _exact_dtypes(signature: Signature) -> tuple[Any, list[Any]] | None:
    """Return the column index and NumPy dtypes a frame needs to pass the signature untouched,
    or None when some column always needs a closer look (text, categories, times, extension
    dtypes, a float column that must not be missing). Worked out once per signature."""
    import numpy as np
    import pandas as pd

    if "_exact" not in signature.__dict__:
        dtypes: list[Any] | None = []
        for spec in signature.inputs:
            kind = "".join(c for c in spec.dtype if c.isalpha())
            plain = kind in _EXACT_KINDS and spec.categories is None and not spec.shape
            if not plain or (kind == "float" and not spec.nullable):
                dtypes = None
                break
            dtypes.append(np.dtype(spec.dtype))  # type: ignore[union-attr]
        exact = (pd.Index(signature.names), dtypes) if dtypes else None
        object.__setattr__(signature, "_exact", exact)  # not a field: equality is unchanged
    found: tuple[Any, list[Any]] | None = signature.__dict__["_exact"]
    return found


def column_index(signature: Signature) -> Any:
    """Return the signature's columns as the pandas Index enforcement compares with (made
    once), so a frame built on it is recognised at once; None for signatures without one."""
    exact = _exact_dtypes(signature) if signature.kind == "dataframe" else None
    return exact[0] if exact else None


def dtypes_of(frame: Any) -> list[Any]:
    """Return a frame's column dtypes. `frame.dtypes` builds a Series (about 40 us for 30
    columns), most of a single-row request's budget, so the block manager is asked directly
    when this pandas has one."""
    manager = getattr(frame, "_mgr", None)
    if manager is not None and callable(getattr(manager, "get_dtypes", None)):
        return list(manager.get_dtypes())
    return list(frame.dtypes)


def _check_missing(frame: Any, specs: list[ColumnSpec], labels: dict[str, Any]) -> None:
    """Refuse missing values in the columns of `specs` (one vectorized pass over them all)."""
    if not specs:
        return
    counts = frame[[labels[s.name] for s in specs]].isna().sum()  # type: ignore[index]
    for spec, count in zip(specs, counts.tolist(), strict=True):
        if count:
            raise InvalidInput(_missing_message(f"column {spec.name!r}", count, len(frame)))


def _missing_message(what: str, count: int, rows: int) -> str:
    return (
        f"{what} has missing values ({count} of {rows}); the model's input example had "
        "none there. Fill them, or log the model with a signature that allows them "
        "(nullable=True)"
    )


def _labels(frame: Any, what: str) -> dict[str, Any]:
    """Return column name -> label (names are labels as text); refuse a name used twice."""
    labels: dict[str, Any] = {}
    for label in frame.columns:
        name = str(label)
        if name in labels:
            raise InvalidInput(f"the {what} has column {name!r} twice; rename one")
        labels[name] = label
    return labels


def _enforce_array(spec: ColumnSpec, data: Any) -> Any:
    import numpy as np
    import pandas as pd

    shape = spec.shape or (None,)
    expected = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
    if isinstance(data, pd.DataFrame):
        if len(shape) != 2 or data.shape[1] != shape[1]:
            raise InvalidInput(
                f"the input is a DataFrame with {data.shape[1]} columns; the model takes an "
                f"array of shape {expected}{_per_row(shape)}"
            )
        columns = {
            label: _convert(data[label], spec, f"column {str(label)!r}") for label in data.columns
        }
        return pd.DataFrame(columns).to_numpy(dtype=_numpy_dtype(spec.dtype))
    array = data if isinstance(data, np.ndarray) else _tabular(data, "input")
    if isinstance(array, pd.DataFrame | pd.Series):
        return _enforce_array(spec, array.to_frame() if isinstance(array, pd.Series) else array)
    wrong = array.ndim != len(shape) or any(
        d is not None and d != given for d, given in zip(shape, array.shape, strict=False)
    )
    if wrong:
        raise InvalidInput(
            f"the input array has shape {array.shape}; the model expects shape "
            f"{expected}{_per_row(shape)} (None is any size)"
        )
    flat = pd.Series(array.reshape(-1), copy=False)
    converted = _convert(flat, spec, "the input array")
    if converted is flat:
        return array
    return converted.to_numpy(dtype=_numpy_dtype(spec.dtype)).reshape(array.shape)


def _per_row(shape: tuple[int | None, ...]) -> str:
    if len(shape) == 2 and shape[1] is not None:
        return f": {shape[1]} features per row"
    return ""


def _numpy_dtype(dtype: str) -> Any:
    import numpy as np

    if _target_kind(dtype) in ("str", "category", "object"):
        return np.dtype(object)
    target = _target_dtype(dtype)
    return getattr(target, "numpy_dtype", target)


def _convert(column: Any, spec: ColumnSpec, what: str, *, check_missing: bool = True) -> Any:
    """Return `column` cast to `spec` (itself when nothing changes), or raise InvalidInput."""
    if check_missing and not spec.nullable:
        missing = column.isna()
        if missing.any():
            raise InvalidInput(_missing_message(what, int(missing.sum()), len(column)))
    target = _target_kind(spec.dtype)
    if target == "object":
        return column
    if target != "category" and str(column.dtype) == spec.dtype:
        return column
    given = _column_kind(column)
    if given != "empty" and given not in _ACCEPTS.get(target, set()):
        raise _refusal(column, given, spec, what)
    if target == "str":
        return column  # text reaches the model as it came (object or pandas "str")
    if target == "category":
        return _categorical(column, given, spec, what)
    if target == "datetime" and given in ("str", "empty"):
        return _datetime(column, spec, what)
    if target == "int" and given == "int":
        _check_range(column, spec, what)
    try:
        return column.astype(_target_dtype(spec.dtype))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"{what} ({_describe(column, given)}) cannot be cast to {spec.dtype} ({exc}); "
            f"{_FIXES.get(target, f'send {spec.dtype} values')}"
        ) from None


def _refusal(column: Any, given: str, spec: ColumnSpec, what: str) -> InvalidInput:
    target = _target_kind(spec.dtype)
    return InvalidInput(
        f"{what} is {_describe(column, given)}, but the model expects {spec.dtype}; "
        f"{_FIXES.get(target, f'send {spec.dtype} values')}"
    )


def _describe(column: Any, given: str) -> str:
    """Return the column's type for a message, with one value as an example."""
    import numpy as np

    dtype = str(column.dtype)
    kind = f"{given} values in an object column" if dtype == "object" else dtype
    first = column.first_valid_index()
    if first is None:
        return kind
    sample = column.loc[first] if column.index.is_unique else column.dropna().iloc[0]
    if isinstance(sample, np.generic):
        sample = sample.item()
    return f"{kind} (e.g. {sample!r})"


def _check_range(column: Any, spec: ColumnSpec, what: str) -> None:
    import numpy as np

    target = np.iinfo(_numpy_dtype(spec.dtype))
    source = getattr(column.dtype, "numpy_dtype", column.dtype)
    if source.kind in "iu":
        info = np.iinfo(source)
        if target.min <= info.min and info.max <= target.max:
            return
    low, high = column.min(), column.max()
    if low is not None and not (target.min <= low and high <= target.max):
        raise InvalidInput(
            f"{what} holds values from {low} to {high}, outside {spec.dtype} "
            f"({target.min} to {target.max}), which the model expects; send values in that range"
        )


def _categorical(column: Any, given: str, spec: ColumnSpec, what: str) -> Any:
    import pandas as pd

    if spec.categories is None:
        if given == "category":
            return column
        raise InvalidInput(
            f"{what} is {_describe(column, given)}, but the model expects a categorical "
            "column whose categories were not recorded; send a pandas categorical column"
        )
    known = list(spec.categories)
    if given == "category" and column.cat.categories.tolist() == known:
        return column
    codes = pd.Index(known).get_indexer(column)
    unknown = (codes == -1) & column.notna().to_numpy()
    if unknown.any():
        seen = pd.unique(column[unknown])[:5].tolist()
        shown = ", ".join(map(repr, known[:10])) + (", ..." if len(known) > 10 else "")
        raise InvalidInput(
            f"{what} has values the model never saw: {', '.join(map(repr, seen))}; "
            f"its categories are {shown}"
        )
    coded = pd.Categorical.from_codes(codes, categories=known)
    return pd.Series(coded, index=column.index, name=column.name, copy=False)


def _datetime(column: Any, spec: ColumnSpec, what: str) -> Any:
    import pandas as pd

    try:
        parsed = pd.to_datetime(column, format="ISO8601")
        return parsed.astype(_target_dtype(spec.dtype))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"{what} is {_describe(column, 'str')}, which does not read as {spec.dtype}; "
            f"{_FIXES['datetime']}"
        ) from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""Request and response bodies: Open Inference Protocol v2 and MLflow /invocations.

Pure functions from parsed bodies to model inputs and from predictions to JSON-able dicts.
Every bad request raises InvalidInput naming the field, what was wrong and what is expected.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.registry.signature import Signature

MAX_ELEMENTS = 10_000_000  # per v2 request: bounds the memory one request can take

# OIP datatype -> numpy dtype of the decoded tensor.
# fmt: off
DATATYPES: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
# fmt: on
_NUMPY_TO_DATATYPE = {v: k for k, v in DATATYPES.items() if k != "BYTES"}
_INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON, _CSV, _PARQUET = "application/json", "text/csv", "application/vnd.apache.parquet"
# A number literal that may overflow float64: an exponent of 100 or more, or 309+ digits.
# Only bodies holding one pay for checking every float as it is parsed.
_HUGE_NUMBER = re.compile(rb"[eE]\+?0*[1-9][0-9]{2}|[0-9]{309}")


class UnsupportedMediaType(InvalidInput):
    """The request's content type, charset or content-type parameter is not one we read."""


@dataclass(frozen=True)
class V2Request:
    """A decoded v2 inference request: its id, parameters, requested outputs and model input."""

    id: str | None
    parameters: dict[str, Any]
    outputs: list[str] | None
    data: Any


# Open Inference Protocol v2


def decode_v2(
    body: object, signature: Signature | None, *, max_elements: int = MAX_ELEMENTS
) -> V2Request:
    """Return the request's model input (a DataFrame or an array) with its id and options."""
    if not isinstance(body, dict):
        raise InvalidInput(
            f'the request body is {_json_type(body)}; send a JSON object with "inputs": '
            '[{"name", "shape", "datatype", "data"}, ...]'
        )
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f'"id" is {_json_type(request_id)}; send text, or leave it out')
    parameters = body.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InvalidInput(f'"parameters" is {_json_type(parameters)}; send a JSON object')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            '"inputs" must be a non-empty list of {"name", "shape", "datatype", "data"}; '
            f"got {_json_type(inputs)}"
        )
    budget = max_elements
    tensors: list[tuple[str, np.ndarray[Any, Any]]] = []
    for i, item in enumerate(inputs):
        name, tensor = _decode_tensor(item, f"inputs[{i}]", budget, max_elements)
        budget -= tensor.size
        tensors.append((name, tensor))
    as_frame = parameters.get("content_type") == "pd"
    if signature is not None and signature.kind == "dataframe":
        data = _frame(tensors, signature.names)
    elif as_frame or (signature is None and len(tensors) > 1):
        data = _frame(tensors, None)
    elif len(tensors) != 1:
        raise InvalidInput(
            f"the request has {len(tensors)} inputs; the model takes one array, "
            "so send exactly one input"
        )
    else:
        data = tensors[0][1]
    return V2Request(request_id, parameters, _requested_outputs(body.get("outputs")), data)


def _decode_tensor(
    item: object, where: str, budget: int, limit: int
) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} is {_json_type(item)}; send an object with name, shape, ...")
    name, shape, datatype, data = (item.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name is {_json_type(name)}; send the input's name as text")
    if not isinstance(shape, list) or not all(_is_size(d) for d in shape):
        raise InvalidInput(
            f"{where}.shape is {_show(shape)}; send a list of sizes >= 0, such as [2, 3]"
        )
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}.datatype is {_show(datatype)}; use one of {', '.join(DATATYPES)}"
        )
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data is {_json_type(data)}; send a (flat or nested) list")
    count = math.prod(shape)
    if count > budget:
        raise InvalidInput(
            f"{where}.shape {shape} holds {count:,} elements, more than the {budget:,} left of "
            f"the request's limit of {limit:,}; split the batch into smaller requests"
        )
    flat = _flatten(data, where, count)
    if len(flat) != count:
        raise InvalidInput(
            f"{where}.data has {len(flat)} elements but {where}.shape {shape} needs {count}; "
            "send as many values as the shape's sizes multiply to (row-major)"
        )
    return name, _coerce(flat, datatype, f"{where}.data").reshape(shape)


def _flatten(data: list[Any], where: str, count: int) -> list[Any]:
    """Return the nested lists' elements in row-major order; stop once past `count`."""
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    # An explicit stack, not recursion: nesting depth is the client's choice.
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > count:
                raise InvalidInput(
                    f"{where}.data has more than the {count} elements {where}.shape needs; "
                    "send as many values as the shape's sizes multiply to (row-major)"
                )
        else:
            stack.pop()
    return out


def _coerce(flat: list[Any], datatype: str, where: str) -> np.ndarray[Any, Any]:
    """Return `flat` as an array of `datatype`; raise InvalidInput at the first bad value."""
    if datatype == "BYTES":
        bad = next((i for i, v in enumerate(flat) if v is not None and not isinstance(v, str)), -1)
        if bad >= 0:
            raise _bad_value(flat, bad, datatype, where, "send text (or null)")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out
    target = np.dtype(DATATYPES[datatype])
    raw = np.asarray(flat) if flat else np.zeros(0, dtype=target)
    if raw.dtype.kind == "O" or (raw.dtype.kind == "f" and target.kind in "iu"):
        # One value by one: floats would round integers past 2**53 (and fractions hide there).
        raw = _object_numbers(flat, target, datatype, where)
    if raw.dtype.kind not in "biuf":
        bad = next(i for i, v in enumerate(flat) if not isinstance(v, bool | int | float))
        raise _bad_value(flat, bad, datatype, where, _fix(target))
    if target.kind == "b":
        wrong = (raw != 0) & (raw != 1)
    elif target.kind in "iu":
        info = np.iinfo(target)
        wrong = (raw < info.min) | (raw > info.max)
    else:
        with np.errstate(over="ignore"):
            cast = raw.astype(target)
        wrong = np.isinf(cast) & np.isfinite(raw)
    if wrong.any():
        raise _bad_value(flat, int(np.argmax(wrong)), datatype, where, _fix(target))
    return raw.astype(target)


def _object_numbers(
    flat: list[Any], target: np.dtype[Any], datatype: str, where: str
) -> np.ndarray[Any, Any]:
    """Return numbers numpy could not type exactly (nulls, floats, huge ints) as `target`."""
    values: list[Any] = []
    for i, v in enumerate(flat):
        number = isinstance(v, bool | int | float)
        if target.kind == "f":
            # null has no JSON number form; it stands for a missing value (NaN) here.
            fits = v is None or (number and (isinstance(v, float) or abs(v) < 2**1023))
            values.append(math.nan if v is None else float(v) if fits else None)
        elif target.kind == "b":
            fits = number and v in (0, 1)
            values.append(v)
        else:  # Python compares floats with ints exactly, so the bounds hold for both
            info = np.iinfo(target)
            fits = number and (not isinstance(v, float) or v.is_integer())
            fits = fits and info.min <= v <= info.max
            values.append(int(v) if fits else None)
        if not fits:
            raise _bad_value(flat, i, datatype, where, _fix(target))
    return np.array(values, dtype=target)


def _fix(target: np.dtype[Any]) -> str:
    if target.kind == "b":
        return "send true/false (or 0/1)"
    if target.kind in "iu":
        info = np.iinfo(target)
        return f"send whole numbers from {info.min} to {info.max}"
    return f"send numbers within {target.name} range (null for a missing value)"


def _bad_value(flat: list[Any], i: int, datatype: str, where: str, fix: str) -> InvalidInput:
    return InvalidInput(f"{where} element {i} is {_show(flat[i])}, not {datatype}; {fix}")


def _frame(tensors: list[tuple[str, np.ndarray[Any, Any]]], names: list[str] | None) -> Any:
    """Return a DataFrame with one column per tensor (or one tensor holding every column)."""
    import pandas as pd

    if names is not None and len(tensors) == 1:
        name, tensor = tensors[0]
        if name not in names and tensor.ndim == 2 and tensor.shape[1] == len(names):
            return pd.DataFrame(tensor, columns=names)
    columns: dict[str, Any] = {}
    for i, (name, given) in enumerate(tensors):
        tensor = given[:, 0] if given.ndim == 2 and given.shape[1] == 1 else given
        if names is not None and name not in names:
            raise InvalidInput(
                f"inputs[{i}].name {name!r} is not a column of the model; it expects columns "
                f"{', '.join(names)} (one input per column, or one input of shape "
                f"[N, {len(names)}])"
            )
        if name in columns:
            raise InvalidInput(f"inputs[{i}].name {name!r} is sent twice; send each column once")
        if tensor.ndim != 1:
            raise InvalidInput(
                f"inputs[{i}].shape is {list(tensor.shape)}; a column is sent as [N] or [N, 1]"
            )
        rows = len(next(iter(columns.values()))) if columns else len(tensor)
        if len(tensor) != rows:
            raise InvalidInput(
                f"inputs[{i}].shape says {len(tensor)} rows but inputs[0] has {rows}; "
                "send every column with the same number of rows"
            )
        columns[name] = tensor
    return pd.DataFrame(columns)


def _requested_outputs(outputs: object) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise InvalidInput(f'"outputs" is {_json_type(outputs)}; send a list of {{"name": ...}}')
    names = []
    for i, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidInput(f'outputs[{i}] needs a "name" (text); got {_show(item)}')
        names.append(name)
    return names


def encode_v2(
    predictions: Any,
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: list[str] | None = None,
) -> dict[str, Any]:
    """Return the v2 response body: one output per DataFrame column or dict key, else "predict"."""
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        named = {str(c): predictions.iloc[:, i] for i, c in enumerate(predictions.columns)}
    elif isinstance(predictions, Mapping):
        named = {str(key): value for key, value in predictions.items()}
    else:
        named = {"predict": predictions}
    tensors = [_encode_tensor(name, value) for name, value in named.items()]
    if outputs is not None:
        chosen = [t for t in tensors if t["name"] in outputs]
        if not chosen:
            raise InvalidInput(
                f"requested outputs {', '.join(map(repr, outputs))} are not among the model's; "
                f"it has {', '.join(repr(t['name']) for t in tensors)}"
            )
        tensors = chosen
    # The id only when the request had one (the protocol says echo it), likewise the version.
    head = {"model_name": model_name, "model_version": model_version, "id": request_id}
    return {
        **{k: v for k, v in head.items() if v is not None},
        "parameters": {},
        "outputs": tensors,
    }


def _encode_tensor(name: str, value: Any) -> dict[str, Any]:
    import pandas as pd

    if isinstance(value, pd.Series | pd.Index) and not isinstance(value.dtype, np.dtype):
        # Extension dtypes (Int64, boolean, category, tz-aware times): the type from its name.
        datatype, shape, data = _datatype_of(str(value.dtype)), [len(value)], _column_json(value)
    else:
        array = np.asarray(value)
        datatype = _NUMPY_TO_DATATYPE.get(array.dtype.name, "BYTES")
        shape, data = list(array.shape), _array_json(array.reshape(-1))
    if datatype == "BYTES":
        data = [v if v is None or isinstance(v, str) else str(v) for v in data]
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _datatype_of(dtype: str) -> str:
    """Return the OIP datatype for a numpy or pandas dtype name ("Int64" -> INT64)."""
    lowered = {"boolean": "bool"}.get(dtype.lower(), dtype.lower())
    return _NUMPY_TO_DATATYPE.get(lowered, "BYTES")


def model_metadata(
    name: str, version: str, signature: Signature | None, flavor: str
) -> dict[str, Any]:
    """Return the OIP model metadata body, with tensors described from the signature."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if signature is not None:
        pairs = ((signature.inputs, inputs, "input"), (signature.outputs, outputs, "predict"))
        for specs, into, default in pairs:
            for spec in specs:
                shape = spec.shape if signature.kind == "ndarray" and spec.shape else (None,)
                tensor = {"name": spec.name or default, "datatype": _datatype_of(spec.dtype)}
                into.append({**tensor, "shape": [-1 if d is None else d for d in shape]})
    return {
        "name": name,
        "versions": [version],
        "platform": f"loopml_{flavor}",
        "inputs": inputs,
        "outputs": outputs,
    }


# MLflow /invocations


def decode_invocations(body: bytes, content_type: str | None, signature: Signature | None) -> Any:
    """Return the model input in an /invocations body: a DataFrame or a numpy array."""
    mime = _media_type(content_type)
    if mime == _CSV:
        return _read_table(body, "CSV", signature)
    if mime == _PARQUET:
        return _read_table(body, "Parquet", signature)
    parsed = parse_json(body)
    keys = set(parsed) - {"params"} if isinstance(parsed, dict) else set()
    if not isinstance(parsed, dict) or len(keys) != 1 or not keys <= set(_INVOCATION_KEYS):
        got = f"fields {sorted(keys)}" if isinstance(parsed, dict) else _json_type(parsed)
        raise InvalidInput(
            f"the body must be a JSON object with exactly one of the input fields "
            f"{', '.join(_INVOCATION_KEYS)} (and optionally params); got {got}. "
            'Example: {"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}}'
        )
    if not isinstance(parsed.get("params", {}), dict):
        raise InvalidInput(f'"params" is {_json_type(parsed["params"])}; send a JSON object')
    (key,) = keys
    return _decode_json_input(key, parsed[key], signature)


def parse_json(body: bytes) -> Any:
    """Return the JSON value in `body`; raise InvalidInput if it is not UTF-8 JSON, is nested
    too deeply to read, or holds a number too long to read or beyond float64 (which would
    silently be infinity)."""
    hook = _finite_float if _HUGE_NUMBER.search(body) else None
    try:
        return json.loads(body.decode("utf-8"), parse_float=hook)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8 ({exc}); send UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("the body's JSON is nested too deeply; send flatter JSON") from None
    except InvalidInput:
        raise
    except ValueError as exc:  # an integer of more digits than Python converts (4300)
        raise InvalidInput(f"the body holds a number too long to read ({exc})") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidInput(
            f"the number {_show(text)} is beyond the range of float64 (about 1.8e308); send "
            "numbers within it"
        )
    return value


def _media_type(content_type: str | None) -> str:
    # A missing header is read as JSON: clients posting bytes often leave it out.
    mime, *params = (content_type or _JSON).split(";")
    mime = mime.strip().lower()
    if mime not in (_JSON, _CSV, _PARQUET):
        raise UnsupportedMediaType(
            f"content type {mime!r} is not supported; send {_JSON}, {_CSV} or {_PARQUET}"
        )
    for param in filter(None, (p.strip() for p in params)):
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise UnsupportedMediaType(
                f"content type parameter {param!r} is not recognized; the only one read is "
                "charset=utf-8"
            )
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"charset {value.strip()!r} is not supported; send the body as UTF-8"
            )
    return mime


def _read_table(body: bytes, kind: str, signature: Signature | None) -> Any:
    import pandas as pd

    try:
        if kind == "Parquet":
            return pd.read_parquet(io.BytesIO(body))
        # Text columns are read as text, so "007" stays "007" rather than becoming 7.
        specs = signature.inputs if signature is not None else ()
        text = {s.name: str for s in specs if s.name and s.dtype in ("str", "category")}
        return pd.read_csv(io.BytesIO(body), dtype=text or None, encoding="utf-8")
    except (ValueError, TypeError, NotImplementedError, OSError) as exc:
        # pandas' ParserError and EmptyDataError and pyarrow's ArrowInvalid are ValueErrors;
        # pyarrow's ArrowTypeError and ArrowNotImplementedError are the other two.
        raise InvalidInput(
            f"the body is not a readable {kind} table ({exc}); {_fix_table(kind)}"
        ) from None


def _fix_table(kind: str) -> str:
    if kind == "CSV":
        return "send UTF-8 CSV with a header row of column names"
    return "send a Parquet file as written by DataFrame.to_parquet"


def _all_float(signature: Signature | None, columns: Any, data: Any) -> bool:
    """Return True if `data` is rows of plain numbers for a signature of float64 columns
    only, so one NumPy array makes the frame (no bools, missing values or text to keep)."""
    if signature is None or signature.kind != "dataframe" or not isinstance(data, list):
        return False
    if columns != signature.names or any(s.dtype != "float64" for s in signature.inputs):
        return False
    width = len(signature.inputs)
    return all(
        isinstance(row, list) and len(row) == width and all(type(v) in _NUMBERS for v in row)
        for row in data
    )


_NUMBERS = (float, int)


def _decode_json_input(key: str, value: Any, signature: Signature | None) -> Any:
    import pandas as pd

    _check_json_input(key, value)
    rows = isinstance(value, list) and all(isinstance(row, dict) for row in value)
    try:
        if key == "dataframe_split":
            columns = value.get("columns")
            if columns is None and signature is not None and signature.kind == "dataframe":
                columns = signature.names
            if _all_float(signature, columns, value["data"]):  # 4x faster than row by row
                array = np.asarray(value["data"], dtype=np.float64)
                return pd.DataFrame(array, columns=columns, index=value.get("index"))
            return pd.DataFrame(value["data"], columns=columns, index=value.get("index"))
        if isinstance(value, dict):  # "inputs" as columns: name -> values
            return pd.DataFrame(value)
        if key == "dataframe_records" or (rows and value):  # "instances" may be records too
            return pd.DataFrame(value)
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{key} cannot be read as a table or array: {exc}") from None
    if array.dtype.kind == "O" and any(isinstance(v, dict | list) for v in array.reshape(-1)):
        raise InvalidInput(f"{key} mixes rows of different kinds; send rows of plain values")
    return array


def _check_json_input(key: str, value: Any) -> None:
    """Refuse an /invocations input whose JSON shape does not fit its key."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InvalidInput(
                f'dataframe_split is {_json_type(value)} without a "data" list; send '
                '{"columns": [...], "data": [[...], ...]} (pandas orient="split")'
            )
        for field in ("columns", "index"):
            labels = value.get(field)
            # Labels must be plain values: pandas takes a dict as a label, then cannot use it.
            if labels is not None and not _scalars(labels):
                raise InvalidInput(f"dataframe_split.{field} is {_show(labels)}; send a list")
        index, rows = value.get("index"), len(value["data"])
        # pandas would repeat a single row to fill a longer index: more predictions than rows.
        if index is not None and len(index) != rows:
            raise InvalidInput(
                f"dataframe_split.index has {len(index)} labels but data has {rows} rows; send "
                "one label per row, or leave index out"
            )
    elif key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
            raise InvalidInput(
                f"dataframe_records must be a list of objects (one per row); "
                f"got {_json_type(value)}"
            )
    elif not isinstance(value, list) and not (key == "inputs" and isinstance(value, dict)):
        raise InvalidInput(f"{key} is {_json_type(value)}; send a list of rows")


# Responses


def encode_invocations(predictions: Any) -> dict[str, Any]:
    """Return the /invocations response body: {"predictions": <JSON-able predictions>}."""
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        # Column by column, then zipped: one vectorized pass per column, not per cell.
        names = [str(label) for label in predictions.columns]
        columns = [_column_json(predictions.iloc[:, i]) for i in range(len(names))]
        out: Any = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        if not names:
            out = [{} for _ in range(len(predictions))]
    elif isinstance(predictions, pd.Series | pd.Index):
        out = _column_json(predictions)
    elif isinstance(predictions, np.ndarray):
        out = _array_json(predictions)
    else:
        out = _jsonable(predictions)
    return {"predictions": out}


def _column_json(column: Any) -> list[Any]:
    """Return a Series' (or Index's) values as a list of JSON values."""
    if isinstance(column.dtype, np.dtype):
        values: list[Any] = _array_json(column.to_numpy())
        return values
    return [_jsonable(v) for v in column.tolist()]


def _array_json(array: np.ndarray[Any, Any]) -> Any:
    """Return an array as nested lists of JSON values (NaN, inf and NaT as null)."""
    kind = array.dtype.kind
    if kind in "biu":
        return array.tolist()
    if kind == "f":
        finite = np.isfinite(array)
        if finite.all():
            return array.tolist()
        values = array.astype(object)
        values[~finite] = None
        return values.tolist()
    if kind == "M":  # written as pandas writes a Timestamp, whatever the unit
        import pandas as pd

        stamps = pd.DatetimeIndex(array.reshape(-1))
        text = [None if t is pd.NaT else t.isoformat() for t in stamps]
        return np.array(text, dtype=object).reshape(array.shape).tolist()
    if kind == "m":  # as timedelta objects, which _jsonable writes as "H:MM:SS"
        return _jsonable(array.astype("timedelta64[us]").tolist())
    return _jsonable(array.tolist())


def _jsonable(value: Any) -> Any:
    """Return `value` with numpy scalars, NaN, times and containers made JSON-able."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _array_json(value)
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, np.generic) and value.dtype.kind not in "Mm":
        value = value.item()  # datetime64[ns].item() would be an int of nanoseconds
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if pd.api.types.is_scalar(value) and pd.isna(value):  # NA, NaT, datetime64("NaT")
        return None
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _scalars(value: object) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

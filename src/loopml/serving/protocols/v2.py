"""Open Inference Protocol v2 (KServe v2): inference requests, responses and model metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.registry.signature import Signature
from loopml.serving.protocols import array_json, column_json, json_type, show

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


@dataclass(frozen=True)
class V2Request:
    """A decoded v2 inference request: its id, parameters, requested outputs and model input."""

    id: str | None
    parameters: dict[str, Any]
    outputs: list[str] | None
    data: Any


def decode(
    body: object, signature: Signature | None, *, max_elements: int = MAX_ELEMENTS
) -> V2Request:
    """Return the request's model input (a DataFrame or an array) with its id and options."""
    if not isinstance(body, dict):
        raise InvalidInput(
            f'the request body is {json_type(body)}; send a JSON object with "inputs": '
            '[{"name", "shape", "datatype", "data"}, ...]'
        )
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f'"id" is {json_type(request_id)}; send text, or leave it out')
    parameters = body.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InvalidInput(f'"parameters" is {json_type(parameters)}; send a JSON object')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            '"inputs" must be a non-empty list of {"name", "shape", "datatype", "data"}; '
            f"got {json_type(inputs)}"
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
        raise InvalidInput(f"{where} is {json_type(item)}; send an object with name, shape, ...")
    name, shape, datatype, data = (item.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name is {json_type(name)}; send the input's name as text")
    if not isinstance(shape, list) or not all(_is_size(d) for d in shape):
        raise InvalidInput(
            f"{where}.shape is {show(shape)}; send a list of sizes >= 0, such as [2, 3]"
        )
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}.datatype is {show(datatype)}; use one of {', '.join(DATATYPES)}"
        )
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data is {json_type(data)}; send a (flat or nested) list")
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
    return InvalidInput(f"{where} element {i} is {show(flat[i])}, not {datatype}; {fix}")


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
        raise InvalidInput(f'"outputs" is {json_type(outputs)}; send a list of {{"name": ...}}')
    names = []
    for i, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidInput(f'outputs[{i}] needs a "name" (text); got {show(item)}')
        names.append(name)
    return names


def encode(
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
        datatype, shape, data = _datatype_of(str(value.dtype)), [len(value)], column_json(value)
    else:
        array = np.asarray(value)
        datatype = _NUMPY_TO_DATATYPE.get(array.dtype.name, "BYTES")
        shape, data = list(array.shape), array_json(array.reshape(-1))
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


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

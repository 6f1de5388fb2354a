"""ONNX models run by onnxruntime, and the export of scikit-learn models to ONNX.

onnx, onnxruntime and skl2onnx are imported only when a model is saved, loaded or exported:
`pip install 'loopml[onnx]'`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput
from loopml.registry.flavors.base import first_line, pinned
from loopml.registry.signature import ColumnSpec, Signature, enforce

MODEL_FILE = "model.onnx"
TOLERANCE = 1e-4
# The ONNX tensor types a feed can hold -> the numpy dtype of the array fed to them.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint64)": "uint64",
    "tensor(uint32)": "uint32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxFlavor:
    """An `onnx.ModelProto` (or its bytes) as `model.onnx`; predictions from onnxruntime."""

    name = "onnx"

    def handles(self, model: object) -> bool:
        if isinstance(model, bytes | bytearray):
            return _parse(bytes(model)) is not None
        onnx = sys.modules.get("onnx")  # no ModelProto exists before onnx is imported
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        if isinstance(model, bytes | bytearray):
            data = bytes(model)
            proto = _parse(data)
            if proto is None:
                raise InvalidInput(
                    f"{len(data)} bytes given as an ONNX model are not one (onnx.checker "
                    "refuses them); pass an onnx.ModelProto or the bytes of a .onnx file"
                )
        else:
            _check(model)
            proto, data = model, model.SerializeToString()
        (path / MODEL_FILE).write_bytes(data)
        return {"file": MODEL_FILE, **describe(proto)}

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        return session(path / str(meta.get("file", MODEL_FILE)))

    def predict(self, model: Any, data: Any) -> Any:
        if not callable(getattr(model, "run", None)):
            # The model as logged (a ModelProto or bytes), predicting on its input example.
            model = session(_bytes(model))
        first = model.get_outputs()[0].name
        return _array(model.run([first], feed(model, data))[0])

    def requirements(self) -> list[str]:
        return pinned("onnxruntime")


def session(source: Path | bytes) -> Any:
    """Return an onnxruntime InferenceSession on the CPU for a .onnx file or its bytes."""
    runtime = _module("onnxruntime", "loading an ONNX model")
    model = str(source) if isinstance(source, Path) else source
    try:
        return runtime.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes, not exported by name
        raise InvalidInput(
            f"onnxruntime {runtime.__version__} cannot load the ONNX model ({first_line(exc)}); "
            "upgrade onnxruntime, or export the model with an opset it supports"
        ) from exc


def feed(model: Any, data: Any) -> dict[str, Any]:
    """Return the inputs of the session `model` for `data`, each of its graph input's dtype.

    A graph with one input takes the whole table or array; a graph with one input per column
    (what skl2onnx makes of a DataFrame with mixed types) takes each column by its name.
    """
    import numpy as np
    import pandas as pd

    inputs = model.get_inputs()
    if isinstance(data, Mapping) and all(node.name in data for node in inputs):
        return {node.name: _tensor(data[node.name], node) for node in inputs}
    if len(inputs) == 1:
        value = data.to_numpy() if isinstance(data, pd.DataFrame | pd.Series) else data
        return {inputs[0].name: _tensor(value, inputs[0])}
    names = [node.name for node in inputs]
    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(
            f"this ONNX model takes {len(names)} inputs ({', '.join(names)}); pass a DataFrame "
            "with those columns, or a dict of arrays by those names"
        )
    missing = [name for name in names if name not in data.columns]
    if missing:
        raise InvalidInput(
            f"the ONNX model's input {missing[0]!r} is not a column of the data; it takes "
            f"columns {', '.join(names)}"
        )
    return {node.name: _tensor(np.asarray(data[node.name]), node) for node in inputs}


def describe(proto: Any) -> dict[str, Any]:
    """Return what a package records of an ONNX model: its opset, IR version and producer."""
    opsets = {entry.domain or "ai.onnx": int(entry.version) for entry in proto.opset_import}
    producer = f"{proto.producer_name} {proto.producer_version}".strip()
    return {
        "opset": opsets.get("ai.onnx"),
        "ir_version": int(proto.ir_version),
        "producer": producer,
    }


def export_sklearn(
    model: Any, example: Any, signature: Signature, *, tolerance: float = TOLERANCE
) -> tuple[bytes, dict[str, Any]]:
    """Return a scikit-learn model converted to ONNX, checked on `example`, and its metadata.

    The ONNX model must give the same labels as `model` on the example (a classifier), and
    probabilities or values within `tolerance` * (1 + |value|); otherwise InvalidInput says
    by how much they differ.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance >= 0:
        raise InvalidInput(f"onnx_tolerance must be a number >= 0, not {tolerance!r}")
    skl2onnx = _module("skl2onnx", "onnx=True")
    typed = enforce(signature, example)
    proto = _convert(skl2onnx, model, signature)
    data = proto.SerializeToString()
    difference = _agreement(model, session(data), typed, float(tolerance))
    return data, {
        "file": MODEL_FILE,
        **describe(proto),
        "tolerance": float(tolerance),
        "max_abs_diff": difference,
    }


def _convert(skl2onnx: Any, model: Any, signature: Signature) -> Any:
    """Return `model` as an onnx.ModelProto, trying each way its inputs can be declared."""
    # Probabilities as one tensor, not a list of {class: probability} dicts.
    options = {"zipmap": False} if _is_classifier(model) else None
    kind = type(model)
    failures = []
    for initial_types in _initial_types(signature):
        try:
            # A graph name of its own: skl2onnx's default is random, so one model's export
            # would have another digest each time and be stored again.
            return skl2onnx.convert_sklearn(
                model, initial_types=initial_types, options=options, name=kind.__qualname__
            )
        except Exception as exc:  # noqa: BLE001 - skl2onnx raises RuntimeError, NameError, ...
            failures.append(exc)  # the next way of declaring the inputs may convert
    raise InvalidInput(
        f"skl2onnx cannot convert this {kind.__module__}.{kind.__qualname__} to ONNX "
        f"({first_line(failures[0])}); log it without onnx=True"
    ) from failures[0]


def _initial_types(signature: Signature) -> list[list[tuple[str, Any]]]:
    """Return the ways to declare the ONNX inputs of a model with `signature`, best first.

    An array is one input. A table of numbers is one float input (what a bare estimator
    takes) or one input per column (what a ColumnTransformer that picks columns by name
    needs); a table holding text or categories is one input per column.
    """
    data_types = _module("skl2onnx.common.data_types", "onnx=True")
    if signature.kind == "ndarray":
        spec = signature.inputs[0]
        shape = list(spec.shape or (None,))
        return [[("input", _tensor_type(data_types, spec, [None, *shape[1:]]))]]
    per_column = [
        (spec.name or "", _tensor_type(data_types, spec, [None, 1])) for spec in signature.inputs
    ]
    if all(_kind(spec) in ("float", "int", "bool") for spec in signature.inputs):
        whole = [("input", data_types.FloatTensorType([None, len(signature.inputs)]))]
        return [whole, per_column]
    return [per_column]


def _tensor_type(data_types: Any, spec: ColumnSpec, shape: list[int | None]) -> Any:
    kind = _kind(spec)
    # Floats go in as float32: the type every skl2onnx converter (trees included) takes.
    types = {
        "float": data_types.FloatTensorType,
        "int": data_types.Int64TensorType,
        "bool": data_types.BooleanTensorType,
        "str": data_types.StringTensorType,
        "category": data_types.StringTensorType,
    }
    if kind not in types:
        where = f"column {spec.name!r}" if spec.name is not None else "the input array"
        raise InvalidInput(
            f"{where} holds {spec.dtype} values, which ONNX models cannot take; convert it to "
            "numbers or text before the model, or log it without onnx=True"
        )
    return types[kind](shape)


def _kind(spec: ColumnSpec) -> str:
    import numpy as np

    if spec.dtype in ("str", "category"):
        return spec.dtype
    if spec.dtype == "boolean":  # pandas' nullable bool, which numpy does not name
        return "bool"
    try:
        code = np.dtype(spec.dtype.lower()).kind
    except TypeError:
        return "other"
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(code, "other")


def _agreement(model: Any, runtime: Any, example: Any, tolerance: float) -> float:
    """Return the largest difference between `model`'s and the ONNX model's outputs on
    `example`; InvalidInput if labels differ or a value differs by more than `tolerance`."""
    import numpy as np

    outputs = runtime.run(None, feed(runtime, example))
    if not _is_classifier(model):
        return _difference(model.predict(example), outputs[0], "predictions", tolerance)
    expected, got = np.asarray(model.predict(example)).ravel(), _array(outputs[0]).ravel()
    _check_size(expected, got, "labels")
    wrong = np.flatnonzero(got != expected)
    if len(wrong):
        row = int(wrong[0])
        raise InvalidInput(
            f"the ONNX export predicts other labels than the model on {len(wrong)} of "
            f"{len(expected)} input example rows (row {row}: {got[row]!r} instead of "
            f"{expected[row]!r}); nothing was stored: log it without onnx=True"
        )
    if len(outputs) < 2 or not callable(getattr(model, "predict_proba", None)):
        return 0.0
    return _difference(model.predict_proba(example), outputs[1], "probabilities", tolerance)


def _difference(expected: Any, got: Any, what: str, tolerance: float) -> float:
    """Return the largest absolute difference of `got` from `expected`; InvalidInput if one
    exceeds `tolerance` * (1 + |expected|): absolute near zero, relative for large values."""
    import numpy as np

    expected = np.asarray(expected, dtype="float64").ravel()
    got = np.asarray(got, dtype="float64").ravel()
    _check_size(expected, got, what)
    difference = np.abs(got - expected)
    worst = float(difference.max()) if difference.size else 0.0
    if np.isnan(worst) or np.any(difference > tolerance * (1 + np.abs(expected))):
        raise InvalidInput(
            f"the ONNX export's {what} differ from the model's by up to {worst:.3g} on the input "
            f"example, more than onnx_tolerance={tolerance:g}; nothing was stored: log it "
            "without onnx=True, or pass a larger onnx_tolerance"
        )
    return worst


def _check_size(expected: Any, got: Any, what: str) -> None:
    if got.size != expected.size:
        raise InvalidInput(
            f"the ONNX export gives {got.size} {what} where the model gives {expected.size} on "
            "the input example; nothing was stored: log it without onnx=True"
        )


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    try:
        return bool(is_classifier(model))
    except AttributeError:  # scikit-learn's API without its estimator tags: not a classifier
        return False


def _tensor(value: Any, node: Any) -> Any:
    """Return `value` as an array of the dtype and rank the graph input `node` takes."""
    import numpy as np

    dtype = _DTYPES.get(node.type)
    if dtype is None:
        raise InvalidInput(
            f"the ONNX model's input {node.name!r} is a {node.type}, which LoopML cannot feed; "
            f"it feeds {', '.join(_DTYPES)}"
        )
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"the ONNX model's input {node.name!r} takes {node.type} values; the data given "
            f"for it cannot be converted ({exc})"
        ) from exc
    rank = len(node.shape) if isinstance(node.shape, list) else None
    if rank == 2 and array.ndim == 1:
        return array.reshape(-1, 1)  # one column, fed as the [rows, 1] input skl2onnx declares
    if rank == 1 and array.ndim == 2 and array.shape[1] == 1:
        return array.ravel()
    return array


def _array(value: Any) -> Any:
    import numpy as np

    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _bytes(model: Any) -> bytes:
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    data: bytes = model.SerializeToString()
    return data


def _parse(data: bytes) -> Any:
    """Return `data` as an onnx.ModelProto if it is a valid ONNX model, else None."""
    onnx = _module("onnx", "reading an ONNX model")
    decode_error = import_module("google.protobuf.message").DecodeError  # onnx depends on it
    try:
        proto = onnx.load_model_from_string(data)
        onnx.checker.check_model(proto)
    except (decode_error, onnx.checker.ValidationError):
        return None  # not an ONNX model: the caller says what it expected instead
    return proto


def _check(proto: Any) -> None:
    onnx = _module("onnx", "saving an ONNX model")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidInput(
            f"the ONNX model is not valid ({first_line(exc)}); fix the graph, or check it with "
            "onnx.checker.check_model before logging it"
        ) from exc


def _module(name: str, purpose: str) -> Any:
    """Return the module `name`, or InvalidInput saying how to install it."""
    try:
        return import_module(name)
    except ImportError:
        raise InvalidInput(
            f"{purpose} needs {name}, which is not installed: pip install 'loopml[onnx]'"
        ) from None

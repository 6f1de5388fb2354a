"""Materializers: how a step output becomes bytes in the blob store, and back.

Built-ins, tried in order: `none` (an optional output that is None: no blob), `json` (values
that survive a JSON round trip unchanged), `parquet` (pandas DataFrames), `npy` (numpy arrays
without Python objects) and `pickle` (anything else that pickles, such as scikit-learn models;
blobs are verified against their digest before they are unpickled). A step's own materializers
(`@step(materializers=[...])`) are tried before the built-ins.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from loopml.errors import InvalidInput, NotFound


@runtime_checkable
class Materializer(Protocol):
    """Turns values it `handles` into bytes (`dump`) and back (`load`); `name` is stored."""

    name: str

    def handles(self, value: object) -> bool: ...

    def dump(self, value: Any) -> bytes: ...

    def load(self, data: bytes) -> Any: ...


class NoneMaterializer:
    """An optional output that is None: stored as no blob at all."""

    name = "none"

    def handles(self, value: object) -> bool:
        return value is None

    def dump(self, value: Any) -> bytes:
        return b""

    def load(self, data: bytes) -> Any:
        return None


class JsonMaterializer:
    """Numbers, strings, booleans, lists and string-keyed dicts that JSON keeps exactly."""

    name = "json"
    _MAX_DEPTH = 32

    def handles(self, value: object) -> bool:
        return self._plain(value, 0)

    def _plain(self, value: object, depth: int) -> bool:
        if depth > self._MAX_DEPTH:
            return False
        kind = type(value)
        if value is None or kind in (str, bool, int):
            return True
        if kind is float:
            return math.isfinite(value)  # type: ignore[arg-type]
        if kind is list:
            return all(self._plain(v, depth + 1) for v in value)  # type: ignore[attr-defined]
        if kind is dict:
            return all(
                type(k) is str and self._plain(v, depth + 1)
                for k, v in value.items()  # type: ignore[attr-defined]
            )
        return False

    def dump(self, value: Any) -> bytes:
        # Keys keep their order: a dict read back iterates as the step built it.
        return json.dumps(value, separators=(",", ":")).encode()

    def load(self, data: bytes) -> Any:
        return json.loads(data)


class ParquetMaterializer:
    """pandas DataFrames with string column names, as Parquet (index kept).

    A column of Python objects is left to pickle unless Parquet gives its values back as
    they were (strings, bytes, booleans, decimals, dates): lists would come back as numpy
    arrays, dicts with every key of every row, and integers with None as floats.
    """

    name = "parquet"
    _EXACT_OBJECTS = frozenset({"string", "bytes", "boolean", "decimal", "date", "empty"})

    def handles(self, value: object) -> bool:
        module = type(value).__module__
        if not module.startswith("pandas") or type(value).__name__ != "DataFrame":
            return False
        frame: Any = value
        if not all(isinstance(c, str) for c in frame.columns):
            return False
        from pandas.api.types import infer_dtype

        return all(
            infer_dtype(frame.iloc[:, i], skipna=True) in self._EXACT_OBJECTS
            for i, dtype in enumerate(frame.dtypes)
            if str(dtype) == "object"
        )

    def dump(self, value: Any) -> bytes:
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow")
        return buffer.getvalue()

    def load(self, data: bytes) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


class NpyMaterializer:
    """numpy arrays of numbers, strings or booleans (not Python objects), as `.npy`."""

    name = "npy"

    def handles(self, value: object) -> bool:
        if type(value).__module__ != "numpy" or type(value).__name__ != "ndarray":
            return False
        return not value.dtype.hasobject  # type: ignore[attr-defined]

    def dump(self, value: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def load(self, data: bytes) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class PickleMaterializer:
    """Anything else that pickles; loaded only from a blob whose digest was verified."""

    name = "pickle"

    def handles(self, value: object) -> bool:
        return True

    def dump(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=5)

    def load(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 - the blob's digest was verified on read


BUILTINS: tuple[Materializer, ...] = (
    NoneMaterializer(),
    JsonMaterializer(),
    ParquetMaterializer(),
    NpyMaterializer(),
    PickleMaterializer(),
)


def dump(value: object, custom: Sequence[Materializer] = ()) -> tuple[str, bytes]:
    """Return (materializer name, bytes) for `value`, the step's own materializers first.

    A built-in that fails on a value it claimed (a DataFrame with mixed-type columns for
    Parquet) hands it to the next one, so pickle is the last resort; InvalidInput if nothing
    can store it.
    """
    for materializer in custom:
        if materializer.handles(value):
            try:
                return materializer.name, materializer.dump(value)
            except Exception as exc:
                raise InvalidInput(
                    f"materializer {materializer.name!r} could not store a "
                    f"{type(value).__name__}: {exc}"
                ) from exc
    error: Exception | None = None
    for materializer in BUILTINS:
        if materializer.handles(value):
            try:
                return materializer.name, materializer.dump(value)
            except Exception as exc:  # noqa: BLE001 - try the next built-in, up to pickle
                error = exc
    raise InvalidInput(
        f"a {type(value).__name__} cannot be stored ({error}); return a value that pickles, "
        "or give the step a materializer for it: @step(materializers=[...])"
    ) from error


def by_name(name: str, custom: Sequence[Materializer] = ()) -> Materializer:
    """Return the materializer called `name`, the step's own before the built-ins."""
    for materializer in (*custom, *BUILTINS):
        if materializer.name == name:
            return materializer
    raise NotFound(
        f"no materializer named {name!r}; the step that stored it had its own: pass it in "
        "@step(materializers=[...]) again"
    )

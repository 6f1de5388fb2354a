"""The served protocols' request and response bodies: v2, invocations, and what both share.

Shared here: reading a JSON body, naming a bad value in an error, and writing predictions as
JSON values. Pure functions from parsed bodies to model inputs and from predictions to
JSON-able dicts. Every bad request raises InvalidInput naming the field, what was wrong and
what is expected.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from loopml.errors import InvalidInput

# A number literal that may overflow float64: an exponent of 100 or more, or 309+ digits.
# Only bodies holding one pay for checking every float as it is parsed.
_HUGE_NUMBER = re.compile(rb"[eE]\+?0*[1-9][0-9]{2}|[0-9]{309}")


class UnsupportedMediaType(InvalidInput):
    """The request's content type, charset or content-type parameter is not one we read."""


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
            f"the number {show(text)} is beyond the range of float64 (about 1.8e308); send "
            "numbers within it"
        )
    return value


def json_type(value: object) -> str:
    """Return what a JSON value is, as an error message names it ("a list", "null")."""
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def show(value: object) -> str:
    """Return a value's repr, cut to 60 characters, for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Predictions as JSON values


def column_json(column: Any) -> list[Any]:
    """Return a Series' (or Index's) values as a list of JSON values."""
    if isinstance(column.dtype, np.dtype):
        values: list[Any] = array_json(column.to_numpy())
        return values
    return [jsonable(v) for v in column.tolist()]


def array_json(array: np.ndarray[Any, Any]) -> Any:
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
    if kind == "m":  # as timedelta objects, which jsonable writes as "H:MM:SS"
        return jsonable(array.astype("timedelta64[us]").tolist())
    return jsonable(array.tolist())


def jsonable(value: Any) -> Any:
    """Return `value` with numpy scalars, NaN, times and containers made JSON-able."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return array_json(value)
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

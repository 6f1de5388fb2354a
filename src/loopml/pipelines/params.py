"""Pipeline params: checked against the pipeline function's hints, parsed from `-p k=v` text."""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.pipelines.graph import Pipeline

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def bind_params(
    pipeline: Pipeline, params: Mapping[str, Any], *, from_text: bool = False
) -> dict[str, Any]:
    """Return every param of `pipeline` by name, defaults filled in, each checked by type.

    With `from_text`, values are strings from the command line, parsed by the param's hint
    (or its default's type).
    """
    if not isinstance(params, Mapping):
        raise InvalidInput(f"params must be a mapping of names to values, not {params!r}")
    accepted = pipeline.signature.parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        known = ", ".join(accepted) or "none"
        raise InvalidInput(
            f"pipeline {pipeline.name!r} has no param {unknown[0]!r}; its params are {known}"
        )
    bound: dict[str, Any] = {}
    for name, parameter in accepted.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise InvalidInput(
                f"pipeline {pipeline.name!r} takes *args or **kwargs; name each param instead"
            )
        hint = pipeline.hints.get(name)
        if hint is None and parameter.default not in (inspect.Parameter.empty, None):
            hint = type(parameter.default)
        if name in params:
            value = params[name]
            bound[name] = (
                parse(pipeline.name, name, value, hint)
                if from_text
                else check(pipeline.name, name, value, hint)
            )
        elif parameter.default is inspect.Parameter.empty:
            raise InvalidInput(
                f"pipeline {pipeline.name!r} needs param {name!r}; pass it: -p {name}=VALUE"
            )
        else:
            bound[name] = parameter.default
    return bound


def check(pipeline: str, name: str, value: Any, hint: Any) -> Any:
    """Return `value` if it fits `hint` (an int is a fine float), else raise InvalidInput."""
    if hint is None or hint is Any or _fits(value, hint):
        members = _members(hint)
        # 1 for a float param is 1.0, as `-p lr=1` parses, so both give one cache key
        return (
            float(value)
            if type(value) is int and float in members and int not in members
            else value
        )
    raise InvalidInput(
        f"pipeline {pipeline!r}: param {name!r} must be {_describe(hint)}, "
        f"not {type(value).__name__} {value!r}"
    )


def parse(pipeline: str, name: str, text: Any, hint: Any) -> Any:
    """Return the command-line text `text` as a value of `hint`."""
    if not isinstance(text, str):
        return check(pipeline, name, text, hint)
    for kind in _members(hint):
        value = _parse_one(text, kind)
        if value is not _NO:
            return value
    if hint is None or hint is Any:
        value = _parse_one(text, object)
        return text if value is _NO else value
    raise InvalidInput(
        f"pipeline {pipeline!r}: param {name!r} must be {_describe(hint)}, not {text!r}"
    )


_NO = object()


def _parse_one(text: str, kind: Any) -> Any:  # noqa: PLR0911 - one return per type
    if kind is type(None):
        return None if text.lower() in ("none", "null") else _NO
    if kind is bool:
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _NO
    if kind is int:
        try:
            return int(text)
        except ValueError:
            return _NO
    if kind is float:
        try:
            return float(text)
        except ValueError:
            return _NO
    if kind is str or _is_dataset_type(kind):
        return text
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return kind(text)
    if typing.get_origin(kind) is typing.Literal:
        for choice in typing.get_args(kind):
            value = _parse_one(text, type(choice))
            if value is not _NO and value == choice and type(value) is type(choice):
                return value
        return _NO
    try:  # lists, dicts and untyped params are read as JSON
        value = json.loads(text)
    except ValueError:
        return _NO
    return value if kind is object or _fits(value, kind) else _NO


def _members(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(hint)
        # None before str, so "none" means None for `str | None`
        return tuple(sorted(members, key=lambda m: m is str))
    return () if hint is None or hint is Any else (hint,)


def _fits(value: Any, hint: Any) -> bool:  # noqa: PLR0911 - one return per kind of hint
    if hint is Any or hint is object:
        return True
    if _is_dataset_type(hint):  # a ref like "churn@v2", resolved when the graph is built
        return isinstance(value, str) or hasattr(value, "manifest_digest")
    if hint is None or hint is type(None):
        return value is None
    if hint is float:
        return type(value) in (int, float)
    if hint is int:
        return type(value) is int
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, member) for member in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is None:
        return isinstance(hint, type) and isinstance(value, hint)
    if not isinstance(origin, type) or not isinstance(value, origin):
        return False
    return _members_fit(value, typing.get_args(hint))


def _members_fit(value: Any, args: tuple[Any, ...]) -> bool:
    """Return True if the items of a list, set, tuple or dict fit the hint's arguments."""
    if not args:
        return True
    if isinstance(value, dict):
        return len(args) == 2 and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    if isinstance(value, tuple) and not (len(args) == 2 and args[1] is Ellipsis):
        return len(args) == len(value) and all(map(_fits, value, args))
    if isinstance(value, list | tuple | set | frozenset):
        return all(_fits(v, args[0]) for v in value)
    return True


def _is_dataset_type(hint: Any) -> bool:
    return getattr(hint, "__name__", "") == "DatasetVersion"


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return "None" if hint is type(None) else hint.__name__
    return str(hint).replace("typing.", "")


def param_text(value: Any) -> str:
    """Return a param as the text a run logs (strings and paths as they are, the rest JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "manifest_digest") and isinstance(getattr(value, "ref", None), str):
        return str(value.ref)
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def exact_text(params: Mapping[str, Any]) -> str | None:
    """Return `params` as JSON that `from_exact_text` turns back into equal values, or None.

    Logged params are text, which loses types (a tuple, a set, a Path, the string "none" for
    `str | None`); resume needs the values themselves.
    """
    try:
        # Pairs, not an object: every JSON object in it is an encoded value for `_decode`.
        return json.dumps([[k, _encode(v)] for k, v in params.items()])
    except (TypeError, ValueError):  # a param JSON cannot hold: resume parses the text
        return None


def from_exact_text(text: str) -> dict[str, Any]:
    """Return the params `exact_text` wrote."""
    return dict(json.loads(text, object_hook=_decode))


def _encode(value: Any) -> Any:  # noqa: PLR0911 - one return per type
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is list:
        return [_encode(v) for v in value]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [_encode(v) for v in value]}
    if kind is dict:
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, PurePath):
        return {"path": str(value)}
    if hasattr(value, "manifest_digest") and isinstance(getattr(value, "ref", None), str):
        return value.ref  # a dataset version: its exact ref
    raise TypeError(f"{kind.__name__} is not JSON")


def _decode(data: dict[str, Any]) -> Any:
    ((kind, inner),) = data.items()
    if kind == "float":
        return float(inner)
    if kind == "path":
        return Path(inner)
    if kind == "dict":
        return dict(inner)  # keys and values were decoded first, tuples included
    return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](inner)

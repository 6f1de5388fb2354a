"""Executors: where step attempts run. Built-ins are plugins as data, resolved on first use.

A third party adds one through the `loopml.executors` entry point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from loopml.core.plugins import resolve
from loopml.errors import InvalidInput
from loopml.pipelines.executors.base import Executor

BUILTIN: dict[str, str] = {
    "local": "loopml.pipelines.executors.local:LocalExecutor",
    "ray": "loopml.pipelines.executors.ray:RayExecutor",
}


def make_executor(name: str, **options: Any) -> Executor:
    """Return a new executor of kind `name` ("local", "ray", or a plugin's name)."""
    if not isinstance(name, str):
        raise InvalidInput(f"executor must be a name like 'local' or 'ray', not {name!r}")
    reference = BUILTIN.get(name)
    if reference is None:
        for point in entry_points(group="loopml.executors"):
            if point.name == name:
                reference = point.value
    if reference is None:
        known = ", ".join(sorted(BUILTIN))
        raise InvalidInput(f"unknown executor {name!r}; use one of {known}")
    executor: Executor = resolve(reference)(**options)
    return executor


__all__ = ["Executor", "make_executor"]

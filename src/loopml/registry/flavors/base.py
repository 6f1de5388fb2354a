"""The flavor contract (save, load, predict a kind of model) and the pickle format it shares."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from loopml.pipelines.fingerprint import is_local

PICKLE_FILE = "model.pkl"


@runtime_checkable
class Flavor(Protocol):
    """Saves models it `handles` as files in a folder, loads them back, and predicts."""

    name: str

    def handles(self, model: object) -> bool: ...

    def save(self, model: Any, path: Path) -> dict[str, Any]: ...

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any: ...

    def predict(self, model: Any, data: Any) -> Any: ...

    def requirements(self) -> list[str]: ...


def pinned(*distributions: str) -> list[str]:
    """Return `dist==version` for each of `distributions` that is installed."""
    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def class_path(obj: object) -> str:
    """Return `module.QualName` of the class of `obj`."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def save_pickle(model: Any, path: Path) -> Path:
    """Write `model` to `path/model.pkl` (pickle protocol 5 via cloudpickle); return the file.

    Classes from `__main__`, a notebook or the user's own source tree travel by value, so
    loading needs no import of the user's modules; installed libraries travel by reference.
    """
    import cloudpickle

    target = path / PICKLE_FILE
    with user_code_by_value(), target.open("wb") as f:
        cloudpickle.dump(model, f, protocol=5)
    return target


def load_pickle(path: Path) -> Any:
    """Return the model in `path/model.pkl`; the caller has verified the file's digest."""
    with (path / PICKLE_FILE).open("rb") as f:
        return pickle.load(f)  # noqa: S301 - verified against the package's digest first


@contextmanager
def user_code_by_value() -> Iterator[None]:
    """Pickle the user's own packages by value while inside: the model's class, and a custom
    transformer from a local module deep inside a Pipeline, load where they are not importable.
    """
    import cloudpickle

    tops = {name.partition(".")[0] for name in list(sys.modules)}
    local = [
        module
        for name in sorted(tops)
        if name not in ("__main__", "loopml")
        and (module := sys.modules.get(name)) is not None
        and _is_user_code(module)
    ]
    registered = []
    try:
        for module in local:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:  # not importable by that name (a script loaded by path)
                continue
            registered.append(module)
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def _is_user_code(module: Any) -> bool:
    """Return True if `module` is a file of the user's own, outside the standard library and
    installed packages (a namespace package or a built-in has nothing to carry by value)."""
    return bool(getattr(module, "__file__", None)) and is_local(module.__name__)

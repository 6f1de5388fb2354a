"""Model flavors as plugins: built-ins named as data, third parties through entry points.

Third-party flavors register a `name = "module:Class"` entry point in the group
`loopml.flavors`; detection tries them after the built-ins for specific libraries and before
the generic `sklearn` and `pyfunc` flavors.
"""

from __future__ import annotations

import functools
from importlib import metadata
from importlib.util import find_spec

from loopml.core import plugins
from loopml.errors import InvalidInput, NotFound
from loopml.registry.flavors.base import Flavor

# Most specific first: detection takes the first flavor that handles a model.
BUILTIN: dict[str, str] = {
    "torch": "loopml.registry.flavors.torch:TorchFlavor",
    # Chosen by name only: "torch" takes every nn.Module first, a ScriptModule as TorchScript.
    "torchscript": "loopml.registry.flavors.torch:TorchScriptFlavor",
    "onnx": "loopml.registry.flavors.onnx:OnnxFlavor",
    "xgboost": "loopml.registry.flavors.xgboost:XGBoostFlavor",
    "lightgbm": "loopml.registry.flavors.lightgbm:LightGBMFlavor",
    "sklearn": "loopml.registry.flavors.sklearn:SklearnFlavor",
    "pyfunc": "loopml.registry.flavors.pyfunc:PyfuncFlavor",
}
# Flavors that claim any object of a shape (fit/predict/get_params, or predict): tried last.
GENERIC = ("sklearn", "pyfunc")
# Flavors whose library is optional: (module to import, extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "torchscript": ("torch", "torch"),
    # onnxruntime runs the models; onnx, needed only to check one before saving, is asked for then.
    "onnx": ("onnxruntime", "onnx"),
    "xgboost": ("xgboost", "xgboost"),
    "lightgbm": ("lightgbm", "lightgbm"),
}
ENTRY_POINT_GROUP = "loopml.flavors"


def detect(model: object) -> Flavor:
    """Return the most specific flavor that handles `model`; InvalidInput if none does."""
    for name, reference in _references():
        # An object of a library that is not installed cannot exist: skip its flavor.
        if _installed(name) and (flavor := _make(reference)).handles(model):
            return flavor
    kind = type(model)
    if isinstance(model, type):
        raise InvalidInput(
            f"{model.__module__}.{model.__qualname__} is a class, not a model; pass a fitted "
            "instance of it"
        )
    raise InvalidInput(
        f"cannot save a {kind.__module__}.{kind.__qualname__} as a model: no flavor handles "
        f"it ({', '.join(names())}); wrap it in a class with a predict(data) method (saved as "
        "pyfunc), or pass flavor= to choose one"
    )


def by_name(name: str) -> Flavor:
    """Return the flavor called `name`; NotFound naming the flavors if there is none."""
    for known, reference in _references():
        if known != name:
            continue
        if not _installed(name):
            module, extra = EXTRAS[name]
            raise InvalidInput(
                f"the {name} flavor needs {module}, which is not installed: "
                f"pip install 'loopml[{extra}]'"
            )
        return _make(reference)
    raise NotFound(f"no model flavor named {name!r}; flavors are {', '.join(names())}")


def names() -> list[str]:
    """Return the name of every flavor, built-in and installed, in detection order."""
    return [name for name, _ in _references()]


def _references() -> list[tuple[str, str]]:
    """Return (name, "module:Class") of every flavor in detection order."""
    specific = [(n, r) for n, r in BUILTIN.items() if n not in GENERIC]
    generic = [(n, BUILTIN[n]) for n in GENERIC]
    taken = set(BUILTIN)
    third_party = [(n, r) for n, r in _entry_points() if n not in taken]
    return [*specific, *third_party, *generic]


@functools.cache
def _entry_points() -> tuple[tuple[str, str], ...]:
    # Installed distributions do not change while a process runs; reading them costs ms.
    return tuple((ep.name, ep.value) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))


def _installed(name: str) -> bool:
    """Return False if `name` is a built-in flavor whose optional library is missing."""
    return name not in EXTRAS or find_spec(EXTRAS[name][0]) is not None


def _make(reference: str) -> Flavor:
    flavor: Flavor = plugins.resolve(reference)()
    return flavor

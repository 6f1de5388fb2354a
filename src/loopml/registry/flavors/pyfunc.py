"""Any object with a `predict(data)` method, pickled with its class by value when needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.registry.flavors.base import class_path, load_pickle, pinned, save_pickle


class PyfuncFlavor:
    """A user object saved with cloudpickle as `model.pkl`; predictions from `.predict`."""

    name = "pyfunc"

    def handles(self, model: object) -> bool:
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        save_pickle(model, path)
        return {"class": class_path(model)}

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        return load_pickle(path)

    def predict(self, model: Any, data: Any) -> Any:
        return model.predict(data)

    def requirements(self) -> list[str]:
        return pinned("cloudpickle")

"""scikit-learn estimators, Pipelines and anything else with fit, predict and get_params."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from loopml.registry.flavors.base import class_path, load_pickle, pinned, save_pickle


class SklearnFlavor:
    """An estimator pickled (protocol 5) as `model.pkl`; predictions from `.predict`."""

    name = "sklearn"

    def handles(self, model: object) -> bool:
        if isinstance(model, type):
            return False  # a class, not a fitted instance
        return all(callable(getattr(model, m, None)) for m in ("fit", "predict", "get_params"))

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        save_pickle(model, path)
        return {"class": class_path(model), "sklearn_version": _sklearn_version()}

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        return load_pickle(path)

    def predict(self, model: Any, data: Any) -> Any:
        return model.predict(data)

    def requirements(self) -> list[str]:
        return pinned("scikit-learn", "cloudpickle")


def _sklearn_version() -> str | None:
    try:
        return metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return None  # an sklearn-API estimator that does not use scikit-learn itself

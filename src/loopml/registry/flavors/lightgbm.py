"""LightGBM models: a Booster as LightGBM's text format, the scikit-learn API pickled.

LightGBM is imported only when a model is loaded: `pip install 'loopml[lightgbm]'`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.registry.flavors.base import class_path, load_pickle, pinned, save_pickle

TEXT_FILE = "model.txt"


class LightGBMFlavor:
    """`lightgbm.Booster` saved with `save_model`; LGBMClassifier and friends pickled."""

    name = "lightgbm"

    def handles(self, model: object) -> bool:
        return not isinstance(model, type) and any(
            c.__module__.partition(".")[0] == "lightgbm" for c in type(model).__mro__
        )

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        import lightgbm

        if isinstance(model, lightgbm.Booster):
            model.save_model(str(path / TEXT_FILE))
            fmt = "text"
        else:
            # The scikit-learn wrapper keeps fitted attributes that the text format drops.
            save_pickle(model, path)
            fmt = "pickle"
        return {"class": class_path(model), "format": fmt, "lightgbm_version": lightgbm.__version__}

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        import lightgbm

        if meta.get("format") == "text":
            return lightgbm.Booster(model_file=str(path / TEXT_FILE))
        return load_pickle(path)

    def predict(self, model: Any, data: Any) -> Any:
        return model.predict(data)

    def requirements(self) -> list[str]:
        return pinned("lightgbm", "cloudpickle")

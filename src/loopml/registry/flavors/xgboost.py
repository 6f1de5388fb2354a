"""XGBoost models in XGBoost's own UBJSON format, readable by later XGBoost versions.

XGBoost is imported only when a model is saved or loaded: `pip install 'loopml[xgboost]'`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.core import plugins
from loopml.errors import InvalidInput
from loopml.registry.flavors.base import class_path, pinned

MODEL_FILE = "model.ubj"


class XGBoostFlavor:
    """`xgboost.Booster` or an XGBoost scikit-learn estimator, saved with `save_model`."""

    name = "xgboost"

    def handles(self, model: object) -> bool:
        return not isinstance(model, type) and any(
            c.__module__.partition(".")[0] == "xgboost" for c in type(model).__mro__
        )

    def save(self, model: Any, path: Path) -> dict[str, Any]:
        import xgboost

        native = _xgboost_class(type(model))
        model.save_model(str(path / MODEL_FILE))
        return {
            "class": class_path(model),
            "xgboost_class": f"{native.__module__}:{native.__qualname__}",
            "xgboost_version": xgboost.__version__,
        }

    def load(self, path: Path, meta: Mapping[str, Any]) -> Any:
        # The XGBoost class it was, not a user subclass: its module may not exist here.
        model = plugins.resolve(str(meta["xgboost_class"]))()
        model.load_model(str(path / MODEL_FILE))
        return model

    def predict(self, model: Any, data: Any) -> Any:
        import xgboost

        if isinstance(model, xgboost.Booster):
            return model.predict(xgboost.DMatrix(data))
        return model.predict(data)

    def requirements(self) -> list[str]:
        # The CPU-only wheel installs the same module under another distribution name.
        return pinned("xgboost", "xgboost-cpu")


def _xgboost_class(kind: type) -> type:
    """Return the first class in `kind`'s MRO that XGBoost itself defines."""
    for c in kind.__mro__:
        if c.__module__.partition(".")[0] == "xgboost":
            return c
    raise InvalidInput(f"{kind.__qualname__} is not an XGBoost model")

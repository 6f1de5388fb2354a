"""scikit-learn autologging: every estimator's `fit` wrapped to log into the current run."""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from loopml.errors import LoopMLError
from loopml.tracking import fluent

log = logging.getLogger("loopml")

_ORIGINAL = "__loopml_original_fit__"
_in_fit: ContextVar[bool] = ContextVar("loopml_autolog_in_fit", default=False)


def enable(*, log_models: bool = True) -> None:
    """Wrap `fit` of every scikit-learn estimator class (again if already wrapped)."""
    disable()
    for cls in _estimator_classes():
        original = cls.__dict__["fit"]
        wrapped = _wrap(original, log_models=log_models)
        setattr(wrapped, _ORIGINAL, original)
        setattr(cls, "fit", wrapped)  # noqa: B010 - cls is typed as plain `type`


def disable() -> None:
    """Restore every wrapped `fit`."""
    for cls in _estimator_classes():
        original = getattr(cls.__dict__["fit"], _ORIGINAL, None)
        if original is not None:
            setattr(cls, "fit", original)  # noqa: B010


def _estimator_classes() -> list[type]:
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    # `fit` often lives on a private base class (BaseForest); wrap it where it is defined.
    owners = set()
    for cls in {cls for _, cls in all_estimators()} | {Pipeline}:
        owner = next((c for c in cls.__mro__ if "fit" in c.__dict__), None)
        if owner is not None and owner.__module__.startswith("sklearn."):
            owners.add(owner)
    return sorted(owners, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _wrap(original: Callable[..., Any], *, log_models: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _in_fit.get():  # a part fitted by a meta-estimator: the outer fit logs
            return original(self, *args, **kwargs)
        token = _in_fit.set(True)
        try:
            run = fluent.active_run()
            own = run is None
            if run is None:
                run = fluent.start_run(run_name=type(self).__name__)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                if own:
                    run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                raise
            _log_fit(run, self, args, kwargs, log_models=log_models)
            if own:
                run.end()
            return result
        finally:
            _in_fit.reset(token)

    return fit


def _log_fit(
    run: Any, estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, log_models: bool
) -> None:
    """Log what a finished fit produced; a logging problem is reported, never raised into fit."""
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    try:
        params = {k: _short(v) for k, v in estimator.get_params(deep=True).items()}
        run.log_params(params)
        run.set_tag(
            "estimator_class", f"{type(estimator).__module__}.{type(estimator).__qualname__}"
        )
        if y is not None and x is not None and hasattr(estimator, "score"):
            run.log_metric("training_score", float(estimator.score(x, y)))
        if log_models:
            from loopml.tracking import artifacts

            artifacts.log_bytes(run.ws, run.id, pickle.dumps(estimator), "model/model.pkl")
    except (LoopMLError, ValueError, TypeError, pickle.PicklingError) as exc:
        log.warning("LoopML autolog: could not log %s fit: %s", type(estimator).__name__, exc)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."

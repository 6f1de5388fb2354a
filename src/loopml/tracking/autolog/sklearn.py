"""scikit-learn autologging: every estimator's `fit` wrapped to log into the current run."""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from loopml.tracking import artifacts, fluent
from loopml.tracking.entities import RunStatus
from loopml.tracking.run import Run

log = logging.getLogger("loopml")

_ORIGINAL = "__loopml_original_fit__"
MODEL_FILE = "model/model.pkl"
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
        own: Run | None = None
        status: RunStatus = "FAILED"
        try:
            run = fluent.active_run()
            if run is None:
                own = run = _start(type(self).__name__)
            try:
                result = original(self, *args, **kwargs)
            except KeyboardInterrupt:
                status = "KILLED"
                raise
            status = "FINISHED"
            if run is not None:
                _log_fit(run, self, args, kwargs, log_models=log_models)
            return result
        finally:
            _in_fit.reset(token)
            if own is not None:
                _attempt(f"end the run of {type(self).__name__}", own.end, status)

    return fit


def _start(name: str) -> Run | None:
    try:
        return fluent.start_run(run_name=name)
    except Exception as exc:  # noqa: BLE001 - autolog reports, it never breaks the user's fit
        log.warning("LoopML autolog: could not start a run for %s: %s", name, exc)
        return None


def _log_fit(
    run: Run, estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, log_models: bool
) -> None:
    """Log what a finished fit produced; each problem is reported, none is raised into fit."""
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    name = type(estimator).__name__

    def params() -> None:
        run.log_params({k: _short(v) for k, v in estimator.get_params(deep=True).items()})

    _attempt(f"log the params of {name}", params)
    _attempt(
        f"tag the class of {name}",
        run.set_tag,
        "estimator_class",
        f"{type(estimator).__module__}.{type(estimator).__qualname__}",
    )
    if y is not None and x is not None and hasattr(estimator, "score"):
        _attempt(
            f"log the training score of {name}",
            lambda: run.log_metric("training_score", float(estimator.score(x, y))),
        )
    if log_models:
        _attempt(
            f"log the model {name}",
            lambda: artifacts.log_bytes(run.ws, run.id, pickle.dumps(estimator), MODEL_FILE),
        )


def _attempt(what: str, call: Callable[..., object], *args: Any) -> None:
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - autolog reports, it never breaks the user's fit
        log.warning("LoopML autolog: could not %s: %s: %s", what, type(exc).__name__, exc)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."

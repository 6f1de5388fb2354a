"""Autologging: `loopml.autolog()` makes supported libraries log their training runs."""

from __future__ import annotations


def autolog(*, disable: bool = False, log_models: bool = True) -> None:
    """Log params, training score and the fitted model of every scikit-learn `fit`.

    A `fit` inside an active run logs into it; otherwise it gets a run of its own. Fits that a
    meta-estimator (Pipeline, GridSearchCV) makes of its parts are not logged separately.
    """
    from loopml.tracking.autolog import sklearn

    if disable:
        sklearn.disable()
    else:
        sklearn.enable(log_models=log_models)

"""LoopML: the whole ML lifecycle as one closed loop, from versioned data to retraining.

Names are imported on first use, so `import loopml` (and the CLI) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_FLUENT = "loopml.tracking.fluent"
_LAZY: dict[str, str] = {
    "start_run": _FLUENT,
    "end_run": _FLUENT,
    "active_run": _FLUENT,
    "log_metric": _FLUENT,
    "log_metrics": _FLUENT,
    "log_param": _FLUENT,
    "log_params": _FLUENT,
    "set_tag": _FLUENT,
    "set_tags": _FLUENT,
    "log_artifact": _FLUENT,
    "log_dict": _FLUENT,
    "log_text": _FLUENT,
    "log_input": _FLUENT,
    "get_run": _FLUENT,
    "get_metric_history": _FLUENT,
    "list_artifacts": _FLUENT,
    "download_artifacts": _FLUENT,
    "search_runs": _FLUENT,
    "set_workspace": "loopml.core.workspace",
    "use_workspace": "loopml.core.workspace",
    "autolog": "loopml.tracking.autolog",
    "Run": "loopml.tracking.run",
    "RunRecord": "loopml.tracking.entities",
    "Experiment": "loopml.tracking.entities",
    "Workspace": "loopml.core.workspace",
    "data": "loopml",  # the subpackage: `loopml.data.add(...)`
    "step": "loopml.pipelines.step",
    "pipeline": "loopml.pipelines.graph",
    "Dataset": "loopml.data.entities",
    "log_model": "loopml.registry.api",
    "load_model": "loopml.registry.api",
    "register_model": "loopml.registry.api",
    "set_alias": "loopml.registry.api",
    "get_model_version": "loopml.registry.api",
    "evaluate": "loopml.evaluation.scoring",
    "promote": "loopml.evaluation.promotion",
    "Gate": "loopml.evaluation.gates",
    "Threshold": "loopml.evaluation.checks",
    "BeatsChampion": "loopml.evaluation.checks",
    "Fairness": "loopml.evaluation.checks",
    "LatencyBudget": "loopml.evaluation.checks",
}

# Kept literal for tools; a test checks it matches _LAZY.
__all__ = [
    "BeatsChampion",
    "Dataset",
    "Experiment",
    "Fairness",
    "Gate",
    "LatencyBudget",
    "Run",
    "RunRecord",
    "Threshold",
    "Workspace",
    "__version__",
    "active_run",
    "autolog",
    "data",
    "download_artifacts",
    "end_run",
    "evaluate",
    "get_metric_history",
    "get_model_version",
    "get_run",
    "list_artifacts",
    "load_model",
    "log_artifact",
    "log_dict",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "promote",
    "register_model",
    "search_runs",
    "set_alias",
    "set_tag",
    "set_tags",
    "set_workspace",
    "start_run",
    "step",
    "use_workspace",
]

if TYPE_CHECKING:
    from loopml import data
    from loopml.core.workspace import Workspace, set_workspace, use_workspace
    from loopml.data.entities import Dataset
    from loopml.evaluation.checks import BeatsChampion, Fairness, LatencyBudget, Threshold
    from loopml.evaluation.gates import Gate
    from loopml.evaluation.promotion import promote
    from loopml.evaluation.scoring import evaluate
    from loopml.pipelines.graph import pipeline
    from loopml.pipelines.step import step
    from loopml.registry.api import (
        get_model_version,
        load_model,
        log_model,
        register_model,
        set_alias,
    )
    from loopml.tracking.autolog import autolog
    from loopml.tracking.entities import Experiment, RunRecord
    from loopml.tracking.fluent import (
        active_run,
        download_artifacts,
        end_run,
        get_metric_history,
        get_run,
        list_artifacts,
        log_artifact,
        log_dict,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )
    from loopml.tracking.run import Run


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    value = (
        import_module(f"loopml.{name}")
        if module == "loopml"
        else getattr(import_module(module), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

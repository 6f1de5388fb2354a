"""The fluent API: `loopml.start_run()` and friends, acting on the current run of this context.

The current run lives in a ContextVar, so threads and async tasks each have their own. A new
thread starts with no current run: hand it the `Run` object and call its methods instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.core.workspace import workspace
from loopml.errors import InvalidInput, InvalidState
from loopml.tracking import artifacts, context, runs
from loopml.tracking.current import current_run
from loopml.tracking.entities import ArtifactInfo, MetricPoint, RunList, RunRecord, RunStatus
from loopml.tracking.run import Run, tracker

if TYPE_CHECKING:
    from loopml.data.entities import DatasetVersion


def start_run(
    experiment: str | int | None = None,
    run_name: str | None = None,
    *,
    run_id: str | None = None,
    nested: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> Run:
    """Start a run (or resume `run_id`) and make it current; use it in a `with` block."""
    ws = workspace()
    parent = current_run.get()
    if parent is not None and not parent.ended and not nested:
        raise InvalidState(
            f"run {parent.id} ({parent.name}) is already active here; end it first, "
            "or pass nested=True to start a child run"
        )
    if parent is not None and parent.ended:
        parent = None
    if run_id is not None:
        if experiment is not None or run_name is not None:
            raise InvalidInput(
                "start_run(run_id=...) resumes a run as it is; leave out experiment and run_name"
            )
        record, writer = runs.resume(ws, run_id)
    else:
        system = context.capture()
        record = runs.create(
            ws,
            experiment,
            name=run_name,
            parent_id=parent.id if parent is not None else None,
            tags={**system, **(tags or {})},
        )
        writer = 0
    run = Run(ws, record, writer)
    if run_id is not None and tags:
        run.set_tags(tags)
    run.parent = parent
    run.context_token = current_run.set(run)
    return run


def active_run() -> Run | None:
    """Return the current run of this context, or None."""
    run = current_run.get()
    return run if run is not None and not run.ended else None


def end_run(status: RunStatus = "FINISHED") -> None:
    """End the current run (no-op without one)."""
    run = active_run()
    if run is not None:
        run.end(status)


def _require_run() -> Run:
    run = active_run()
    if run is None:
        raise InvalidState(
            "no active run in this context; wrap the code in `with loopml.start_run():`, "
            "or call the method on a Run object (threads start without a current run)"
        )
    return run


def log_metric(key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
    """Record a metric value in the current run."""
    _require_run().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
    """Record several metric values in the current run."""
    _require_run().log_metrics(metrics, step, timestamp)


def log_param(key: str, value: Any) -> None:
    """Record a write-once param in the current run."""
    _require_run().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Record write-once params in the current run."""
    _require_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the current run."""
    _require_run().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the current run."""
    _require_run().set_tags(tags)


def log_artifact(local_path: Path | str, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Store a file or folder as artifacts of the current run."""
    return _require_run().log_artifact(local_path, artifact_path)


def log_dict(obj: Any, artifact_file: str) -> ArtifactInfo:
    """Store a dict as a JSON (or YAML) artifact of the current run."""
    return _require_run().log_dict(obj, artifact_file)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    """Store text as an artifact of the current run."""
    return _require_run().log_text(text, artifact_file)


def log_input(dataset: DatasetVersion | str, context: str = "") -> DatasetVersion:
    """Record that the current run read a dataset version; return the version."""
    return _require_run().log_input(dataset, context)


def get_run(run_id: str) -> RunRecord:
    """Return a stored run."""
    ws = workspace()
    tracker(ws).writer.flush()
    return runs.get(ws, run_id)


def get_metric_history(run_id: str, key: str) -> list[MetricPoint]:
    """Return every point of one metric of a run."""
    ws = workspace()
    tracker(ws).writer.flush()
    return runs.metric_history(ws, run_id, key)


def list_artifacts(run_id: str, path: str | None = None) -> list[ArtifactInfo]:
    """Return a run's artifacts."""
    return artifacts.list_artifacts(workspace(), run_id, path)


def download_artifacts(
    run_id: str, path: str | None = None, dest: Path | str | None = None
) -> Path:
    """Copy a run's artifacts to `dest`, verified, and return where they are."""
    return artifacts.download(workspace(), run_id, path, dest)


def search_runs(
    experiments: str | int | Sequence[str | int] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    *,
    view: str = "active",
) -> RunList:
    """Return runs matching `filter`, ordered by `order_by`, one page at a time."""
    from loopml.tracking import search

    ws = workspace()
    tracker(ws).writer.flush()
    return search.search_runs(
        ws, experiments, filter, order_by, max_results=max_results, page_token=page_token, view=view
    )

"""Versioned datasets: `loopml.data.add(...)`, `loopml.data.get("churn@latest")`, and the rest.

Each function acts on the current workspace (see `loopml.set_workspace`) unless one is given.
Implementations are imported on first use, so `loopml data status` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.data.changes import PathStatus
    from loopml.data.entities import DatasetSummary, DatasetVersion
    from loopml.data.links import CheckoutResult


def _ws(workspace: Workspace | None) -> Workspace:
    from loopml.core.workspace import workspace as current

    return workspace if workspace is not None else current()


def add(
    path: Path | str,
    name: str | None = None,
    *,
    message: str = "",
    workspace: Workspace | None = None,
) -> DatasetVersion:
    """Version the file or folder at `path` (named after it unless `name` is given)."""
    from loopml.data.registration import add as add_

    return add_(_ws(workspace), path, name=name, message=message)[0]


def get(ref: str, *, workspace: Workspace | None = None) -> DatasetVersion:
    """Return the version `ref` names: `churn`, `churn@v3`, `churn@latest` or `churn@TAG`."""
    from loopml.data import versions

    return versions.get(_ws(workspace), ref)


def list_datasets(*, workspace: Workspace | None = None) -> list[DatasetSummary]:
    """Return every dataset with its latest version."""
    from loopml.data import versions

    return versions.list_all(_ws(workspace))


def log(name: str, *, workspace: Workspace | None = None) -> list[DatasetVersion]:
    """Return the versions of dataset `name`, newest first."""
    from loopml.data import versions

    return versions.history(_ws(workspace), name)


def tag(ref: str, tag: str, *, workspace: Workspace | None = None) -> DatasetVersion:
    """Point `tag` at the version `ref` names, so `name@tag` resolves to it."""
    from loopml.data import versions

    return versions.tag(_ws(workspace), ref, tag)


def status(*, workspace: Workspace | None = None) -> list[PathStatus]:
    """Return the tracked paths of the workspace and what changed in each."""
    from loopml.data.changes import status as status_

    return status_(_ws(workspace).settings)


def checkout(
    ref: str,
    to: Path | str | None = None,
    *,
    force: bool = False,
    workspace: Workspace | None = None,
) -> CheckoutResult:
    """Put the files of version `ref` at `to` (default: where it was added from)."""
    from loopml.data import versions
    from loopml.data.links import checkout as checkout_

    ws = _ws(workspace)
    return checkout_(ws, versions.get(ws, ref), to, force=force)


def used_by(ref: str, *, workspace: Workspace | None = None) -> list[tuple[str, str, str, str]]:
    """Return (run id, run name, status, context) of each run that read version `ref`."""
    from loopml.data import versions

    return versions.used_by(_ws(workspace), ref)


def diff(old: str, new: str, *, workspace: Workspace | None = None) -> dict[str, Any]:
    """Return what changed between two versions: files, and for tables rows/schema/stats."""
    from loopml.data.compare import diff as diff_

    return diff_(_ws(workspace), old, new)


def __getattr__(name: str) -> Any:
    if name in ("DatasetVersion", "DatasetSummary"):
        from loopml.data import entities

        return getattr(entities, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DatasetSummary",
    "DatasetVersion",
    "add",
    "checkout",
    "diff",
    "get",
    "list_datasets",
    "log",
    "status",
    "tag",
    "used_by",
]

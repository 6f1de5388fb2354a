"""`add`: version a file or folder: store what is new, record a version if anything changed."""

from __future__ import annotations

import os
from pathlib import Path

from loopml.core.blobs.digest import digest_bytes
from loopml.core.workspace import Workspace
from loopml.data import tracked
from loopml.data.entities import DatasetVersion
from loopml.data.ingest import ingest
from loopml.data.refs import check_name
from loopml.data.stat_cache import StatCache
from loopml.errors import InvalidInput, NotFound


def default_name(path: Path) -> str:
    """Return the dataset name a path gets when none is given: its name without suffixes."""
    name = path.absolute().name.split(".", 1)[0]
    if not name:
        raise InvalidInput(f"cannot name a dataset after {path}; give --name")
    return name


def add(
    ws: Workspace, path: Path | str, *, name: str | None = None, message: str = ""
) -> tuple[DatasetVersion, bool]:
    """Version the file or folder at `path` as dataset `name`; return (version, created).

    Unchanged content makes no new version: the latest one is returned with created=False.
    """
    target = Path(os.path.abspath(path))
    name = check_name(name) if name is not None else check_name(default_name(target))
    if Path(os.path.realpath(target)).is_relative_to(ws.settings.dir.resolve()):
        raise InvalidInput(f"{target} is inside {ws.settings.dir}; add your own files only")
    # The metadata store (and SQLAlchemy's import) opens while the files are hashed.
    ws.open_store_in_background()
    with ws.blob_lock():  # garbage collection waits until a version points at the blobs
        return _add(ws, target, name, message)


def _add(ws: Workspace, target: Path, name: str, message: str) -> tuple[DatasetVersion, bool]:
    cache = StatCache(ws.settings.dir)
    try:
        manifest = ingest(ws.blobs, cache, target, label=f"Adding {name}")
    finally:
        cache.close()
    # Imported only now: they import SQLAlchemy, which the store's opening thread has been
    # importing while the files were hashed.
    from loopml.data import versions
    from loopml.data.tabular import profile_manifest

    digest = digest_bytes(manifest.to_bytes())
    try:
        latest = versions.get(ws, name)
    except NotFound:
        latest = None
    if latest is not None and latest.manifest_digest == digest:
        version, created = latest, False  # skip profiling what is already recorded
    else:
        profile = profile_manifest(ws.blobs, manifest, name)
        version, created = versions.register(
            ws,
            name,
            manifest,
            source=tracked.key_for(ws.root, target),
            profile_digest=profile,
            message=message,
        )
    tracked.record(
        ws.settings.dir,
        tracked.Tracked(
            tracked.key_for(ws.root, target), name, version.version, digest, manifest.kind
        ),
    )
    return version, created

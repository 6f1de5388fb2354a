"""Garbage collection of blobs: remove only what no dataset, run, model or output points at."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from loopml.core import plugins
from loopml.core.blobs import LocalStorage
from loopml.core.blobs.local import TEMP_PREFIX
from loopml.core.workspace import Workspace

# A temp file this old belongs to a writer that died; younger ones may still be written.
STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class Collected:
    """What a collection found (and removed, unless it was a dry run)."""

    unreferenced: list[tuple[str, int]]  # (digest, size)
    stale_temp_files: int
    removed: bool

    @property
    def bytes(self) -> int:
        """Return the bytes the unreferenced blobs take."""
        return sum(size for _, size in self.unreferenced)


def collect(ws: Workspace, *, force: bool = False) -> Collected:
    """Find blobs nothing references; remove them (and stale temp files) when `force`.

    Every layer that stores blobs names its references in `plugins.BLOB_REFERENCES`; one that
    cannot say (a manifest missing locally) raises, and nothing is removed.
    """
    with ws.blob_lock(exclusive=True):
        referenced: set[str] = set()
        for reference in plugins.BLOB_REFERENCES:
            referenced |= plugins.resolve(reference)(ws)
        garbage = [(d, ws.blobs.size(d)) for d in ws.blobs.list() if d not in referenced]
        stale = _stale_temp_files(ws)
        if force:
            for digest, _ in garbage:
                ws.blobs.delete(digest)
            for path in stale:
                path.unlink(missing_ok=True)
    return Collected(garbage, len(stale), force)


def _stale_temp_files(ws: Workspace) -> list[Path]:
    storage = ws.blobs.storage
    if not isinstance(storage, LocalStorage) or not storage.root.is_dir():
        return []
    cutoff = time.time() - STALE_TEMP_SECONDS
    return [
        path
        for pattern in (f"{TEMP_PREFIX}*", f"*/{TEMP_PREFIX}*")
        for path in storage.root.glob(pattern)
        if path.stat().st_mtime < cutoff
    ]

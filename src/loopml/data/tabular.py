"""The tables of a version: column profiles computed at add time, and reading them back."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from loopml.core.blobs import ContentStore
from loopml.data.manifest import Manifest
from loopml.data.tables import is_table, read_table
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from loopml.core.workspace import Workspace
    from loopml.data.entities import DatasetVersion

log = logging.getLogger("loopml")

# Profiling reads every table whole; past these, `add` skips it and says so.
MAX_TABLES = 100
MAX_TABLE_BYTES = 2 * 2**30


def profile_manifest(blobs: ContentStore, manifest: Manifest, label: str) -> str | None:
    """Profile the CSV and Parquet files of `manifest`; return the digest of the profiles blob."""
    from loopml.data.profile import profile_table

    tables = [e for e in manifest.files if is_table(e.path)]
    if not tables:
        return None
    if len(tables) > MAX_TABLES:
        log.warning(
            "%s: %d tables; profiles are made for at most %d", label, len(tables), MAX_TABLES
        )
        return None
    profiles: dict[str, Any] = {}
    for entry in tables:
        if entry.size > MAX_TABLE_BYTES:
            log.warning("%s: %s is over 2 GiB; it is not profiled", label, entry.path)
            continue
        # A malformed table is refused, not versioned quietly: bad data stops here.
        frame = _read(blobs, entry.digest, entry.path, f"{label}:{entry.path}")
        profiles[entry.path] = profile_table(frame)
    body = {"format": 1, "tables": profiles}
    return blobs.put_bytes(json.dumps(body, allow_nan=False, sort_keys=True).encode()).digest


def _read(blobs: ContentStore, digest: str, path: str, label: str) -> pd.DataFrame:
    """Read a stored table from its verified bytes."""
    import tempfile
    from pathlib import Path

    # read_table dispatches on the suffix, so the bytes go through a file of the same name.
    with tempfile.TemporaryDirectory(prefix="loopml-table-") as folder:
        target = Path(folder) / Path(path).name
        blobs.copy_to(digest, target, durable=False)
        return read_table(target, label=label)


def load_profiles(ws: Workspace, version: DatasetVersion) -> dict[str, Any]:
    """Return the column profiles of `version`'s tables, by path (empty when it has none)."""
    if version.profile_digest is None:
        return {}
    body = json.loads(ws.blobs.read_bytes(version.profile_digest))
    return dict(body["tables"])


def table_path(version: DatasetVersion, file: str | None, profiles: dict[str, Any]) -> str:
    """Return which table of `version` is meant: `file`, or its only table."""
    tables = sorted(profiles) or [e.path for e in version.manifest().files if is_table(e.path)]
    if file is not None:
        if file not in tables:
            raise InvalidInput(
                f"{version.ref} has no table {file!r}; its tables: {', '.join(tables) or 'none'}"
            )
        return file
    if len(tables) != 1:
        raise InvalidInput(
            f"{version.ref} holds {len(tables)} tables ({', '.join(tables[:10]) or 'none'}); "
            "name one with file=..."
        )
    return tables[0]


def read_version_table(version: DatasetVersion, file: str | None) -> pd.DataFrame:
    """Read one CSV or Parquet file of `version` into a DataFrame."""
    path = table_path(version, file, load_profiles(version.workspace, version))
    entry = version.manifest().by_path()[path]
    return _read(version.workspace.blobs, entry.digest, path, f"{version.ref}:{path}")

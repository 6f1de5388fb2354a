"""What the data API hands back: dataset versions and dataset summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopml.core.workspace import Workspace
    from loopml.data.manifest import Manifest


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset (`churn@v3`)."""

    id: int
    name: str
    version: int
    manifest_digest: str
    profile_digest: str | None
    kind: str  # "file" or "folder"
    source: str
    num_files: int
    size: int
    message: str
    user: str
    created_at: int
    tags: tuple[str, ...]
    workspace: Workspace = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        """Return the exact reference of this version, `name@vN`."""
        return f"{self.name}@v{self.version}"

    def __str__(self) -> str:
        return self.ref

    def manifest(self) -> Manifest:
        """Return the list of files this version holds."""
        from loopml.data.versions import load_manifest

        return load_manifest(self.workspace, self.manifest_digest)

    def profile(self) -> dict[str, Any]:
        """Return the column profiles of its CSV and Parquet files, by path (may be empty)."""
        from loopml.data.tabular import load_profiles

        return load_profiles(self.workspace, self)

    @property
    def path(self) -> Path:
        """Return a local, read-only copy of this version (made once, then reused).

        For a version added from a file this is the file; for a folder, the folder.
        """
        from loopml.data.links import materialize

        return materialize(self.workspace, self)

    def to_pandas(self, file: str | None = None) -> pd.DataFrame:
        """Read a CSV or Parquet file of this version (`file` is needed when it holds several)."""
        from loopml.data.tabular import read_version_table

        return read_version_table(self, file)


# The name steps use for a dataset parameter: `def split(data: Dataset)` receives the version.
Dataset = DatasetVersion


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset: its name, how many versions it has and its latest version."""

    name: str
    versions: int
    latest: DatasetVersion

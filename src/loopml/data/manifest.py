"""Manifests: the immutable list of files (path, digest, size, mode) a dataset version holds."""

from __future__ import annotations

import json
from dataclasses import dataclass

from loopml.core.blobs.content_store import ContentStore
from loopml.core.blobs.digest import check_digest
from loopml.core.paths import clean_relpath
from loopml.errors import IntegrityError, NotFound

FORMAT = 1
KINDS = ("file", "folder")


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path inside the version, digest, size and permission bits."""

    path: str
    digest: str
    size: int
    mode: int


@dataclass(frozen=True)
class Manifest:
    """A version's files, sorted by path; `kind` says whether it was added as a file or folder."""

    kind: str
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        """Return the total size of the files in bytes."""
        return sum(entry.size for entry in self.files)

    def digests(self) -> set[str]:
        """Return the digest of every file."""
        return {entry.digest for entry in self.files}

    def by_path(self) -> dict[str, FileEntry]:
        """Return the files keyed by path."""
        return {entry.path: entry for entry in self.files}

    def to_bytes(self) -> bytes:
        """Return the canonical JSON form: equal manifests give equal bytes, hence one digest."""
        rows = [[e.path, e.digest, e.size, e.mode] for e in self.files]
        body = {"format": FORMAT, "kind": self.kind, "files": rows}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def build(cls, kind: str, entries: list[FileEntry]) -> Manifest:
        """Return a manifest of `entries` in canonical (path) order."""
        return cls(kind, tuple(sorted(entries, key=lambda e: e.path)))

    @classmethod
    def from_bytes(cls, data: bytes, *, digest: str = "") -> Manifest:
        """Parse a stored manifest, checking every path and digest in it."""
        try:
            body = json.loads(data)
            _check_header(body)
            files = tuple(
                FileEntry(clean_relpath(path, what="manifest path"), check_digest(d), size, mode)
                for path, d, size, mode in body["files"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"manifest {digest or '(unsaved)'} is not a LoopML manifest ({exc}); "
                "pull it again from a remote"
            ) from exc
        return cls(body["kind"], files)


def read_manifest(blobs: ContentStore, digest: str) -> Manifest:
    """Return the manifest stored under `digest` in `blobs`, verified."""
    try:
        data = blobs.read_bytes(digest)
    except NotFound:
        raise NotFound(
            f"the manifest {digest} is not in this workspace's blob store; "
            "run `loopml data pull` to fetch it from a remote"
        ) from None
    return Manifest.from_bytes(data, digest=digest)


def _check_header(body: dict[str, object]) -> None:
    if body["format"] != FORMAT or body["kind"] not in KINDS:
        raise ValueError(f"unknown format {body['format']!r} or kind {body['kind']!r}")

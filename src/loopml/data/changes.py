"""What changed in tracked paths since their version: the stat cache makes a no-change check cheap.

This module never opens the metadata store (and so never imports SQLAlchemy): it reads the
tracked-path index, manifests from the blob store and the stat cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loopml.config import Settings
from loopml.core.blobs import ContentStore, storage_from_uri
from loopml.core.blobs.digest import digest_file
from loopml.data import tracked
from loopml.data.manifest import Manifest, read_manifest
from loopml.data.scan import Found, scan
from loopml.data.stat_cache import Key, StatCache, now_ns, stat_key
from loopml.errors import NotFound


@dataclass(frozen=True)
class Changes:
    """How a path differs from a manifest: files added, removed and changed (by relpath)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: bool = False  # the path itself is gone

    @property
    def clean(self) -> bool:
        """Return True when the path holds exactly the manifest's files."""
        return not (self.added or self.removed or self.changed or self.missing)


@dataclass(frozen=True)
class PathStatus:
    """One tracked path, the version it last held and how it differs now."""

    tracked: tracked.Tracked
    changes: Changes


def status(settings: Settings) -> list[PathStatus]:
    """Return every tracked path of the workspace with its changes, by path."""
    blobs = ContentStore(storage_from_uri(settings.blob_uri))
    cache = StatCache(settings.dir)
    try:
        result = []
        for key, entry in sorted(tracked.load(settings.dir).items()):
            manifest = read_manifest(blobs, entry.manifest)
            changes = compare(tracked.location(settings.root, key), manifest, cache)
            result.append(PathStatus(entry, changes))
        return result
    finally:
        cache.close()


def compare(target: Path, manifest: Manifest, cache: StatCache) -> Changes:
    """Return how the file or folder at `target` differs from `manifest`."""
    try:
        kind, found = scan(target, allow_empty=True, lenient=True)
    except NotFound:
        return Changes(removed=[e.path for e in manifest.files], missing=True)
    if manifest.kind == "file" or kind == "file":
        # A single file is compared by content whatever it is called now.
        if kind != manifest.kind:
            return Changes(changed=[manifest.files[0].path])
        pairs = [(found[0], manifest.files[0])]
        extra: list[str] = []
        gone: list[str] = []
    else:
        expected = manifest.by_path()
        here = {f.relpath: f for f in found}
        pairs = [(f, expected[p]) for p, f in here.items() if p in expected]
        extra = sorted(p for p in here if p not in expected)
        gone = sorted(p for p in expected if p not in here)
    digests = _digests([f for f, e in pairs if f.readable and f.st.st_size == e.size], cache)
    changed = [entry.path for f, entry in pairs if digests.get(f.path) != entry.digest]
    return Changes(added=extra, removed=gone, changed=sorted(changed))


def _digests(found: list[Found], cache: StatCache) -> dict[str, str]:
    """Return the digest of each file: from the stat cache, else hashed (and cached)."""
    keys: dict[str, Key] = {f.path: stat_key(f.st) for f in found}
    known = cache.lookup(keys.items())
    fresh = []
    for f in found:
        if f.path not in known:
            started = now_ns()
            known[f.path] = digest_file(Path(f.path))
            fresh.append((f.path, keys[f.path], known[f.path], started))
    cache.store(fresh)
    return known

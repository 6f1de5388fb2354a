"""Hashing and storing the files of a version: a thread pool, the stat cache, one read each."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loopml.core.blobs import Blob, ContentStore
from loopml.core.progress import file_progress
from loopml.data.manifest import FileEntry, Manifest
from loopml.data.scan import Found, scan
from loopml.data.stat_cache import Key, StatCache, now_ns, stat_key
from loopml.errors import InvalidInput

# Many small files are bound by system calls, which release the GIL: more threads than cores.
JOBS = min(16, 2 * (os.cpu_count() or 1))
LARGE_FILE = 16 << 20


def file_mode(st: os.stat_result) -> int:
    """Return the mode a version records: 0o755 for executables, else 0o644.

    Only the executable bit is kept, so read-only checkouts and umasks never make a new version.
    """
    return 0o755 if st.st_mode & stat.S_IXUSR else 0o644


def ingest(blobs: ContentStore, cache: StatCache, target: Path, *, label: str) -> Manifest:
    """Store every file under `target` that the blob store lacks; return the manifest.

    Files whose stat key is in the cache are not read again. Every blob is durable on return,
    before the caller records anything that points at it: large ones are fsynced one by one,
    small ones share one filesystem flush at the end.
    """
    kind, found = scan(target)
    keys = {f.path: stat_key(f.st) for f in found}
    known = cache.lookup(keys.items())
    hashed: list[tuple[str, Key, str, int]] = []
    unsynced: list[Blob] = []  # appended from the pool's threads (list.append is atomic)

    with file_progress(label, len(found), sum(f.st.st_size for f in found)) as advance:

        def one(f: Found) -> FileEntry:
            size = f.st.st_size
            digest = known.get(f.path)
            if digest is None or not blobs.has(Blob(digest, size)):
                started = now_ns()
                # Large files are fsynced alone (their writeback starts as they are copied);
                # small ones share one filesystem flush at the end.
                durable = size >= LARGE_FILE
                blob = blobs.ingest_file(Path(f.path), durable=durable)
                if not durable:
                    unsynced.append(blob)
                _check_unchanged(f, blob, keys[f.path])
                digest = blob.digest
                hashed.append((f.path, keys[f.path], digest, started))
            advance(1, size)
            return FileEntry(f.relpath, digest, size, file_mode(f.st))

        if len(found) == 1:
            entries = [one(found[0])]
        else:
            with ThreadPoolExecutor(JOBS) as pool:
                try:
                    entries = list(pool.map(one, found))
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
    if unsynced:
        blobs.sync()
    cache.store(hashed)
    return Manifest.build(kind, entries)


def _check_unchanged(f: Found, blob: Blob, before: Key) -> None:
    try:
        after = stat_key(Path(f.path).stat())
    except FileNotFoundError:
        after = None
    if after != before or blob.size != before[3]:
        raise InvalidInput(
            f"file {f.path} changed while it was being added; no version was made: "
            "add again once it is completely written"
        )

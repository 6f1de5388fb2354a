"""Copy the blobs one content store lacks from another: in parallel, verified, atomic."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from loopml.core.blobs.content_store import ContentStore
from loopml.core.blobs.digest import CHUNK_SIZE, StreamingDigest, check_digest, digest_bytes
from loopml.core.blobs.storage import BlobStorage
from loopml.errors import IntegrityError, InvalidInput, NotFound

# From this many digests on, one listing per side replaces a size request per digest; a
# listing costs one request per 1000 keys on S3, so it pays once many blobs are asked about.
LISTING_MIN = 1000
# Blobs up to this size travel through memory; larger ones through a temp file, so a
# transfer holds at most `jobs` times this much in memory.
IN_MEMORY_MAX = 8 << 20
# How many missing digests one error message names before it only counts the rest.
_NAMED_MAX = 3

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class TransferResult:
    """What a transfer did: blobs copied, blobs the destination already had, bytes copied."""

    copied: int
    skipped: int
    bytes: int


# What `transfer` reports progress through: called once with the blobs and bytes it has to
# copy, it returns a context entered around the copying that yields `advance(blobs, bytes)`;
# loopml.core.progress.file_progress has this shape once given its label.
Progress = Callable[[int, int], AbstractContextManager[Callable[[int, int], None]]]


def transfer(
    src: ContentStore,
    dst: ContentStore,
    digests: Iterable[str],
    *,
    jobs: int = 8,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy each blob of `digests` that `dst` lacks from `src`, verified; return the counts.

    `advance` from `progress` is called from the calling thread after every copied blob.
    """
    if jobs < 1:
        raise InvalidInput(f"jobs must be at least 1, got {jobs}")
    wanted = list(dict.fromkeys(check_digest(digest) for digest in digests))
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="loopml-transfer") as pool:
        to_copy = _plan(src.storage, dst.storage, wanted, pool)
        bytes_total = sum(size for _, size in to_copy)
        with (progress or _no_progress)(len(to_copy), bytes_total) as advance:
            copied = _map(
                pool,
                lambda item: _copy(src.storage, dst.storage, *item),
                to_copy,
                lambda size: advance(1, size),
            )
    return TransferResult(copied=len(copied), skipped=len(wanted) - len(copied), bytes=sum(copied))


@contextmanager
def _no_progress(_blobs: int, _bytes: int) -> Iterator[Callable[[int, int], None]]:
    yield lambda _blobs, _bytes: None


def _plan(
    src: BlobStorage, dst: BlobStorage, wanted: list[str], pool: ThreadPoolExecutor
) -> list[tuple[str, int]]:
    """Return (digest, size) for each wanted blob that `dst` lacks or holds at the wrong size."""
    src_keys = _listing(src) if len(wanted) >= LISTING_MIN else None
    dst_keys = _listing(dst) if len(wanted) >= LISTING_MIN else None

    def sizes(digest: str) -> tuple[str, int | None, int | None]:
        return digest, _size(src, digest, src_keys), _size(dst, digest, dst_keys)

    to_copy: list[tuple[str, int]] = []
    lost: list[str] = []
    for digest, src_size, dst_size in _map(pool, sizes, wanted):
        if src_size is None:
            # Without the source's size a stored copy cannot be judged; trust the one there.
            if dst_size is None:
                lost.append(digest)
        elif dst_size != src_size:
            # A destination blob of the wrong size was damaged; copying again repairs it.
            to_copy.append((digest, src_size))
    if lost:
        raise _lost(sorted(lost), src, dst)
    return sorted(to_copy)


def _listing(storage: BlobStorage) -> set[str]:
    return set(storage.list())


def _size(storage: BlobStorage, digest: str, listed: set[str] | None) -> int | None:
    """Return the stored size of `digest`, or None if `storage` lacks it."""
    if listed is not None and digest not in listed:
        return None
    try:
        return storage.size(digest)
    except NotFound:
        return None


def _copy(src: BlobStorage, dst: BlobStorage, digest: str, size: int) -> int:
    """Copy one blob, checking its bytes before any reach `dst`; return the bytes copied."""
    with src.open(digest) as reader:
        if size <= IN_MEMORY_MAX:
            data = reader.read()
            _check(digest, digest_bytes(data), src, dst)
            dst.put_bytes(digest, data)
            return len(data)
        with tempfile.TemporaryDirectory(prefix="loopml-transfer-") as folder:
            path = Path(folder) / "blob"
            hasher = StreamingDigest()
            with path.open("wb") as out:
                while chunk := reader.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
            _check(digest, hasher.digest(), src, dst)
            dst.put_file(digest, path)
            return path.stat().st_size


def _check(digest: str, actual: str, src: BlobStorage, dst: BlobStorage) -> None:
    if actual != digest:
        raise IntegrityError(
            f"blob {digest} in {src!r} is corrupted: its bytes hash to {actual}; it was not "
            f"copied to {dst!r}. Delete it from {src!r}, store it there again (from the "
            "original file, or from a remote with a good copy), then run this again"
        )


def _lost(digests: Sequence[str], src: BlobStorage, dst: BlobStorage) -> NotFound:
    named = ", ".join(digests[:_NAMED_MAX])
    if len(digests) > _NAMED_MAX:
        named += f" and {len(digests) - _NAMED_MAX} more"
    if len(digests) == 1:
        what, them = f"blob {named} is", "it"
    else:
        what, them = f"{len(digests)} blobs ({named}) are", "them"
    return NotFound(
        f"{what} in neither {src!r} nor {dst!r}, so nothing was copied; push {them} from the "
        f"machine that has {them}, then run this again"
    )


def _map(
    pool: ThreadPoolExecutor,
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    on_each: Callable[[_R], None] | None = None,
) -> list[_R]:
    """Return `fn` of every item, run in `pool`, in finishing order; stop at the first error."""
    futures = [pool.submit(fn, item) for item in items]
    results: list[_R] = []
    try:
        for future in as_completed(futures):
            results.append(future.result())
            if on_each is not None:
                on_each(results[-1])
    except BaseException:
        # Blobs not started yet stay uncopied; the pool then only waits for those in flight.
        for future in futures:
            future.cancel()
        raise
    return results

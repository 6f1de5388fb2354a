"""Content-addressed blobs: stored once under their digest, verified on every read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loopml.core.blobs.digest import (
    CHUNK_SIZE,
    StreamingDigest,
    check_digest,
    digest_bytes,
    digest_file,
)
from loopml.core.blobs.local import LocalStorage, make_dirs, write_atomically
from loopml.core.blobs.storage import BlobStorage
from loopml.errors import IntegrityError, InvalidInput, NotFound


@dataclass(frozen=True)
class Blob:
    """A stored blob: its digest and its size in bytes."""

    digest: str
    size: int


def _corrupted(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} is corrupted: its stored bytes hash to {actual}; restore it from a "
        "remote, or delete it and re-add the original file"
    )


class ContentStore:
    """Blobs keyed by the BLAKE3 digest of their bytes, on top of any BlobStorage."""

    def __init__(self, storage: BlobStorage) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return f"ContentStore({self.storage!r})"

    def put_bytes(self, data: bytes) -> Blob:
        """Store `data` unless identical bytes are already stored; return its Blob."""
        digest = digest_bytes(data)
        if not self.storage.exists(digest):
            self.storage.put_bytes(digest, data)
        return Blob(digest, len(data))

    def put_file(self, path: Path) -> Blob:
        """Store the file at `path` unless identical bytes are already stored; return its Blob."""
        path = Path(path)
        if path.is_dir():
            raise InvalidInput(f"{path} is a folder; only files can be stored as blobs")
        try:
            size = path.stat().st_size
            digest = digest_file(path)
        except FileNotFoundError:
            raise NotFound(f"file {path} does not exist; check the path") from None
        # A stored blob of the wrong size was damaged: storing the file again repairs it.
        if self.storage.exists(digest) and self.storage.size(digest) == size:
            return Blob(digest, size)
        self.storage.put_file(digest, path)
        try:
            self.verify(digest)
        except IntegrityError:
            # The file changed between hashing and copying (a checkpoint still being written).
            self.storage.delete(digest)
            raise InvalidInput(
                f"file {path} changed while it was being stored; nothing was stored: "
                "store it again once it is completely written"
            ) from None
        return Blob(digest, size)

    def ingest_file(self, path: Path, *, durable: bool = True) -> Blob:
        """Store the file at `path`, reading it once; return the Blob of the bytes stored.

        With `durable=False` on a local storage, call `sync()` before anything points at it.
        """
        if isinstance(self.storage, LocalStorage):
            digest, size = self.storage.ingest(path, durable=durable)
            return Blob(digest, size)
        return self.put_file(path)

    def has(self, blob: Blob) -> bool:
        """Return True if `blob` is stored whole (a stored blob of the wrong size was damaged)."""
        try:
            return self.storage.size(blob.digest) == blob.size
        except NotFound:
            return False

    def sync(self) -> None:
        """Make blobs stored with `durable=False` durable (one filesystem flush)."""
        if isinstance(self.storage, LocalStorage):
            self.storage.sync()

    def exists(self, digest: str) -> bool:
        """Return True if the blob `digest` is stored."""
        return self.storage.exists(check_digest(digest))

    def size(self, digest: str) -> int:
        """Return the size in bytes of the blob `digest`."""
        return self.storage.size(check_digest(digest))

    def read_bytes(self, digest: str) -> bytes:
        """Return the bytes of blob `digest`, verified against the digest."""
        with self.storage.open(check_digest(digest)) as f:
            data = f.read()
        actual = digest_bytes(data)
        if actual != digest:
            raise _corrupted(digest, actual)
        return data

    def copy_to(
        self, digest: str, dest: Path, *, durable: bool = True, mode: int | None = None
    ) -> Path:
        """Write blob `digest` to `dest`, verified before it appears there; return `dest`.

        `mode` sets the permission bits (less the umask) of the new file.
        """
        check_digest(digest)
        dest = Path(dest)
        with self.storage.open(digest) as src:
            make_dirs(dest.parent)

            def fill(out: BinaryIO) -> None:
                actual = _stream(src, out)
                # Raising here makes write_atomically drop the temp file; dest is never touched.
                if actual != digest:
                    raise _corrupted(digest, actual)

            write_atomically(dest, fill, durable=durable, mode=mode)
        return dest

    def verify(self, digest: str) -> None:
        """Raise IntegrityError if the stored bytes of `digest` do not hash to it."""
        with self.storage.open(check_digest(digest)) as src:
            actual = _stream(src, None)
        if actual != digest:
            raise _corrupted(digest, actual)

    def delete(self, digest: str) -> None:
        """Remove the blob `digest`; a blob that is not stored is not an error."""
        self.storage.delete(check_digest(digest))

    def list(self) -> Iterator[str]:
        """Yield the digest of every stored blob."""
        return self.storage.list()

    __iter__ = list


def _stream(src: BinaryIO, out: BinaryIO | None) -> str:
    """Copy `src` into `out` (if given) in chunks; return the digest of what was read."""
    hasher = StreamingDigest()
    while chunk := src.read(CHUNK_SIZE):
        hasher.update(chunk)
        if out is not None:
            out.write(chunk)
    return hasher.digest()

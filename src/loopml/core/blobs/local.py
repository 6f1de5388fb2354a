"""Blob storage in a local folder, plus the atomic file write it relies on."""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from loopml.core.blobs.digest import (
    CHUNK_SIZE,
    DIGEST_PREFIX,
    StreamingDigest,
    digest_bytes,
    digest_hex,
)
from loopml.errors import NotFound

TEMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")


def fsync_dir(folder: Path) -> None:
    """Flush `folder`'s entries to disk so a rename inside it survives a crash."""
    # Windows cannot open a folder for fsync; its rename durability comes from NTFS itself.
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    dest: Path,
    fill: Callable[[BinaryIO], object],
    *,
    mode: int | None = None,
    durable: bool = True,
) -> None:
    """Write `dest` via a temp file in its folder: fill, fsync, chmod, rename, fsync folder.

    With `durable=False` the fsyncs are left to one `sync_filesystem` call after a batch.
    """
    tmp = _filled_temp(dest.parent, fill, mode=mode, durable=durable)
    _publish(tmp, dest, durable=durable)


def _filled_temp(
    folder: Path, fill: Callable[[BinaryIO], object], *, mode: int | None, durable: bool
) -> Path:
    """Return a new temp file in `folder` holding what `fill` wrote (fsynced when durable).

    It is created with `mode` (less the umask), so a read-only blob costs no chmod.
    """
    tmp = folder / f"{TEMP_PREFIX}{os.urandom(8).hex()}"
    # O_EXCL gives each writer its own temp file, so concurrent writers never share bytes. A
    # file made read-only from the start is still writable through this descriptor.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            if durable:
                os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish(tmp: Path, dest: Path, *, durable: bool) -> None:
    """Rename a filled temp file to `dest` (then fsync the folder when durable)."""
    try:
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(dest.parent)


def sync_filesystem(folder: Path) -> None:
    """Flush every write to the filesystem holding `folder`: one call ends a batch of writes."""
    if sys.platform.startswith("linux"):
        import ctypes

        fd = os.open(folder, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()  # other systems: flush everything


def make_dirs(folder: Path, *, durable: bool = True) -> None:
    """Create `folder` and its parents, fsyncing each parent that gains a new entry.

    With `durable=False` the fsyncs are left to one `sync_filesystem` call after a batch.
    """
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:
            continue  # another writer made it first; it has fsynced the parent itself
        if durable:
            fsync_dir(created.parent)


class LocalStorage:
    """Blobs as read-only files under `root/<hex[:2]>/<hex[2:]>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """Return the file that holds (or would hold) `key`; link to it, never write to it."""
        hex_digits = digest_hex(key)
        return self.root / hex_digits[:2] / hex_digits[2:]

    def _write(self, key: str, fill: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
        dest = self.path_of(key)
        make_dirs(dest.parent, durable=durable)
        write_atomically(dest, fill, mode=0o444, durable=durable)

    def put_file(self, key: str, src: Path) -> None:
        """Store the bytes of `src` under `key`."""
        with Path(src).open("rb") as f:
            self._write(key, lambda out: shutil.copyfileobj(f, out, CHUNK_SIZE))

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store `data` under `key`."""
        self._write(key, lambda out: out.write(data), durable=durable)

    def ingest(self, src: Path, *, durable: bool = True) -> tuple[str, int]:
        """Copy `src` in, hashing the bytes as they are copied (one read); return (key, size).

        The key is the digest of exactly the bytes stored, so a file that changes while it is
        copied can never be stored under a wrong key.
        """
        with Path(src).open("rb", buffering=0) as f:
            if os.fstat(f.fileno()).st_size < _PIPELINE_CHUNK:
                data = f.read()
                key = digest_bytes(data)
                if not self._has(key, len(data)):
                    self.put_bytes(key, data, durable=durable)
                return key, len(data)
            make_dirs(self.root)
            result: list[tuple[str, int]] = []

            def fill(out: BinaryIO) -> None:
                result.append(_copy_hashing(f, out, writeback=durable))

            tmp = _filled_temp(self.root, fill, mode=0o444, durable=durable)
        key, size = result[0]
        if self._has(key, size):
            tmp.unlink()
        else:
            make_dirs(self.path_of(key).parent, durable=durable)
            _publish(tmp, self.path_of(key), durable=durable)
        return key, size

    def _has(self, key: str, size: int) -> bool:
        """Return True if `key` is stored whole (a blob of the wrong size was damaged)."""
        try:
            return self.path_of(key).stat().st_size == size
        except FileNotFoundError:
            return False

    def sync(self) -> None:
        """Make every blob written with `durable=False` durable."""
        sync_filesystem(self.root)

    def open(self, key: str) -> BinaryIO:
        """Return a binary reader for `key`; raise NotFound if it is not stored."""
        path = self.path_of(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} is not stored in {self.root}") from None

    def exists(self, key: str) -> bool:
        """Return True if `key` is stored."""
        return self.path_of(key).is_file()

    def size(self, key: str) -> int:
        """Return the stored size of `key` in bytes."""
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {key} is not stored in {self.root}") from None

    def list(self) -> Iterator[str]:
        """Yield every stored key, skipping temp files and anything else that is not a blob."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not _HEX.issuperset(shard.name) or not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                if len(entry.name) == 62 and _HEX.issuperset(entry.name) and entry.is_file():
                    yield f"{DIGEST_PREFIX}{shard.name}{entry.name}"

    def delete(self, key: str) -> None:
        """Remove `key`; a key that is not stored is not an error."""
        # No folder fsync: a delete lost in a crash only leaves a blob a later GC removes again.
        self.path_of(key).unlink(missing_ok=True)


_PIPELINE_CHUNK = 4 << 20


def _copy_hashing(src: BinaryIO, out: BinaryIO, *, writeback: bool) -> tuple[str, int]:
    """Copy `src` to `out`, hashing each chunk while the previous one is written.

    With `writeback`, the disk starts writing each chunk at once, so the fsync that follows
    waits only for the tail instead of the whole file.
    """
    from concurrent.futures import ThreadPoolExecutor

    hasher = StreamingDigest()
    buffers = (bytearray(_PIPELINE_CHUNK), bytearray(_PIPELINE_CHUNK))
    size = 0
    start_writeback = _writeback_starter() if writeback else None

    def write(chunk: memoryview, offset: int) -> None:
        out.write(chunk)
        if start_writeback is not None:
            out.flush()
            start_writeback(out.fileno(), offset, len(chunk), _SYNC_FILE_RANGE_WRITE)

    # Hashing and writing both release the GIL: overlapped, the copy costs about one pass.
    with ThreadPoolExecutor(1) as writer:
        pending = None
        for buffer in itertools.cycle(buffers):
            n = src.readinto(buffer)  # type: ignore[attr-defined]
            if pending is not None:
                pending.result()
            if not n:
                break
            chunk = memoryview(buffer)[:n]
            pending = writer.submit(write, chunk, size)
            hasher.update(chunk)
            size += n
    return hasher.digest(), size


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _writeback_starter() -> Callable[[int, int, int, int], int] | None:
    """Return Linux's sync_file_range (start writing a range to disk, without waiting)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    function = ctypes.CDLL(None, use_errno=True).sync_file_range
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return cast(Callable[[int, int, int, int], int], function)

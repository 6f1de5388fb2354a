"""Blob storage in a local folder, plus the atomic file write it relies on."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from loopml.core.blobs.digest import CHUNK_SIZE, DIGEST_PREFIX, digest_hex
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
    dest: Path, fill: Callable[[BinaryIO], object], *, mode: int | None = None
) -> None:
    """Write `dest` via a temp file in its folder: fill, fsync, chmod, rename, fsync folder."""
    tmp = dest.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
    # O_EXCL gives each writer its own temp file, so concurrent writers never share bytes.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def make_dirs(folder: Path) -> None:
    """Create `folder` and its parents, fsyncing each parent that gains a new entry."""
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:
            continue  # another writer made it first; it has fsynced the parent itself
        fsync_dir(created.parent)


class LocalStorage:
    """Blobs as read-only files under `root/<hex[:2]>/<hex[2:]>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        hex_digits = digest_hex(key)
        return self.root / hex_digits[:2] / hex_digits[2:]

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        dest = self._path(key)
        make_dirs(dest.parent)
        write_atomically(dest, fill, mode=0o444)

    def put_file(self, key: str, src: Path) -> None:
        """Store the bytes of `src` under `key`."""
        with Path(src).open("rb") as f:
            self._write(key, lambda out: shutil.copyfileobj(f, out, CHUNK_SIZE))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`."""
        self._write(key, lambda out: out.write(data))

    def open(self, key: str) -> BinaryIO:
        """Return a binary reader for `key`; raise NotFound if it is not stored."""
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} is not stored in {self.root}") from None

    def exists(self, key: str) -> bool:
        """Return True if `key` is stored."""
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        """Return the stored size of `key` in bytes."""
        try:
            return self._path(key).stat().st_size
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
        self._path(key).unlink(missing_ok=True)

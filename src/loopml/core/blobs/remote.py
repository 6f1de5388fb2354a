"""Blob storage on any fsspec filesystem: object stores, memory, local paths."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from loopml.core.blobs.digest import DIGEST_PREFIX, digest_hex
from loopml.core.blobs.local import TEMP_PREFIX
from loopml.errors import InvalidInput, NotFound

# Protocols whose fsspec implementation ships in one of loopml's extras.
_EXTRAS = {"s3": "s3", "s3a": "s3"}
_HEX = frozenset("0123456789abcdef")


def _open_filesystem(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """Return the fsspec filesystem and root path for `url`, with errors that say the fix."""
    # fsspec is imported here so that `import loopml.core.blobs` stays cheap.
    from fsspec.core import url_to_fs

    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        return cast(tuple[Any, str], url_to_fs(url, **storage_options))
    except ImportError as exc:
        extra = _EXTRAS.get(protocol)
        fix = f"pip install 'loopml[{extra}]'" if extra else f"install the package it names ({exc})"
        raise InvalidInput(
            f"blob storage {url!r} needs the fsspec filesystem for {protocol!r}; {fix}"
        ) from exc
    except ValueError as exc:
        if "Protocol not known" not in str(exc):
            raise
        raise InvalidInput(
            f"blob storage {url!r} uses protocol {protocol!r}, which fsspec does not know; "
            "use a path, file://, memory://, s3://, or any protocol an installed fsspec "
            "package provides"
        ) from exc


class FsspecStorage:
    """Blobs under `<url>/<hex[:2]>/<hex[2:]>` on any fsspec filesystem."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url
        self._fs, root = _open_filesystem(url, storage_options)
        # Keys live under this prefix; "/" stays "/" so file:/// never turns relative.
        self._prefix = root.rstrip("/") + "/" if root else ""
        # A local disk shows a half-written file to readers, so local writes go through a temp
        # file and a rename; object stores publish a PUT whole.
        self._is_local = "file" in _protocols(self._fs)

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    def _path(self, key: str) -> str:
        hex_digits = digest_hex(key)
        relative = f"{hex_digits[:2]}/{hex_digits[2:]}"
        return self._prefix + relative

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"blob {key} is not stored in {self.url}")

    def _write(self, key: str, write: Callable[[str], object]) -> None:
        path = self._path(key)
        if not self._is_local:
            write(path)
            return
        folder = path.rsplit("/", 1)[0]
        self._fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            write(tmp)
            self._fs.mv(tmp, path)
        except BaseException:
            if self._fs.exists(tmp):
                self._fs.rm_file(tmp)
            raise

    def put_file(self, key: str, src: Path) -> None:
        """Store the bytes of `src` under `key`."""
        self._write(key, lambda path: self._fs.put_file(str(src), path))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`."""
        self._write(key, lambda path: self._fs.pipe_file(path, data))

    def open(self, key: str) -> BinaryIO:
        """Return a binary reader for `key`; raise NotFound if it is not stored."""
        try:
            return cast(BinaryIO, self._fs.open(self._path(key), "rb"))
        except FileNotFoundError:
            raise self._not_found(key) from None

    def exists(self, key: str) -> bool:
        """Return True if `key` is stored."""
        return bool(self._fs.isfile(self._path(key)))

    def size(self, key: str) -> int:
        """Return the stored size of `key` in bytes."""
        try:
            return int(self._fs.size(self._path(key)))
        except FileNotFoundError:
            raise self._not_found(key) from None

    def list(self) -> Iterator[str]:
        """Yield every stored key, skipping temp files and anything else that is not a blob."""
        # Filesystems differ on a leading "/", so compare paths without it.
        prefix = self._prefix.lstrip("/")
        for found in sorted(self._fs.find(self._prefix)):
            relative = str(found).lstrip("/")
            if not relative.startswith(prefix):
                continue
            relative = relative[len(prefix) :]
            shard, _, name = relative.partition("/")
            if len(shard) == 2 and len(name) == 62 and _HEX.issuperset(shard + name):
                yield f"{DIGEST_PREFIX}{shard}{name}"

    def delete(self, key: str) -> None:
        """Remove `key`; a key that is not stored is not an error."""
        try:
            self._fs.rm_file(self._path(key))
        except FileNotFoundError:
            return


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)

"""The contract every blob storage backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class BlobStorage(Protocol):
    """Bytes kept under digest keys; storages never hash, they only store and fetch."""

    def put_file(self, key: str, src: Path) -> None:
        """Store the bytes of `src` under `key`; an existing key is overwritten or kept."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`; an existing key is overwritten or kept."""

    def open(self, key: str) -> BinaryIO:
        """Return a binary reader for `key`; raise NotFound if it is not stored."""

    def exists(self, key: str) -> bool:
        """Return True if `key` is stored."""

    def size(self, key: str) -> int:
        """Return the stored size of `key` in bytes; raise NotFound if it is not stored."""

    def list(self) -> Iterator[str]:
        """Yield every stored key."""

    def delete(self, key: str) -> None:
        """Remove `key`; a key that is not stored is not an error."""

"""BLAKE3 digests in the `blake3:<hex>` form every blob is stored under."""

from __future__ import annotations

import re
from pathlib import Path

import blake3

from loopml.errors import InvalidInput

DIGEST_PREFIX = "blake3:"
CHUNK_SIZE = 1 << 20
# Below this size, spinning up blake3's thread pool costs more than it saves.
_THREADED_MIN_SIZE = 16 << 20
_DIGEST_RE = re.compile(r"blake3:[0-9a-f]{64}")


class StreamingDigest:
    """Incremental BLAKE3 hasher that yields a `blake3:<hex>` digest."""

    def __init__(self) -> None:
        self._hasher = blake3.blake3()

    def update(self, data: bytes | memoryview) -> None:
        """Feed more bytes into the digest."""
        self._hasher.update(data)

    def digest(self) -> str:
        """Return the digest of every byte fed so far."""
        return DIGEST_PREFIX + str(self._hasher.hexdigest())


def digest_bytes(data: bytes) -> str:
    """Return the `blake3:<hex>` digest of `data`."""
    return DIGEST_PREFIX + str(blake3.blake3(data).hexdigest())


def digest_file(path: Path) -> str:
    """Return the `blake3:<hex>` digest of the file at `path`, read in a streaming way."""
    if path.stat().st_size >= _THREADED_MIN_SIZE:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if hasattr(hasher, "update_mmap"):
            hasher.update_mmap(path)
            return DIGEST_PREFIX + str(hasher.hexdigest())
    else:
        hasher = blake3.blake3()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return DIGEST_PREFIX + str(hasher.hexdigest())


def check_digest(digest: str) -> str:
    """Return `digest` unchanged if it is exactly `blake3:` + 64 lowercase hex digits."""
    # The strict form is what makes a digest safe to turn into a storage path.
    if not isinstance(digest, str) or _DIGEST_RE.fullmatch(digest) is None:
        shown = repr(digest) if len(repr(digest)) <= 100 else repr(digest)[:97] + "..."
        raise InvalidInput(
            f"{shown} is not a blob digest; digests look like blake3:<64 hex digits>"
        )
    return digest


def digest_hex(digest: str) -> str:
    """Return the 64 hex digits of a checked digest, without the `blake3:` prefix."""
    return check_digest(digest)[len(DIGEST_PREFIX) :]

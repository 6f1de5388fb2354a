"""Content-addressed blobs: BLAKE3 digests, storages behind one small contract, the store."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from loopml.core.blobs.content_store import Blob, ContentStore
from loopml.core.blobs.digest import (
    DIGEST_PREFIX,
    check_digest,
    digest_bytes,
    digest_file,
)
from loopml.core.blobs.factory import storage_from_uri
from loopml.core.blobs.local import LocalStorage
from loopml.core.blobs.storage import BlobStorage

if TYPE_CHECKING:
    from loopml.core.blobs.remote import FsspecStorage

# Imported on first use: `loopml data status` must not pay for thread pools or fsspec.
_LAZY = {
    "FsspecStorage": "loopml.core.blobs.remote",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)


__all__ = [
    "DIGEST_PREFIX",
    "Blob",
    "BlobStorage",
    "ContentStore",
    "FsspecStorage",
    "LocalStorage",
    "check_digest",
    "digest_bytes",
    "digest_file",
    "storage_from_uri",
]

"""Content-addressed blobs: BLAKE3 digests, storages behind one small contract, the store."""

from loopml.core.blobs.content_store import Blob, ContentStore
from loopml.core.blobs.digest import (
    DIGEST_PREFIX,
    check_digest,
    digest_bytes,
    digest_file,
)
from loopml.core.blobs.factory import storage_from_uri
from loopml.core.blobs.local import LocalStorage
from loopml.core.blobs.remote import FsspecStorage
from loopml.core.blobs.storage import BlobStorage

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

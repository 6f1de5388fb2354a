"""Build a BlobStorage from a URI: a path or file: URL, or any fsspec URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from loopml.core.blobs.storage import BlobStorage
from loopml.core.plugins import resolve
from loopml.errors import InvalidInput

# Built-ins as data, imported on first use so `import loopml` never pulls in fsspec.
BUILTIN_STORAGES: dict[str, str] = {
    "file": "loopml.core.blobs.local:LocalStorage",
    "fsspec": "loopml.core.blobs.remote:FsspecStorage",
}
# Third parties register `<scheme> = "package.module:Class"`; the class takes (uri, **options).
ENTRY_POINT_GROUP = "loopml.blob_storages"


def storage_from_uri(uri: str, **storage_options: Any) -> BlobStorage:
    """Return the BlobStorage for `uri`: LocalStorage for local paths, else FsspecStorage."""
    scheme = _scheme(uri)
    if scheme == "file" and not storage_options:
        return _build(resolve(BUILTIN_STORAGES["file"]), uri, _local_path(uri))
    cls = None
    if scheme != "file":
        # Scanning installed packages is slow, so it waits until a non-file URI needs it.
        from importlib.metadata import entry_points

        for plugin in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
            cls = plugin.load()
    return _build(cls or resolve(BUILTIN_STORAGES["fsspec"]), uri, uri, **storage_options)


def _scheme(uri: str) -> str:
    """Return the URI's scheme in lower case; plain paths count as "file"."""
    if "://" in uri:
        return uri.split("://", 1)[0].lower()
    return "file"


def _local_path(uri: str) -> Path:
    if not uri.startswith("file:"):
        return Path(uri).expanduser()
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(
            f"{uri!r} names host {parts.netloc!r}; file: URLs must be local, like file:///abs/path"
        )
    return Path(unquote(parts.path))


def _build(cls: Any, uri: str, *args: Any, **kwargs: Any) -> BlobStorage:
    storage = cls(*args, **kwargs)
    if not isinstance(storage, BlobStorage):
        raise InvalidInput(
            f"blob storage for {uri!r} ({cls!r}) lacks the BlobStorage methods "
            "(put_file, put_bytes, open, exists, size, list, delete)"
        )
    return storage

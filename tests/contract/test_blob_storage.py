"""Run the BlobStorage contract against every built-in backend."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from loopml.core.blobs import FsspecStorage, LocalStorage, storage_from_uri
from loopml.errors import InvalidInput
from loopml.testing.blob_storage import BlobStorageContract


class TestLocalStorage(BlobStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "blobs")


class TestMemoryFsspecStorage(BlobStorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[FsspecStorage]:
        prefix = f"loopml-test-{uuid.uuid4().hex}"
        yield FsspecStorage(f"memory://{prefix}/blobs")
        # The memory filesystem is process-wide; leave nothing behind for other tests.
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{prefix}"):
            fs.rm(f"/{prefix}", recursive=True)


class TestFileFsspecStorage(BlobStorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FsspecStorage:
        return FsspecStorage(f"file://{tmp_path}/blobs")


def test_uri_picks_local_storage_for_paths_and_file_urls(tmp_path: Path) -> None:
    assert isinstance(storage_from_uri(str(tmp_path)), LocalStorage)
    local = storage_from_uri(f"file://{tmp_path}/blobs")
    assert isinstance(local, LocalStorage)
    assert local.root == tmp_path / "blobs"


def test_uri_picks_fsspec_storage_for_other_schemes(tmp_path: Path) -> None:
    assert isinstance(storage_from_uri(f"memory://loopml-test-{uuid.uuid4().hex}"), FsspecStorage)
    with_options = storage_from_uri(f"file://{tmp_path}", auto_mkdir=True)
    assert isinstance(with_options, FsspecStorage)


def test_file_url_with_a_remote_host_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="must be local"):
        storage_from_uri("file://otherhost/data")


def test_unknown_protocol_says_so() -> None:
    with pytest.raises(InvalidInput, match="'nosuchproto'"):
        storage_from_uri("nosuchproto://bucket/blobs")


def test_s3_without_s3fs_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if the extra were not installed
    with pytest.raises(InvalidInput, match=r"pip install 'loopml\[s3\]'"):
        FsspecStorage("s3://bucket/blobs")

"""Contract suite for BlobStorage backends; subclass it and provide a `storage` fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.blobs.digest import digest_bytes
from loopml.core.blobs.storage import BlobStorage
from loopml.errors import NotFound


def _read(storage: BlobStorage, key: str) -> bytes:
    with storage.open(key) as f:
        return f.read()


class BlobStorageContract:
    """Checks every BlobStorage must pass.

    Subclass it in a test module and define a `storage` fixture that returns an empty storage.
    """

    def test_is_a_blob_storage(self, storage: BlobStorage) -> None:
        assert isinstance(storage, BlobStorage)

    def test_put_bytes_then_open_round_trips(self, storage: BlobStorage) -> None:
        data = b"hello blobs"
        key = digest_bytes(data)
        storage.put_bytes(key, data)
        assert _read(storage, key) == data

    def test_put_file_then_open_round_trips(self, storage: BlobStorage, tmp_path: Path) -> None:
        src = tmp_path / "model.bin"
        src.write_bytes(b"weights" * 1000)
        key = digest_bytes(src.read_bytes())
        storage.put_file(key, src)
        assert _read(storage, key) == src.read_bytes()

    def test_exists_is_true_only_after_put(self, storage: BlobStorage) -> None:
        key = digest_bytes(b"x")
        assert not storage.exists(key)
        storage.put_bytes(key, b"x")
        assert storage.exists(key)

    def test_size_is_the_stored_length(self, storage: BlobStorage) -> None:
        data = b"0123456789"
        key = digest_bytes(data)
        storage.put_bytes(key, data)
        assert storage.size(key) == 10

    def test_list_yields_exactly_the_stored_keys(self, storage: BlobStorage) -> None:
        assert sorted(storage.list()) == []
        keys = set()
        for n in range(5):
            data = f"blob {n}".encode()
            keys.add(digest_bytes(data))
            storage.put_bytes(digest_bytes(data), data)
        assert sorted(storage.list()) == sorted(keys)

    def test_delete_removes_the_key(self, storage: BlobStorage) -> None:
        key = digest_bytes(b"gone")
        storage.put_bytes(key, b"gone")
        storage.delete(key)
        assert not storage.exists(key)
        assert key not in set(storage.list())

    def test_delete_of_missing_key_is_harmless(self, storage: BlobStorage) -> None:
        storage.delete(digest_bytes(b"never stored"))

    def test_open_of_missing_key_raises_not_found_naming_it(self, storage: BlobStorage) -> None:
        key = digest_bytes(b"never stored")
        with pytest.raises(NotFound, match=key):
            storage.open(key)

    def test_size_of_missing_key_raises_not_found(self, storage: BlobStorage) -> None:
        with pytest.raises(NotFound):
            storage.size(digest_bytes(b"never stored"))

    def test_put_twice_is_harmless(self, storage: BlobStorage, tmp_path: Path) -> None:
        data = b"same bytes"
        key = digest_bytes(data)
        src = tmp_path / "same.bin"
        src.write_bytes(data)
        storage.put_bytes(key, data)
        storage.put_bytes(key, data)
        storage.put_file(key, src)
        assert _read(storage, key) == data
        assert list(storage.list()) == [key]

    def test_every_byte_value_round_trips(self, storage: BlobStorage) -> None:
        data = bytes(range(256)) * 4
        key = digest_bytes(data)
        storage.put_bytes(key, data)
        assert _read(storage, key) == data

    def test_empty_blob_round_trips(self, storage: BlobStorage) -> None:
        key = digest_bytes(b"")
        storage.put_bytes(key, b"")
        assert storage.exists(key)
        assert storage.size(key) == 0
        assert _read(storage, key) == b""

    def test_five_mib_blob_round_trips(self, storage: BlobStorage, tmp_path: Path) -> None:
        data = bytes(range(256)) * (5 * 4096) + b"tail"
        key = digest_bytes(data)
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        storage.put_file(key, src)
        assert storage.size(key) == len(data)
        assert _read(storage, key) == data

"""What a user notices about the content store: dedup, integrity, safe digests, concurrency."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from loopml.core.blobs import (
    Blob,
    ContentStore,
    LocalStorage,
    check_digest,
    digest_bytes,
    digest_file,
)
from loopml.errors import IntegrityError, InvalidInput, NotFound

CONTENT = bytes(range(256)) * 8192  # 2 MiB, so concurrent writers overlap


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path) -> ContentStore:
    return ContentStore(LocalStorage(root))


def corrupt(root: Path) -> None:
    (path,) = stored_files(root)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_identical_content_is_stored_once(store: ContentStore, root: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x,y\n1,2\n")
    b.write_bytes(b"x,y\n1,2\n")
    blobs = {store.put_file(a), store.put_file(b), store.put_bytes(b"x,y\n1,2\n")}
    assert blobs == {Blob(digest_bytes(b"x,y\n1,2\n"), 8)}
    assert len(stored_files(root)) == 1
    assert list(store) == [blob.digest for blob in blobs]


def test_stored_blobs_are_read_only(store: ContentStore, root: Path) -> None:
    store.put_bytes(b"keep me")
    (path,) = stored_files(root)
    assert path.stat().st_mode & 0o222 == 0  # no one may write to it


def test_round_trip_through_copy_to(store: ContentStore, tmp_path: Path) -> None:
    blob = store.put_bytes(CONTENT)
    dest = store.copy_to(blob.digest, tmp_path / "out" / "deep" / "model.bin")
    assert dest.read_bytes() == CONTENT
    assert store.read_bytes(blob.digest) == CONTENT
    assert store.size(blob.digest) == len(CONTENT)
    store.verify(blob.digest)


def test_corrupted_blob_fails_read_bytes_naming_the_digest(store: ContentStore, root: Path) -> None:
    blob = store.put_bytes(CONTENT)
    corrupt(root)
    with pytest.raises(IntegrityError, match=f"{blob.digest} is corrupted.*restore") as err:
        store.read_bytes(blob.digest)
    assert "re-add" in str(err.value)
    with pytest.raises(IntegrityError, match=blob.digest):
        store.verify(blob.digest)


def test_corrupted_blob_fails_copy_to_and_leaves_nothing(
    store: ContentStore, root: Path, tmp_path: Path
) -> None:
    blob = store.put_bytes(CONTENT)
    corrupt(root)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=blob.digest):
        store.copy_to(blob.digest, out / "model.bin")
    assert list(out.iterdir()) == []


def test_corrupted_copy_does_not_replace_an_existing_dest(
    store: ContentStore, root: Path, tmp_path: Path
) -> None:
    blob = store.put_bytes(CONTENT)
    corrupt(root)
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"previous good version")
    with pytest.raises(IntegrityError):
        store.copy_to(blob.digest, dest)
    assert dest.read_bytes() == b"previous good version"


BAD_DIGESTS = [
    "../../etc/passwd",
    "blake3:XYZ",
    "blake3:" + "AB" * 32,
    "ab" * 32,
    "blake3:" + "ab" * 31 + "a\x00",
    "blake3:" + "ab" * 32 + "\n",
    "blake3:../../" + "a" * 58,
    "sha256:" + "ab" * 32,
    "",
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_malformed_digests_are_rejected_before_touching_disk(
    store: ContentStore, root: Path, tmp_path: Path, bad: str
) -> None:
    out = tmp_path / "out"
    for operation in (
        store.exists,
        store.read_bytes,
        store.verify,
        store.size,
        store.delete,
        lambda d: store.copy_to(d, out / "f"),
    ):
        with pytest.raises(InvalidInput, match="is not a blob digest; digests look like blake3:"):
            operation(bad)
    assert not root.exists()
    assert not out.exists()


def test_well_formed_digest_passes_the_check() -> None:
    digest = digest_bytes(b"ok")
    assert check_digest(digest) == digest


def test_missing_blob_raises_not_found(store: ContentStore, tmp_path: Path) -> None:
    missing = digest_bytes(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(NotFound, match=missing):
        store.read_bytes(missing)
    with pytest.raises(NotFound, match=missing):
        store.copy_to(missing, tmp_path / "out" / "f")
    assert not (tmp_path / "out").exists()


def test_put_file_of_missing_path_names_it(store: ContentStore, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.parquet"
    with pytest.raises(NotFound, match=re.escape(str(missing))):
        store.put_file(missing)


def test_put_file_of_a_folder_names_it(store: ContentStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=re.escape(str(tmp_path))):
        store.put_file(tmp_path)


def test_delete_then_list(store: ContentStore) -> None:
    keep, drop = store.put_bytes(b"keep"), store.put_bytes(b"drop")
    store.delete(drop.digest)
    store.delete(drop.digest)
    assert list(store.list()) == [keep.digest]


def test_eight_threads_putting_the_same_content_leave_one_intact_blob(
    store: ContentStore, root: Path
) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def put() -> None:
        barrier.wait()
        try:
            # Straight to storage too, so every thread really writes instead of deduplicating.
            store.storage.put_bytes(digest_bytes(CONTENT), CONTENT)
            store.put_bytes(CONTENT)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(stored_files(root)) == 1
    assert store.read_bytes(digest_bytes(CONTENT)) == CONTENT


def _put_in_process(root: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = ContentStore(LocalStorage(Path(root)))
    barrier.wait()
    store.storage.put_bytes(digest_bytes(CONTENT), CONTENT)
    store.put_bytes(CONTENT)


def test_four_processes_putting_the_same_content_leave_one_intact_blob(
    store: ContentStore, root: Path
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_put_in_process, args=(str(root), barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(stored_files(root)) == 1
    assert store.read_bytes(digest_bytes(CONTENT)) == CONTENT


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 1, 20 << 20])
def test_digest_file_matches_digest_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert digest_file(path) == digest_bytes(data)


def test_importing_blobs_does_not_import_fsspec() -> None:
    code = "import sys, loopml.core.blobs; assert 'fsspec' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

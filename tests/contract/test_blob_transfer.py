"""transfer() between content stores: local folders, file:// and S3 (moto on loopback)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loopml.core.blobs import ContentStore, FsspecStorage, LocalStorage, digest_bytes
from loopml.core.blobs.digest import CHUNK_SIZE
from loopml.core.blobs.transfer import transfer
from loopml.errors import IntegrityError, InvalidInput, NotFound

# By module name: an attribute `transfer` of the package could be the function, not the module.
transfer_module = importlib.import_module("loopml.core.blobs.transfer")
PAIRS = ["local->local", "local->file", "local->s3", "s3->local"]
# Larger than the in-memory limit, so it streams through a temp file in 1 MiB chunks.
LARGE = transfer_module.IN_MEMORY_MAX + 3 * CHUNK_SIZE + 17


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> ContentStore:
    folder = f"{kind}-{uuid.uuid4().hex[:8]}"
    if kind == "local":
        return ContentStore(LocalStorage(tmp_path / folder))
    if kind == "file":
        return ContentStore(FsspecStorage(f"file://{tmp_path / folder}"))
    options = request.getfixturevalue("s3_options")
    return ContentStore(FsspecStorage(f"s3://loopml-test/{folder}", **options))


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest) -> str:
    """The backends of a transfer, as "source->destination"."""
    return str(request.param)


@pytest.fixture
def stores(
    pair: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[ContentStore, ContentStore]:
    """An empty (source, destination) pair of content stores, once per backend pair."""
    src_kind, dst_kind = pair.split("->")
    return _store(src_kind, tmp_path, request), _store(dst_kind, tmp_path, request)


def _fill(store: ContentStore, count: int, size: int = 100) -> list[str]:
    digests = []
    for n in range(count):
        data = _data(n, size)
        digests.append(digest_bytes(data))
        # Straight to the storage: the store's existence check would double the S3 requests.
        store.storage.put_bytes(digests[-1], data)
    return digests


def _data(n: int, size: int) -> bytes:
    return (f"blob {n} ".encode() * (size // 6 + 1))[:size]


@pytest.mark.parametrize("listing", [False, True], ids=["asking", "listing"])
def test_only_missing_or_damaged_blobs_travel(
    stores: tuple[ContentStore, ContentStore], monkeypatch: pytest.MonkeyPatch, listing: bool
) -> None:
    src, dst = stores
    if listing:
        monkeypatch.setattr(transfer_module, "LISTING_MIN", 1)
    digests = _fill(src, 6)
    for digest in digests[:2]:
        dst.put_bytes(src.read_bytes(digest))
    # A stored blob of the wrong size was damaged (a truncated copy), so it travels again.
    dst.storage.put_bytes(digests[2], b"truncated")

    first = transfer(src, dst, digests + digests[:4])

    assert (first.copied, first.skipped, first.bytes) == (4, 2, 400)
    assert sorted(dst) == sorted(digests)
    for digest in digests:
        dst.verify(digest)
    second = transfer(src, dst, digests)
    assert (second.copied, second.skipped, second.bytes) == (0, 6, 0)


@pytest.mark.parametrize("size", [100, LARGE], ids=["small", "large"])
def test_a_corrupt_source_blob_is_refused_and_nothing_lands(
    stores: tuple[ContentStore, ContentStore], size: int
) -> None:
    src, dst = stores
    [good, bad] = _fill(src, 2, size)
    # Storages never hash, so writing other bytes under the key damages the blob in place.
    src.storage.put_bytes(bad, _data(99, size))

    with pytest.raises(IntegrityError, match=f"blob {bad} .* is corrupted"):
        transfer(src, dst, [good, bad], jobs=1)

    assert not dst.exists(bad)
    assert bad not in set(dst)


def test_a_blob_missing_from_the_source_names_it_and_the_fix(
    stores: tuple[ContentStore, ContentStore],
) -> None:
    src, dst = stores
    present = _fill(src, 1)
    lost = digest_bytes(b"only on another machine")

    with pytest.raises(NotFound) as caught:
        transfer(src, dst, [*present, lost])

    message = str(caught.value)
    assert lost in message
    assert repr(src.storage) in message
    assert "push it from the machine that has it" in message
    assert list(dst) == []


def test_a_blob_missing_from_the_source_is_fine_if_the_destination_has_it(
    stores: tuple[ContentStore, ContentStore],
) -> None:
    src, dst = stores
    digest = dst.put_bytes(b"already there").digest
    result = transfer(src, dst, [digest])
    assert (result.copied, result.skipped) == (0, 1)


def test_progress_totals_match_what_was_copied(
    stores: tuple[ContentStore, ContentStore],
) -> None:
    src, dst = stores
    digests = [*_fill(src, 4, 1000), src.put_bytes(_data(7, LARGE)).digest]
    dst.put_bytes(src.read_bytes(digests[0]))
    totals: list[tuple[int, int]] = []
    advances: list[tuple[int, int]] = []
    threads: set[threading.Thread] = set()

    @contextmanager
    def progress(blobs: int, size: int) -> Iterator[Callable[[int, int], None]]:
        totals.append((blobs, size))

        def advance(blobs_done: int, bytes_done: int) -> None:
            threads.add(threading.current_thread())
            advances.append((blobs_done, bytes_done))

        yield advance

    result = transfer(src, dst, digests, jobs=3, progress=progress)

    assert totals == [(4, 3000 + LARGE)]
    assert len(advances) == 4
    assert sum(blobs for blobs, _ in advances) == result.copied == 4
    assert sum(size for _, size in advances) == result.bytes == 3000 + LARGE
    assert threads == {threading.current_thread()}


def test_many_small_blobs_travel_in_parallel(
    stores: tuple[ContentStore, ContentStore], pair: str
) -> None:
    src, dst = stores
    # moto answers in about 10 ms a request, so S3 pairs move fewer blobs to stay quick.
    count = 40 if "s3" in pair else 300
    digests = _fill(src, count)

    result = transfer(src, dst, digests, jobs=16)

    assert (result.copied, result.skipped) == (count, 0)
    assert sorted(dst) == sorted(digests)


def test_a_blob_larger_than_a_few_chunks_streams_through(
    stores: tuple[ContentStore, ContentStore],
) -> None:
    src, dst = stores
    data = os.urandom(LARGE)
    digest = src.put_bytes(data).digest

    result = transfer(src, dst, [digest])

    assert (result.copied, result.bytes) == (1, LARGE)
    assert dst.size(digest) == LARGE
    assert dst.read_bytes(digest) == data


def test_jobs_below_one_are_refused(tmp_path: Path) -> None:
    src = ContentStore(LocalStorage(tmp_path / "src"))
    with pytest.raises(InvalidInput, match="jobs must be at least 1"):
        transfer(src, src, [], jobs=0)


def test_a_malformed_digest_is_refused(tmp_path: Path) -> None:
    src = ContentStore(LocalStorage(tmp_path / "src"))
    with pytest.raises(InvalidInput, match="not a blob digest"):
        transfer(src, src, ["md5:abc"])


# Run in a child process: copy every blob of argv[1] to argv[2], printing a line per blob.
# Each source blob opens 2 ms late, so the child is still busy when the parent's kill
# lands; in trials a third of the kills landed inside a write and left a temp file behind.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from contextlib import contextmanager
    from pathlib import Path
    from loopml.core.blobs import ContentStore, FsspecStorage, LocalStorage
    from loopml.core.blobs.transfer import transfer

    class SlowStorage(LocalStorage):
        def open(self, key):
            time.sleep(0.002)
            return super().open(key)

    @contextmanager
    def progress(blobs, size):
        yield lambda blobs_done, bytes_done: print("blob", flush=True)

    src = ContentStore(SlowStorage(Path(sys.argv[1])))
    dst = ContentStore(FsspecStorage(sys.argv[2]))
    result = transfer(src, dst, list(src), jobs=8, progress=progress)
    print("copied", result.copied, flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_transfer_killed_half_way_leaves_only_whole_blobs_and_completes_when_rerun(
    tmp_path: Path,
) -> None:
    src = ContentStore(LocalStorage(tmp_path / "src"))
    digests = [*_fill(src, 240, 64 * 1024), src.put_bytes(os.urandom(LARGE)).digest]
    dst_url = f"file://{tmp_path / 'dst'}"
    command = [sys.executable, "-c", _CHILD, str(tmp_path / "src"), dst_url]
    # A killed transfer leaves its temp files behind; keep them out of the system temp folder.
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}

    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    for _ in range(30):
        assert child.stdout.readline() == "blob\n"
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL

    dst = ContentStore(FsspecStorage(dst_url))
    landed = list(dst)
    assert 30 <= len(landed) < len(digests)
    for digest in landed:
        dst.verify(digest)

    rerun = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    assert rerun.stdout.endswith(f"copied {len(digests) - len(landed)}\n")
    assert sorted(dst) == sorted(digests)
    for digest in digests:
        dst.verify(digest)

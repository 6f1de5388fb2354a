"""Dataset refs, manifests, the stat cache and the folder scan: the pieces under `add`."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from loopml.core.blobs.digest import digest_bytes
from loopml.data.manifest import FileEntry, Manifest
from loopml.data.refs import Ref, parse_ref
from loopml.data.scan import scan
from loopml.data.stat_cache import RACY_NS, StatCache, stat_key
from loopml.errors import IntegrityError, InvalidInput, NotFound


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("churn", Ref("churn")),
        ("churn@latest", Ref("churn")),
        ("churn@v12", Ref("churn", version=12)),
        ("churn@prod", Ref("churn", tag="prod")),
        ("a.b-c_d@x.y", Ref("a.b-c_d", tag="x.y")),
    ],
)
def test_refs_parse(text: str, ref: Ref):
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["", "@v1", "churn@", "churn@v0", "ch urn", "../x", "c@@v1", 7])
def test_malformed_refs_name_the_forms_that_work(text: object):
    with pytest.raises(InvalidInput):
        parse_ref(text)


def entry(path: str, data: bytes = b"x") -> FileEntry:
    return FileEntry(path, digest_bytes(data), len(data), 0o644)


def test_equal_manifests_have_equal_bytes_whatever_the_order():
    a = Manifest.build("folder", [entry("b"), entry("a/c")])
    b = Manifest.build("folder", [entry("a/c"), entry("b")])
    assert a.to_bytes() == b.to_bytes()
    assert Manifest.from_bytes(a.to_bytes()) == a


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"format": 2, "kind": "folder", "files": []}',
        b'{"format": 1, "kind": "folder", "files": [["../etc/passwd", "blake3:00", 1, 420]]}',
        b'{"format": 1, "kind": "folder", "files": [["a", "md5:abc", 1, 420]]}',
    ],
)
def test_a_hostile_or_damaged_manifest_is_refused(body: bytes):
    with pytest.raises(IntegrityError, match="not a LoopML manifest"):
        Manifest.from_bytes(body, digest="blake3:" + "0" * 64)


def test_the_stat_cache_trusts_only_unchanged_files_hashed_well_after_their_last_write(
    tmp_path: Path,
):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    key = stat_key(path.stat())
    cache = StatCache(tmp_path)
    changed = max(key[1], key[2])  # mtime, ctime
    cache.store([(str(path), key, "blake3:d1", changed + 1)])  # hashed within one tick: racy
    assert cache.lookup([(str(path), key)]) == {}
    cache.store([(str(path), key, "blake3:d1", changed + RACY_NS + 1)])
    assert cache.lookup([(str(path), key)]) == {str(path): "blake3:d1"}
    for moved in ((key[0], key[1] + 1, key[2], key[3]), (key[0], key[1], key[2] + 1, key[3])):
        assert cache.lookup([(str(path), moved)]) == {}
    cache.close()


def test_new_bytes_under_an_old_mtime_are_not_taken_from_the_cache(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"label=cat\n")
    before = path.stat()
    cache = StatCache(tmp_path)
    cache.store([(str(path), stat_key(before), "blake3:cat", before.st_ctime_ns + 10**10)])
    time.sleep(0.05)  # past the filesystem's timestamp tick, as any later edit is
    path.write_bytes(b"label=dog\n")  # same size; then the old mtime put back (cp -p, rsync -t)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.lookup([(str(path), stat_key(path.stat()))]) == {}
    cache.close()


def test_a_damaged_stat_cache_is_started_again(tmp_path: Path):
    (tmp_path / "stat-cache.sqlite").write_bytes(b"garbage" * 100)
    cache = StatCache(tmp_path)
    cache.store([("/x", (1, 2, 3, 4), "blake3:d", 10**18)])
    assert cache.lookup([("/x", (1, 2, 3, 4))]) == {"/x": "blake3:d"}
    cache.close()


def test_scan_lists_files_in_path_order_and_follows_linked_files(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    kind, found = scan(tmp_path)
    assert kind == "folder"
    assert [f.relpath for f in found] == ["a.txt", "b/z.txt", "link.txt"]


def test_scan_refuses_symlink_loops(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("f")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    with pytest.raises(InvalidInput, match="symlink loop"):
        scan(tmp_path / "d")


def test_scan_refuses_broken_links_sockets_and_empty_folders(tmp_path: Path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidInput, match="broken symlink"):
        scan(tmp_path / "broken")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="holds no files"):
        scan(tmp_path / "empty")
    with pytest.raises(NotFound, match="does not exist"):
        scan(tmp_path / "missing")
    (tmp_path / "sock").mkdir()
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock" / "s"))
        with pytest.raises(InvalidInput, match="not a regular file"):
            scan(tmp_path / "sock")
    finally:
        server.close()

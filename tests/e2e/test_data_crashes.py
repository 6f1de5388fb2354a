"""Real processes: `data add` and `data push` killed with SIGKILL, concurrent adds, a file that
grows while it is added. Whatever happens, no blob is ever stored under a wrong digest."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loopml.core.blobs.digest import digest_bytes, digest_file
from loopml.core.workspace import Workspace
from loopml.data import registration, versions
from loopml.data.links import checkout
from loopml.data.remotes import add_remote
from tests.e2e.cli import LOOPML, environment, loopml, one_error_line
from tests.e2e.test_data_cli import blobs_of, tree, verified_blobs, write_tree

# Many small files keep `add` and `push` busy for a second or two: wide enough to kill them
# midway (each blob a push writes is fsynced, so 600 of them take about as long).
MANY_FILES = 1500
FILE_SIZE = 20_000


def random_files(count: int, seed: int) -> dict[str, bytes]:
    """Return `count` files of 20 KB in 30 subfolders, by relative path."""
    rng = np.random.default_rng(seed)
    return {f"part{i % 30:02d}/{i:04d}.bin": rng.bytes(FILE_SIZE) for i in range(count)}


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A folder of 1,500 files of 20 KB (30 MB), and its files."""
    files = random_files(MANY_FILES, seed=3)
    folder = tmp_path_factory.mktemp("many") / "data"
    write_tree(folder, files)
    return folder, files


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start `loopml ARGS` in `cwd` without waiting for it."""
    return subprocess.Popen(
        [str(LOOPML), *args],
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_once_writing(child: subprocess.Popen[str], blobs: Path, rng: random.Random) -> None:
    """SIGKILL `child` a random moment after its first blob appears under `blobs`."""
    while child.poll() is None and not (blobs.is_dir() and any(blobs.iterdir())):
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.5))
    child.kill()  # SIGKILL; a child that already finished is left as it is
    child.communicate()


def checked_out(ws: Workspace, ref: str, to: Path) -> dict[str, bytes]:
    """Check out `ref` to the new folder `to` and return what is there."""
    to.mkdir(parents=True)
    checkout(ws, versions.get(ws, ref), to)
    return tree(to)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_add_killed_midway_leaves_verified_blobs_and_adds_again(
    sqlite_ws: Workspace, many_files: tuple[Path, dict[str, bytes]], tmp_path: Path, seed: int
) -> None:
    source, files = many_files
    blobs = blobs_of(sqlite_ws.root)

    child = start("data", "add", str(source), "--name", "big", cwd=sqlite_ws.root)
    kill_once_writing(child, blobs, random.Random(seed))

    Workspace.close_all()  # look at the store as a new process would
    ws = Workspace.open(sqlite_ws.root)
    stored = versions.list_all(ws)
    if stored:  # the kill came after the version was committed: it must be whole
        assert [(s.name, s.versions) for s in stored] == [("big", 1)]
        assert checked_out(ws, "big@v1", tmp_path / "early") == files
    verified_blobs(blobs)

    again = loopml("data", "add", str(source), "--name", "big", cwd=ws.root)
    assert "big@v1" in again.stdout
    assert [v.ref for v in versions.history(ws, "big")] == ["big@v1"]
    assert checked_out(ws, "big@v1", tmp_path / "out") == files
    assert set(verified_blobs(blobs)) >= {digest_bytes(b) for b in files.values()}


def test_a_push_killed_midway_leaves_verified_blobs_and_pushes_again(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    files, source, remote = random_files(600, seed=4), tmp_path / "data", tmp_path / "remote"
    write_tree(source, files)
    registration.add(sqlite_ws, source, name="big")  # setup, in this process
    add_remote(sqlite_ws, "origin", f"file://{remote}")
    local = verified_blobs(blobs_of(sqlite_ws.root))

    child = start("data", "push", cwd=sqlite_ws.root)
    kill_once_writing(child, remote, random.Random(4))
    verified_blobs(remote)

    pushed = loopml("data", "push", cwd=sqlite_ws.root).stdout
    copied = int(pushed.split()[1])
    assert f"{len(local) - copied} already there" in pushed
    assert set(verified_blobs(remote)) == set(local)

    shutil.rmtree(blobs_of(sqlite_ws.root))
    blobs_of(sqlite_ws.root).mkdir()
    pulled = loopml("data", "pull", cwd=sqlite_ws.root).stdout
    assert pulled.startswith(f"Pulled {len(local)} blob(s)")
    assert set(verified_blobs(blobs_of(sqlite_ws.root))) == set(local)
    assert checked_out(sqlite_ws, "big@v1", tmp_path / "out") == files


def test_two_concurrent_adds_under_one_name_become_v1_and_v2(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    folders = {name: {f"{i:03d}.bin": rng.bytes(2000) for i in range(200)} for name in "ab"}
    for name, files in folders.items():
        write_tree(tmp_path / "src" / name, files)

    adders = [
        start("data", "add", str(tmp_path / "src" / name), "--name", "shared", cwd=ws.root)
        for name in folders
    ]
    outputs = [adder.communicate(timeout=180) for adder in adders]

    assert [adder.returncode for adder in adders] == [0, 0], outputs
    assert not any("locked" in err for _, err in outputs), outputs
    assert sorted(out.split(":")[0] for out, _ in outputs) == [
        "Added shared@v1",
        "Added shared@v2",
    ]
    history = versions.history(ws, "shared")
    assert [v.version for v in history] == [2, 1]
    held = {frozenset(v.manifest().digests()) for v in history}
    assert held == {frozenset(map(digest_bytes, f.values())) for f in folders.values()}


def test_a_file_growing_during_add_is_refused_or_stored_whole(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    growing = tmp_path / "growing.bin"
    growing.write_bytes(os.urandom(32 << 20))  # over 4 MiB: copied and hashed in chunks
    stop = threading.Event()

    def append() -> None:
        with growing.open("ab") as out:
            while not stop.wait(0.002):
                out.write(os.urandom(1 << 16))
                out.flush()

    writer = threading.Thread(target=append)
    writer.start()
    timer = threading.Timer(random.uniform(0.5, 3.0), stop.set)  # may stop before the add reads
    timer.start()
    try:
        done = subprocess.run(
            [str(LOOPML), "data", "add", str(growing)],
            cwd=sqlite_ws.root,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        stop.set()
        timer.cancel()
        writer.join()

    blobs = blobs_of(sqlite_ws.root)
    if done.returncode:
        line = one_error_line(done)
        assert str(growing) in line and "changed while it was being added" in line
        assert versions.list_all(sqlite_ws) == []
    else:  # the writer stopped before the add read the file
        [entry] = versions.get(sqlite_ws, "growing@v1").manifest().files
        out = checked_out(sqlite_ws, "growing@v1", tmp_path / "out")
        assert digest_bytes(out["growing.bin"]) == entry.digest
    verified_blobs(blobs)

    final = loopml("data", "add", str(growing), cwd=sqlite_ws.root)  # once it is written
    assert "growing@v" in final.stdout
    [entry] = versions.get(sqlite_ws, "growing").manifest().files
    assert entry.digest == digest_file(growing)
    verified_blobs(blobs)

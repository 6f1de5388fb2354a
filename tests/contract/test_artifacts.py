"""Artifacts on every store: files and folders, dedup, verified download, hostile paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import loopml
from loopml.core import progress
from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from loopml.tracking import artifacts


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "plots" / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(bytes(range(256)) * 100)
    (src / "plots" / "a.txt").write_text("alpha")
    (src / "plots" / "sub" / "b.txt").write_text("beta")
    (src / "plots" / "copy.txt").write_text("alpha")  # same content as a.txt
    return src


def test_files_and_folders_land_under_their_paths(ws: Workspace, files: Path) -> None:
    with loopml.start_run() as run:
        run.log_artifact(files / "model.bin")
        run.log_artifact(files / "plots")
        run.log_artifact(files / "plots" / "a.txt", artifact_path="figures/2024")
        run.log_dict({"depth": 3}, "config.json")
        run.log_text("hello", "notes/readme.md")
    listed = {a.path: a.size for a in loopml.list_artifacts(run.id)}
    assert listed == {
        "config.json": len('{\n  "depth": 3\n}'),
        "figures/2024/a.txt": 5,
        "model.bin": 25600,
        "notes/readme.md": 5,
        "plots/a.txt": 5,
        "plots/copy.txt": 5,
        "plots/sub/b.txt": 4,
    }
    assert [a.path for a in loopml.list_artifacts(run.id, "plots")] == [
        "plots/a.txt",
        "plots/copy.txt",
        "plots/sub/b.txt",
    ]
    assert artifacts.read_bytes(ws, run.id, "notes/readme.md") == b"hello"


def test_identical_content_is_stored_once(ws: Workspace, files: Path) -> None:
    with loopml.start_run() as run:
        run.log_artifact(files / "plots")
    digests = {a.path: a.digest for a in loopml.list_artifacts(run.id)}
    assert digests["plots/a.txt"] == digests["plots/copy.txt"]
    assert len(list(ws.blobs.list())) == 2


def test_download_copies_verified_files(ws: Workspace, files: Path, tmp_path: Path) -> None:
    with loopml.start_run() as run:
        run.log_artifact(files / "plots")
        run.log_artifact(files / "model.bin")
    folder = loopml.download_artifacts(run.id, dest=tmp_path / "all")
    assert (folder / "plots" / "sub" / "b.txt").read_text() == "beta"
    one = loopml.download_artifacts(run.id, "model.bin", tmp_path / "one")
    assert one == tmp_path / "one" / "model.bin"
    assert one.read_bytes() == (files / "model.bin").read_bytes()


def test_a_corrupted_blob_is_refused_on_download(
    ws: Workspace, files: Path, tmp_path: Path
) -> None:
    run, blob = _logged_blob(ws, files / "model.bin")
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=blob.parent.name + blob.name):
        loopml.download_artifacts(run.id, "model.bin", tmp_path / "out")
    assert not (tmp_path / "out" / "model.bin").exists()


def _logged_blob(ws: Workspace, path: Path) -> tuple[loopml.Run, Path]:
    """Log `path` in a new run; return the run and its blob's file, made writable."""
    with loopml.start_run() as run:
        [info] = run.log_artifact(path)
    blob = ws.root / ".loopml" / "blobs" / info.digest[7:9] / info.digest[9:]
    os.chmod(blob, 0o644)
    return run, blob


@pytest.mark.parametrize(
    "path", ["../escape", "/etc/passwd", "a/../../b", "a\\b", "a\x00b", "%2e%2e/x", "%252e%252e/x"]
)
def test_hostile_artifact_paths_are_refused(ws: Workspace, files: Path, path: str) -> None:
    with loopml.start_run() as run:
        with pytest.raises(InvalidInput):
            run.log_artifact(files / "model.bin", artifact_path=path)
        with pytest.raises(InvalidInput):
            run.log_text("x", path)
        with pytest.raises(InvalidInput):
            loopml.download_artifacts(run.id, path)
    assert loopml.list_artifacts(run.id) == []


def test_missing_inputs_name_the_thing(ws: Workspace, tmp_path: Path) -> None:
    with loopml.start_run() as run:
        with pytest.raises(NotFound, match=r"nope\.png"):
            run.log_artifact(tmp_path / "nope.png")
        with pytest.raises(InvalidInput, match="JSON"):
            run.log_dict({(1, 2): "tuple keys"}, "bad.json")
    with pytest.raises(NotFound, match="no artifact"):
        loopml.download_artifacts(run.id, "missing.txt")


def test_download_never_overwrites_unless_asked(ws: Workspace, files: Path, tmp_path: Path) -> None:
    with loopml.start_run() as run:
        run.log_artifact(files / "model.bin")
    mine = tmp_path / "out" / "model.bin"
    mine.parent.mkdir()
    mine.write_text("my own work")
    with pytest.raises(AlreadyExists, match=r"model\.bin already exists"):
        loopml.download_artifacts(run.id, dest=tmp_path / "out")
    assert mine.read_text() == "my own work"
    artifacts.download(ws, run.id, dest=tmp_path / "out", overwrite=True)
    assert mine.read_bytes() == (files / "model.bin").read_bytes()


def test_a_path_cannot_be_both_file_and_folder(ws: Workspace, files: Path) -> None:
    with loopml.start_run() as run:
        run.log_text("a file", "model")
        with pytest.raises(InvalidInput, match="both a file and a folder"):
            run.log_text("inside", "model/weights.txt")
        run.log_text("x", "plots/a.txt")
        with pytest.raises(InvalidInput, match="both a file and a folder"):
            run.log_text("y", "plots")
    assert [a.path for a in loopml.list_artifacts(run.id)] == ["model", "plots/a.txt"]


def test_a_damaged_blob_is_repaired_by_logging_the_file_again(
    ws: Workspace, files: Path, tmp_path: Path
) -> None:
    run, blob = _logged_blob(ws, files / "model.bin")
    blob.write_bytes(b"truncated")
    with loopml.start_run() as again:
        again.log_artifact(files / "model.bin")
    out = loopml.download_artifacts(run.id, "model.bin", tmp_path / "out")
    assert out.read_bytes() == (files / "model.bin").read_bytes()


def test_racing_file_and_folder_of_one_name_store_only_one(ws: Workspace) -> None:
    import threading

    with loopml.start_run() as run:
        for i in range(10):
            outcomes: list[str] = []

            def log(name: str, outcomes: list[str] = outcomes) -> None:
                try:
                    run.log_text("x", name)
                    outcomes.append("stored")
                except InvalidInput:
                    outcomes.append("refused")

            threads = [threading.Thread(target=log, args=(name,)) for name in (f"d{i}", f"d{i}/f")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcomes) == ["refused", "stored"]


def test_the_current_folder_can_be_logged(
    ws: Workspace, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files / "plots")
    with loopml.start_run() as run:
        run.log_artifact(".")
    assert [a.path for a in loopml.list_artifacts(run.id)] == [
        "plots/a.txt",
        "plots/copy.txt",
        "plots/sub/b.txt",
    ]


def test_a_big_folder_is_stored_whole_behind_a_progress_bar(
    ws: Workspace,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # render as on a terminal: pytest captures stderr
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(progress.MIN_FILES + 5):
        (folder / f"f{i:04d}.txt").write_text(f"file {i}")
    with loopml.start_run() as run:
        run.log_artifact(folder)
    listed = loopml.list_artifacts(run.id)
    assert len(listed) == progress.MIN_FILES + 5
    assert artifacts.read_bytes(ws, run.id, "many/f0007.txt") == b"file 7"
    assert "Storing artifacts" in capsys.readouterr().err
